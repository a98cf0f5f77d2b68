// bus/bus_impl.cpp: the bus's life: settings resolved, parts built, started, queried, closed.
#include "bus/bus_impl.hpp"

#include "bus/bus_limits.hpp"
#include "transport/platform.hpp"
#include "wire/encode.hpp"
#include "wire/topic.hpp"

#include <peerbus/error.hpp>

#include <asio/post.hpp>

#include <algorithm>
#include <cstdlib>

namespace peerbus::detail {

namespace {

std::string resolve_url(const options& o) {
  if (!o.url.empty()) return o.url;
  if (const char* env = std::getenv("PEERBUS_URL"); env && *env) return env;
  return std::string(default_url);
}

// The key: the URL's key= wins, then options::key_file, then $PEERBUS_KEY_FILE; none: open bus.
// The URL the bus reports carries the key it uses.
bus_url with_key(bus_url u, const options& o) {
  if (u.key.empty()) u.key = o.key_file;
  if (const char* env = std::getenv("PEERBUS_KEY_FILE"); u.key.empty() && env && *env) u.key = env;
  return u;
}

// Replay state for as many senders as the bus tracks streams, a 30 s freshness limit, and
// nothing accepted that was sealed before this bus started, less the grace for a sender slow to
// send what it sealed (seal/replay_guard.hpp, bus_limits.hpp).
std::unique_ptr<seal::sealer> make_sealer(const std::string& key_spec, std::uint64_t id,
                                          std::int64_t start_us) {
  if (key_spec.empty()) return nullptr;
  return std::make_unique<seal::sealer>(
      seal::load_key(key_spec), id,
      seal::replay_guard(max_streams, 30'000'000, start_us - seal_start_grace_us));
}

std::string resolve_name(const options& o) {
  std::string n = o.name.empty() ? platform::program_name() : o.name;
  if (o.name.empty()) {
    // A program name may hold characters names may not: keep it usable rather than refuse.
    for (char& c : n)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-'))
        c = '_';
    if (n.size() > wire::max_name) n.resize(wire::max_name);
  }
  if (!wire::valid_name(n))
    throw config_error("name '" + n + "' is not valid: use 1..64 characters of [A-Za-z0-9._-]");
  return n;
}

std::uint64_t random_id() {
  std::random_device rd;
  std::uint64_t v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  v ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return v ? v : 1;
}

presence_config make_presence_config(const options& o) {
  presence_config c;
  c.default_interval = o.heartbeat_interval;
  c.expiry_misses = o.expiry_misses;
  c.max_peers = max_streams;
  return c;
}

pacer::config make_pacer_config(const options& o) {
  pacer::config c;
  c.max_rate = o.max_rate;
  return c;
}

options with_env_faults(options o) {
  if (const char* env = std::getenv("PEERBUS_FAULTS"); env && *env) {
    std::string err;
    auto f = fault_injector::parse(env, err);
    if (!f) throw config_error("PEERBUS_FAULTS='" + std::string(env) + "': " + err);
    o.drop_rx = f->rx_drop;
    o.drop_tx = f->tx_drop;
    o.fault_seed = f->seed;
  }
  if (o.drop_rx < 0 || o.drop_rx > 1 || o.drop_tx < 0 || o.drop_tx > 1)
    throw config_error("drop rates must lie in [0, 1]");
  if (o.heartbeat_interval < std::chrono::milliseconds(10) ||
      o.heartbeat_interval > std::chrono::milliseconds(20000))
    throw config_error("heartbeat_interval must lie in 10..20000 ms");
  if (o.expiry_misses < 1 || o.expiry_misses > 100)
    throw config_error("expiry_misses must lie in 1..100");
  if (!(o.max_rate >= 0) || o.max_rate > 1e9) throw config_error("max_rate must lie in 0..1e9 messages/s");
  if (o.window_messages < 1 || o.window_bytes < wire::max_datagram)
    throw config_error("window_messages must be >= 1 and window_bytes >= 65507");
  if (o.max_message_size < 1024 || o.max_message_size > (std::size_t{1} << 30))
    throw config_error("max_message_size must lie in 1024..1073741824 bytes (1 KiB..1 GiB)");
  if (o.max_reassembly_bytes < o.max_message_size)
    throw config_error("max_reassembly_bytes must be at least max_message_size (" +
                       std::to_string(o.max_message_size) + ")");
  if (o.reassembly_timeout < std::chrono::milliseconds(1))
    throw config_error("reassembly_timeout must be at least 1 ms");
  return o;
}

// The largest datagram this bus sends: the link's MTU (the URL's mtu=, else the interface's,
// else Ethernet's 1500) less the IP and UDP headers, the OS's own limit, and the seal.
std::size_t link_datagram_limit(const bus_url& u, bool sealed) {
  std::error_code ec;
  const auto iface = asio::ip::make_address(u.iface, ec);
  std::size_t mtu = u.mtu ? u.mtu : ec ? 0 : platform::interface_mtu(iface);
  if (mtu < wire::min_mtu) mtu = 1500;
  const std::size_t ip_udp =
      !ec && iface.is_v6() ? wire::ipv6_udp_overhead : wire::ipv4_udp_overhead;
  std::size_t limit = std::min({wire::max_datagram, platform::max_udp_payload(), mtu - ip_udp});
  return sealed ? limit - seal::overhead : limit;
}

reassembly_config make_reassembly_config(const options& o) {
  reassembly_config c;
  c.max_message = o.max_message_size;
  c.max_bytes = o.max_reassembly_bytes;
  c.timeout = o.reassembly_timeout;
  return c;
}

}  // namespace

bus_impl::bus_impl(asio::io_context& ctx, options opts, std::unique_ptr<asio::io_context> owned)
    : opts_(with_env_faults(std::move(opts))),
      url_(with_key(bus_url::parse(resolve_url(opts_)), opts_)),
      name_(resolve_name(opts_)),
      id_(random_id()),
      start_us_(now_us()),
      host_(platform::host_name()),
      pid_(platform::process_id()),
      sealer_(make_sealer(url_.key, id_, start_us_)),
      max_plain_(link_datagram_limit(url_, sealer_ != nullptr)),
      owned_ctx_(std::move(owned)),
      ctx_(ctx),
      strand_(asio::make_strand(ctx)),
      transport_(ctx, url_, opts_.log),
      window_(opts_.window_messages, opts_.window_bytes),
      pacer_(make_pacer_config(opts_)),
      tx_faults_(fault_injector::for_tx({opts_.drop_rx, opts_.drop_tx, opts_.fault_seed})),
      repair_budget_(repair_budget_rate, repair_budget_burst, rel_clock::now()),
      rx_faults_(fault_injector::for_rx({opts_.drop_rx, opts_.drop_tx, opts_.fault_seed})),
      rng_(id_),
      nack_budget_(nack_budget_rate, nack_budget_burst, rel_clock::now()),
      nack_budget_established_(nack_budget_established_rate, nack_budget_established_burst,
                               rel_clock::now()),
      peers_(make_presence_config(opts_)),
      reasm_(make_reassembly_config(opts_)),
      reasm_timer_(ctx),
      nack_timer_(ctx),
      hb_timer_(ctx),
      expiry_timer_(ctx),
      tail_timer_(ctx),
      burst_timer_(ctx),
      welcome_timer_(ctx),
      drop_timer_(ctx),
      calls_timer_(ctx),
      subs_(std::make_shared<std::vector<std::shared_ptr<sub_entry>>>()) {
  wire::format_hex_id(id_, own_hex_);
  msg_head_ = wire::msg_head(id_, name_);
  tx_buf_.reserve(wire::max_datagram);
  batch_.reserve(max_plain_);
  if (sealer_) {
    sealed_tx_.reserve(wire::max_datagram);
    rx_plain_.reset(new char[rx_slot_size]);  // not value-initialised, like rx_batch_'s slots
  }
}

bus_impl::~bus_impl() {
  // Queues not joined by close() (it ran on one of the bus's threads): join them, or detach the
  // one whose handler is destroying the bus.
  stop_queues(true);
  if (thread_.joinable()) {
    // Only reachable if close() was skipped; never join ourselves.
    if (thread_.get_id() == std::this_thread::get_id()) thread_.detach();
    else thread_.join();
  }
}

std::int64_t bus_impl::now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void bus_impl::start() {
  auto self = shared_from_this();
  std::error_code ec;
  transport_.socket().non_blocking(true, ec);  // receive_from and send_to never block the strand
  if (ec) throw std::system_error(ec, "making the bus socket non-blocking");
  platform::count_receive_overflows(transport_.socket());
  // The receive window: half the size set, which Asio reports (Linux counts twice that against
  // the datagrams' full memory cost, and Asio halves it back), so a quarter of what the kernel
  // holds: the rest is room for other senders' traffic and for the per-datagram cost of small
  // datagrams (a 100-byte one costs 832 bytes, an 8000-byte one 16640).
  asio::socket_base::receive_buffer_size rcvbuf;
  transport_.socket().get_option(rcvbuf, ec);
  if (!ec && rcvbuf.value() > 0) {
    rwin_ = static_cast<std::uint64_t>(rcvbuf.value()) / 2;
    report_bytes_ = std::clamp<std::uint64_t>(rwin_ / 4, 1, flow_report_bytes);
  }
  ec.clear();
  asio::post(strand_, [self] {
    self->receive();
    if (!self->opts_.passive) self->on_heartbeat_timer();  // announce at once, then periodically
  });
  if (owned_ctx_) {
    thread_ = std::thread([ctx = owned_ctx_.get()] {
      auto guard = asio::make_work_guard(*ctx);
      ctx->run();
    });
  }
}

peer_info bus_impl::to_info(const peer_record& r) const {
  peer_info i;
  i.id = peer_id{r.id};
  i.name = r.name;
  i.display = display_name(r.name, r.id);
  i.host = r.host;
  i.pid = r.pid;
  i.started = std::chrono::system_clock::time_point(std::chrono::microseconds(r.start_time_us));
  i.heartbeat_interval = std::chrono::duration_cast<std::chrono::milliseconds>(r.interval);
  i.subscriptions = r.subs;
  i.subscriptions_truncated = r.subs_truncated;
  i.highest_seq = r.highest_seq;
  i.last_heard = r.last_heard;
  return i;
}

std::vector<peer_info> bus_impl::peers() const {
  std::lock_guard<std::mutex> lock(rx_mu_);
  std::vector<peer_info> out;
  for (auto& r : peers_.snapshot()) out.push_back(to_info(r));
  return out;
}

std::optional<peer_info> bus_impl::find_peer(peer_id id) const {
  std::lock_guard<std::mutex> lock(rx_mu_);
  if (auto* r = peers_.find(id.value)) return to_info(*r);
  return std::nullopt;
}

std::vector<peer_info> bus_impl::find_peers(std::string_view pattern) const {
  std::lock_guard<std::mutex> lock(rx_mu_);
  std::vector<peer_info> out;
  for (auto* r : peers_.find_by_pattern(pattern)) out.push_back(to_info(*r));
  return out;
}

bool bus_impl::has_peer(std::string_view name) const {
  std::lock_guard<std::mutex> lock(rx_mu_);
  return peers_.has_name(name);
}

bool bus_impl::wait_for_subscribers(std::string_view topic, std::size_t n,
                                    std::chrono::milliseconds t) {
  std::unique_lock<std::mutex> lock(rx_mu_);
  return rx_cv_.wait_for(lock, t, [&] { return peers_.count_subscribers(topic) >= n; });
}

bool bus_impl::wait_for_peer(std::string_view pattern, std::chrono::milliseconds t) {
  std::unique_lock<std::mutex> lock(rx_mu_);
  return rx_cv_.wait_for(lock, t, [&] { return !peers_.find_by_pattern(pattern).empty(); });
}

bus_stats bus_impl::stats() const {
  bus_stats s;
  auto ld = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.datagrams_received = ld(c_.datagrams_received);
  s.bytes_received = ld(c_.bytes_received);
  s.datagrams_sent = ld(c_.datagrams_sent);
  s.bytes_sent = ld(c_.bytes_sent);
  s.send_errors = ld(c_.send_errors);
  s.receive_errors = ld(c_.receive_errors);
  s.published = ld(c_.published);
  s.delivered = ld(c_.delivered);
  for (std::size_t i = 0; i < drop_reason_count; ++i) s.dropped[i] = ld(c_.dropped[i]);
  s.nacks_received = ld(c_.nacks_received);
  s.repairs_sent = ld(c_.repairs_sent);
  s.repairs_unavailable = ld(c_.repairs_unavailable);
  s.dropped_tx_injected = ld(c_.dropped_tx_injected);
  s.nacks_sent = ld(c_.nacks_sent);
  s.batched_frames = ld(c_.batched_frames);
  s.rx_overflows = ld(c_.rx_overflows);
  s.rx_backlogs = ld(c_.rx_backlogs);
  s.congestion_notices = ld(c_.congestion_notices);
  s.rate_cuts = ld(c_.rate_cuts);
  s.repairs_deferred = ld(c_.repairs_deferred);
  s.nacks_deferred = ld(c_.nacks_deferred);
  s.goodbyes_refuted = ld(c_.goodbyes_refuted);
  s.frames_shed = ld(c_.frames_shed);
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    s.send_rate_limit = pacer_.byte_rate();
    s.flow_receivers = flow_.size();
    s.flow_stalls = flow_.stalls();
  }
  s.flow_waits = ld(c_.flow_waits);
  s.flow_reports = ld(c_.flow_reports);
  s.own_datagrams = ld(c_.own_datagrams);
  s.reassembled = ld(c_.reassembled);
  s.reassembly_bytes = ld(c_.reassembly_bytes);
  s.reassembly_partials = ld(c_.reassembly_partials);
  s.queue_dropped = ld(c_.queue_dropped);
  {
    std::shared_ptr<const std::vector<std::shared_ptr<sub_entry>>> subs;
    {
      std::lock_guard<std::mutex> lock(handlers_mu_);
      subs = subs_;
    }
    for (const auto& e : *subs) {
      subscription_stats ss;
      ss.pattern = e->pattern;
      if (e->queue) {
        const auto q = e->queue->snapshot();
        ss.queue_limit = e->queue->settings().limit;
        ss.delivered = q.delivered;
        ss.dropped = q.dropped;
        ss.waits = q.waits;
        ss.queued = q.queued;
        ss.queued_max = q.queued_max;
        ss.queued_bytes = q.queued_bytes;
      } else {
        ss.delivered = ld(e->delivered);
      }
      s.subscriptions.push_back(std::move(ss));
    }
  }
  std::lock_guard<std::mutex> lock(rx_mu_);
  s.duplicates = retired_.duplicates;
  s.recovered = retired_.recovered;
  s.lost = retired_.lost;
  for (auto& [id, e] : streams_) {
    const auto& k = e->stream.counters();
    stream_stats ss;
    ss.id = peer_id{id};
    ss.name = e->name;
    ss.received = k.received;
    ss.delivered = k.delivered;
    ss.duplicates = k.duplicates;
    ss.gaps = k.gaps_detected;
    ss.nacks_sent = k.nacks_sent;
    ss.recovered = k.recovered;
    ss.lost = k.lost;
    ss.highest_seq = e->stream.highest_seen();
    s.duplicates += k.duplicates;
    s.recovered += k.recovered;
    s.lost += k.lost;
    s.buffered_bytes += e->held_bytes + e->stream.buffered_bytes();
    s.streams.push_back(std::move(ss));
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Closing

void bus_impl::close() {
  if (closed_.load()) return;
  const bool on_strand = strand_.running_in_this_thread();
  // Queued handlers first: no call starts from now on, and a strand waiting for room in a block
  // queue goes on (it must, for the linger below and for the context to stop).
  stop_queues(false);
  if (!opts_.passive && (c_.published.load() > 0 || sent_sequenced_.load()) && !on_strand) {
    // Linger like a socket with SO_LINGER: advertise the tail, then stay until the receivers
    // have been quiet for a while, so a lost last message can still be repaired.
    // It also stays until every receiver that reports its progress has confirmed our last
    // seq (8.9), while they make progress, flow_confirm_max at most: a receiver still working
    // through its backlog finds its gaps only later, when quiet NACKs prove nothing.
    auto start = rel_clock::now();
    auto next_advert = start;
    for (;;) {
      auto now = rel_clock::now();
      bool unconfirmed = false;
      {
        std::lock_guard<std::mutex> lock(send_mu_);
        unconfirmed = unconfirmed_locked(now, start);
        if (now >= next_advert) {
          // "Anyone missing anything?": receivers NACK their gaps; "ask": and say how far
          // they have got.
          send_advert_locked(unconfirmed);
          next_advert = now + (unconfirmed ? flow_ask_every : close_advert_every);
        }
      }
      if (unconfirmed && now - start < flow_confirm_max) {
        // Woken by each report (answer_nack), as a waiting publish is; the next ask is due
        // flow_ask_every after the last.
        std::unique_lock<std::mutex> lock(send_mu_);
        flow_cv_.wait_for(lock, flow_ask_every);
        continue;
      }
      // Ten retries, not one: a receiver's NACKs get lost too (under loss, one quiet retry
      // interval is no sign that it has everything): 600 ms with the default 50 ms cap.
      const auto retry_max =
          std::chrono::duration_cast<std::chrono::milliseconds>(rel_cfg_.nack_retry_max);
      auto quiet =
          c_.nacks_received.load() == 0 ? close_quiet_idle : close_quiet_repairing + 10 * retry_max;
      auto last = std::max(start, rel_clock::time_point(rel_clock::duration(last_nack_ns_.load())));
      if (now - last >= quiet || now - start >= close_linger_max) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    if (!opts_.passive) {
      flush_batch_locked();
      std::string buf;
      wire::frame_writer(buf, wire::frame_type::bye, id_)
          .str("name", name_)
          .uint("seq", next_seq_ - 1)
          .finish();
      send_locked(buf);
    }
    closed_.store(true);  // under send_mu_: nothing this bus sends can follow its goodbye
  }
  {
    std::vector<call_table::finished> done;
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      done = calls_.fail_all(call_errc::closed, "the bus was closed during the call",
                             rel_clock::now());
    }
    for (auto& f : done) f.run();
  }
  // Calls are failed, so no queued handler still waits for one: wait for the running calls to
  // return (not from one of the bus's own threads: ~bus_impl joins those queues).
  if (!on_bus_thread()) stop_queues(true);
  auto self = shared_from_this();
  auto shutdown = [self] {
    std::error_code ec;
    self->hb_timer_.cancel();
    self->nack_timer_.cancel();
    self->expiry_timer_.cancel();
    self->tail_timer_.cancel();
    self->burst_timer_.cancel();
    self->welcome_timer_.cancel();
    self->drop_timer_.cancel();  // its handler reports the queue drops not yet reported
    self->calls_timer_.cancel();
    self->reasm_timer_.cancel();
    self->transport_.socket().close(ec);
  };
  if (owned_ctx_) {
    owned_ctx_->stop();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
      thread_.join();
      shutdown();  // the context is stopped: safe from this thread now
      // Run the cancelled operations to completion so none keeps this object alive.
      owned_ctx_->restart();
      owned_ctx_->run();
    }
  } else if (on_strand) {
    shutdown();
  } else {
    asio::post(strand_, shutdown);
  }
}

}  // namespace peerbus::detail
