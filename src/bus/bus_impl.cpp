// bus/bus_impl.cpp: publish, receive, reliability and presence wired together on one strand.
#include "bus/bus_impl.hpp"

#include "transport/platform.hpp"
#include "presence/glob.hpp"
#include "wire/encode.hpp"
#include "wire/json_scan.hpp"
#include "wire/topic.hpp"

#include <peerbus/error.hpp>

#include <asio/bind_executor.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <cstdlib>
#include <future>

namespace peerbus::detail {

namespace {

constexpr std::size_t max_streams = 4096;
// Frames held per sender while we wait for its heartbeat (stream_entry::held): about a second of
// a busy sender's traffic, the longest the wait lasts when its heartbeats arrive.
constexpr std::size_t max_held_frames = 16384;
constexpr std::size_t max_held_bytes = std::size_t{16} << 20;
// A NACK may name many messages; one NACK never makes us resend more than this, so a forged
// "NACK for a billion messages" costs a bounded burst.
constexpr std::uint64_t max_repairs_per_nack = 2048;
// A closing sender lingers (like SO_LINGER) so the receivers' last repairs still find it: it
// re-advertises its tail every close_advert_every and leaves once no NACK came for the quiet
// period, or after close_linger_max at most. The quiet period must outlast the receivers' NACK
// back-off (nack_retry_max) once repairs are under way, else a receiver waiting out its back-off
// finds the sender gone.
constexpr auto close_quiet_idle = std::chrono::milliseconds(100);
constexpr auto close_quiet_repairing = std::chrono::milliseconds(100);  // + 10 * nack_retry_max
constexpr auto close_advert_every = std::chrono::milliseconds(100);
constexpr auto close_linger_max = std::chrono::milliseconds(3000);

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
// nothing accepted that was sealed before this bus started (seal/replay_guard.hpp).
std::unique_ptr<seal::sealer> make_sealer(const std::string& key_spec, std::uint64_t id,
                                          std::int64_t start_us) {
  if (key_spec.empty()) return nullptr;
  return std::make_unique<seal::sealer>(seal::load_key(key_spec), id,
                                        seal::replay_guard(max_streams, 30'000'000, start_us));
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
  if (o.window_messages < 1 || o.window_bytes < wire::max_datagram)
    throw config_error("window_messages must be >= 1 and window_bytes >= 65507");
  return o;
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
      max_plain_(sealer_ ? seal::max_plain : wire::max_datagram),
      owned_ctx_(std::move(owned)),
      ctx_(ctx),
      strand_(asio::make_strand(ctx)),
      transport_(ctx, url_, opts_.log),
      window_(opts_.window_messages, opts_.window_bytes),
      tx_faults_(fault_injector::for_tx({opts_.drop_rx, opts_.drop_tx, opts_.fault_seed})),
      rx_faults_(fault_injector::for_rx({opts_.drop_rx, opts_.drop_tx, opts_.fault_seed})),
      rng_(id_),
      peers_(make_presence_config(opts_)),
      nack_timer_(ctx),
      hb_timer_(ctx),
      expiry_timer_(ctx),
      tail_timer_(ctx),
      welcome_timer_(ctx),
      calls_timer_(ctx),
      subs_(std::make_shared<std::vector<std::shared_ptr<sub_entry>>>()) {
  tx_buf_.reserve(wire::max_datagram);
  if (sealer_) {
    sealed_tx_.reserve(wire::max_datagram);
    rx_plain_.resize(rx_buf_.size());
  }
}

bus_impl::~bus_impl() {
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

// ---------------------------------------------------------------------------------------------
// Send side

void bus_impl::send_locked(std::string_view datagram) {
  if (tx_faults_.drop()) {
    c_.dropped_tx_injected.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (sealer_) {
    sealer_->seal(datagram, sealed_tx_, now_us());  // a repair is sealed anew: never a replay
    datagram = sealed_tx_;
  }
  std::error_code ec;
  transport_.send(datagram.data(), datagram.size(), ec);
  if (ec) {
    c_.send_errors.fetch_add(1, std::memory_order_relaxed);
    if (opts_.log) opts_.log(log_level::warning, "send failed: " + ec.message());
    return;
  }
  c_.datagrams_sent.fetch_add(1, std::memory_order_relaxed);
  c_.bytes_sent.fetch_add(datagram.size(), std::memory_order_relaxed);
}

std::error_code bus_impl::publish(std::string_view topic, std::string_view json_text) {
  if (closed_.load(std::memory_order_relaxed)) return errc::closed;
  if (opts_.passive) return errc::passive;
  if (!valid_topic(topic)) return errc::bad_topic;
  if (!wire::valid_json(json_text, wire::max_depth - 1)) return errc::invalid_json;
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    tx_buf_.clear();
    std::uint64_t seq = next_seq_;
    wire::frame_writer(tx_buf_, wire::frame_type::msg, id_)
        .str("name", name_)
        .uint("seq", seq)
        .int64("ts", now_us())
        .str("topic", topic)
        .raw("data", json_text)
        .finish();
    // A raw line feed would split the frame on the wire (frames end at '\n'). In valid JSON it
    // can only be white space between tokens (strings hold it escaped), so a space means the same.
    if (json_text.find('\n') != std::string_view::npos)
      std::replace(tx_buf_.begin(), tx_buf_.end(), '\n', ' ');
    if (tx_buf_.size() > max_plain_) return errc::payload_too_large;
    ++next_seq_;
    window_.push(seq, tx_buf_);
    send_locked(tx_buf_);
  }
  c_.published.fetch_add(1, std::memory_order_relaxed);
  arm_tail_advert();
  return {};
}

void bus_impl::arm_tail_advert() {
  // The first publish after an advert arms the tail advert; later ones ride on it, so a burst
  // costs one post, not one per message.
  if (!tail_pending_.exchange(true)) {
    auto self = shared_from_this();
    asio::post(strand_, [self] {
      self->tail_timer_.expires_after(self->opts_.tail_advert_delay);
      self->tail_timer_.async_wait(asio::bind_executor(self->strand_, [self](std::error_code ec) {
        if (!ec) self->send_tail_advert();
      }));
    });
  }
}

void bus_impl::send_tail_advert() {
  tail_pending_.store(false);
  if (closed_.load()) return;
  std::lock_guard<std::mutex> lock(send_mu_);
  if (next_seq_ - 1 == advertised_seq_) return;
  send_advert_locked();
}

void bus_impl::send_advert_locked() {
  std::uint64_t hi = next_seq_ - 1;
  advertised_seq_ = hi;
  std::string buf;
  wire::frame_writer(buf, wire::frame_type::adv, id_).uint("seq", hi).uint("lo", window_.lowest()).finish();
  send_locked(buf);
}

std::vector<std::string> bus_impl::subscription_patterns(bool& truncated) const {
  std::vector<std::string> out;
  truncated = false;
  std::size_t bytes = 0;
  std::shared_ptr<const std::vector<std::shared_ptr<sub_entry>>> subs;
  {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    subs = subs_;
  }
  for (const auto& s : *subs) {
    if (!s->active.load()) continue;
    if (std::find(out.begin(), out.end(), s->pattern) != out.end()) continue;
    if (out.size() >= wire::max_heartbeat_subs ||
        bytes + s->pattern.size() + 3 > wire::max_heartbeat_sub_bytes - 64) {
      truncated = true;
      break;
    }
    bytes += s->pattern.size() + 3;
    out.push_back(s->pattern);
  }
  return out;
}

void bus_impl::send_heartbeat() {
  if (opts_.passive || closed_.load()) return;
  bool truncated = false;
  auto pats = subscription_patterns(truncated);
  std::string subs = "[";
  for (std::size_t i = 0; i < pats.size(); ++i) {
    if (i) subs += ',';
    subs += '"';
    subs += pats[i];
    subs += '"';
  }
  subs += ']';
  std::lock_guard<std::mutex> lock(send_mu_);
  // Checked again under the lock: close() marks the bus closed under it as it says goodbye, so
  // no heartbeat already on its way (an unsubscribe sends one) can follow the goodbye.
  if (closed_.load()) return;
  std::string buf;
  std::uint64_t hi = next_seq_ - 1;
  advertised_seq_ = hi;
  wire::frame_writer(buf, wire::frame_type::hb, id_)
      .str("name", name_)
      .uint("seq", hi)
      .uint("lo", window_.lowest())
      .text("host", host_)
      .int64("pid", pid_)
      .int64("start", start_us_)
      .uint("ivl", static_cast<std::uint64_t>(opts_.heartbeat_interval.count()))
      .raw("subs", subs)
      .boolean("trunc", truncated)
      .int64("ts", now_us())
      .finish();
  send_locked(buf);
}

void bus_impl::send_control(std::string& buf) {
  std::lock_guard<std::mutex> lock(send_mu_);
  send_locked(buf);
}

void bus_impl::on_heartbeat_timer() {
  if (closed_.load()) return;
  send_heartbeat();
  hb_timer_.expires_after(opts_.heartbeat_interval);
  hb_timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
    if (!ec) self->on_heartbeat_timer();
  }));
}

void bus_impl::answer_nack(const wire::envelope& env) {
  c_.nacks_received.fetch_add(env.range_count, std::memory_order_relaxed);
  last_nack_ns_.store(rel_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  auto now = rel_clock::now();
  std::lock_guard<std::mutex> lock(send_mu_);
  std::uint64_t budget = max_repairs_per_nack;
  bool unavailable = false;
  // Repairs are packed several frames per datagram: one repair datagram serves every receiver
  // that missed them, and a burst of repairs costs few sends.
  std::string batch;
  auto flush = [&] {
    if (!batch.empty()) send_locked(batch);
    batch.clear();
  };
  for (std::size_t i = 0; i < env.range_count && budget > 0; ++i) {
    auto r = env.ranges[i];
    if (r.last >= next_seq_) r.last = next_seq_ - 1;  // never "repair" the future
    std::uint64_t lo = window_.lowest();
    if (r.first < lo || lo == 0) {
      std::uint64_t gone_last = std::min(r.last, lo ? lo - 1 : r.last);
      if (gone_last >= r.first) {
        c_.repairs_unavailable.fetch_add(gone_last - r.first + 1, std::memory_order_relaxed);
        unavailable = true;
      }
      if (lo == 0) continue;
      r.first = std::max(r.first, lo);
    }
    for (std::uint64_t s = r.first; s <= r.last && budget > 0; ++s, --budget) {
      auto frame = window_.find(s);
      if (!frame || !window_.may_repair(s, now, rel_cfg_.repair_holdoff)) continue;
      if (batch.size() + frame->size() + 1 > max_plain_) flush();
      if (!batch.empty()) batch += '\n';
      batch.append(frame->data(), frame->size());
      c_.repairs_sent.fetch_add(1, std::memory_order_relaxed);
    }
  }
  flush();
  if (unavailable) {
    // Tell the askers at once what we no longer hold, so they report the loss and move on
    // instead of asking again until they give up.
    std::string buf;
    wire::frame_writer(buf, wire::frame_type::adv, id_)
        .uint("seq", next_seq_ - 1)
        .uint("lo", window_.lowest())
        .finish();
    send_locked(buf);
  }
}

// ---------------------------------------------------------------------------------------------
// Receive side

void bus_impl::receive() {
  transport_.socket().async_receive_from(
      asio::buffer(rx_buf_), rx_from_,
      asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec, std::size_t n) {
        if (ec == asio::error::operation_aborted || self->closed_.load()) return;
        if (!ec) self->on_datagram(n);
        self->receive();
      }));
}

void bus_impl::on_datagram(std::size_t size) {
  c_.datagrams_received.fetch_add(1, std::memory_order_relaxed);
  c_.bytes_received.fetch_add(size, std::memory_order_relaxed);
  std::string_view dgram(rx_buf_.data(), size);
  const bool injected = rx_faults_.drop();
  seal::open_result opened;
  if (sealer_) {
    opened = sealer_->open(dgram, rx_plain_.data(), rx_plain_.size(), now_us());
    if (opened) dgram = opened.plain;
  }
  if (tapped_.load(std::memory_order_relaxed))
    dispatch_tap(dgram, injected, sealer_ ? &opened : nullptr);
  if (injected) {
    count_drop(drop_reason::injected);
    return;
  }
  if (!opened) {
    count_drop(opened.reason);
    return;
  }
  auto now = rel_clock::now();
  wire::envelope env;
  auto r = wire::for_each_frame(dgram, [&](std::string_view frame) {
    auto d = wire::decode_frame(frame, env);
    if (!d) {
      count_drop(d.reason);
      return;
    }
    on_frame(env, now);
  });
  if (!r) count_drop(r.reason);
}

bus_impl::stream_entry* bus_impl::stream_for(const wire::envelope& env, rel_clock::time_point now) {
  auto it = streams_.find(env.from);
  if (it != streams_.end()) {
    it->second->last_heard = now;
    return it->second.get();
  }
  if (streams_.size() >= max_streams) {
    count_drop(drop_reason::peer_table_full);
    return nullptr;
  }
  // A late joiner starts from the first message it hears; from an advert, after its highest.
  std::uint64_t first = wire::is_sequenced(env.type) ? env.seq : env.seq + 1;
  // A sender heard again after its stream was retired resumes where it had got to (resume_at_):
  // older seqs are duplicates, and what it sent meanwhile is a gap to NACK, not a silent hole.
  const auto resume = resume_at_.find(env.from);
  if (resume != resume_at_.end()) first = resume->second;
  auto e = std::make_unique<stream_entry>(rel_cfg_, first, rng_);
  e->name = std::string(env.name);
  e->last_heard = now;
  // Frames of a sender whose announce we missed wait for its heartbeat (stream_entry::held).
  // An advert alone says as little (it may be the tail advert of a first message we lost).
  e->held = resume == resume_at_.end() &&
            (env.type == wire::frame_type::adv || (wire::is_sequenced(env.type) && env.seq > 1)) &&
            !peers_.find(env.from);
  return streams_.emplace(env.from, std::move(e)).first->second.get();
}

// Ends the wait of a held stream: a fresh stream expecting `first` replaces it and takes the
// held frames in seq order. Those that follow on at once are appended to `deliverable`, for the
// caller to hand on (deliver_frames) outside rx_mu_ before it drains the rest. rx_mu_ held.
bus_impl::stream_entry* bus_impl::release_held(std::unique_ptr<stream_entry>& slot,
                                               std::uint64_t first, rel_clock::time_point now,
                                               std::vector<std::string>& deliverable) {
  auto fresh = std::make_unique<stream_entry>(rel_cfg_, first, rng_);
  fresh->name = std::move(slot->name);
  fresh->last_heard = slot->last_heard;
  auto& held = slot->held_frames;
  std::sort(held.begin(), held.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [seq, frame] : held)
    if (fresh->stream.offer(seq, frame, now) == offer_result::deliver)
      deliverable.push_back(std::move(frame));
  slot = std::move(fresh);
  return slot.get();
}

std::uint64_t bus_impl::lowest_held(const stream_entry& s, std::uint64_t also) {
  for (const auto& h : s.held_frames) also = std::min(also, h.first);
  return also;
}

// A sender's claim of its highest and lowest seq (hb, adv); a forged jump (a sender moved on by
// 2^60) is ignored by the stream and counted here as implausible. rx_mu_ held.
void bus_impl::advert(stream_entry& s, const wire::envelope& env, rel_clock::time_point now) {
  const auto before = s.stream.counters().implausible_adverts;
  s.stream.on_advert(env.seq, env.lo, now);
  if (s.stream.counters().implausible_adverts != before) count_drop(drop_reason::implausible);
}

void bus_impl::deliver_frames(const std::vector<std::string>& frames) {
  for (const auto& f : frames) {
    wire::envelope env;
    if (wire::decode_frame(f, env)) deliver(env);
  }
}

void bus_impl::on_frame(const wire::envelope& env, rel_clock::time_point now) {
  const bool self_frame = env.from == id_;
  switch (env.type) {
    case wire::frame_type::msg:
    case wire::frame_type::call:
    case wire::frame_type::reply: {
      if (self_frame) {
        // Our own messages come back through the multicast loop; they are delivered only to
        // subscriptions that asked for them, and the loop cannot lose them, so no tracking.
        deliver(env);
        return;
      }
      std::unique_lock<std::mutex> lock(rx_mu_);
      stream_entry* s = stream_for(env, now);
      if (!s) return;
      peers_.on_heard(env.from, now);
      std::vector<std::string> released;
      if (s->held) {
        // Bounded: past the bound, waiting costs more than it can save; start where we are.
        if (s->held_frames.size() < max_held_frames && s->held_bytes < max_held_bytes) {
          s->held_bytes += env.frame.size();
          s->held_frames.emplace_back(env.seq, std::string(env.frame));
          return;
        }
        s = release_held(streams_[env.from], lowest_held(*s, env.seq), now, released);
        if (!released.empty()) {
          lock.unlock();
          deliver_frames(released);
          lock.lock();
        }
      }
      auto res = s->stream.offer(env.seq, env.frame, now);
      if (res == offer_result::implausible) count_drop(drop_reason::implausible);
      if (res == offer_result::buffered) {
        gappy_.insert(env.from);
        auto deadline = s->stream.next_deadline();
        lock.unlock();
        schedule_nacks(deadline);
        return;
      }
      if (res != offer_result::deliver) return;
      lock.unlock();
      deliver(env);
      drain(*s, env.from);
      return;
    }
    case wire::frame_type::hb: {
      if (self_frame) return;
      announce a;
      a.id = env.from;
      a.name = std::string(env.name);
      a.host = env.host_escaped ? wire::json_unescape(env.host) : std::string(env.host);
      a.pid = env.pid;
      a.start_time_us = env.start;
      a.version = wire::version;
      a.highest_seq = env.seq;
      a.lowest_seq = env.lo;
      a.interval = std::chrono::milliseconds(env.ivl ? env.ivl : 1000);
      a.subs_truncated = env.trunc;
      if (!env.subs.empty()) {
        try {
          for (auto& p : nlohmann::json::parse(env.subs)) a.subs.push_back(p.get<std::string>());
        } catch (const std::exception&) {
          // decode_frame validated the array; nothing to do.
        }
      }
      std::optional<peer_event> ev;
      std::unique_lock<std::mutex> lock(rx_mu_);
      const auto departed_before = peers_.counters().ignored_departed;
      ev = peers_.on_announce(a, now);
      if (!ev && !peers_.find(env.from)) {
        // Either the table is full, or this id said goodbye moments ago (a heartbeat that was
        // on its way, or a forged one): a peer that left cannot announce itself again.
        count_drop(peers_.counters().ignored_departed != departed_before
                       ? drop_reason::implausible
                       : drop_reason::peer_table_full);
        return;
      }
      stream_entry* s = stream_for(env, now);
      rel_clock::time_point deadline = rel_clock::time_point::max();
      std::vector<std::string> released;
      if (s && s->held) {
        // Its start time settles what we should have: everything (from the oldest it still
        // holds) if it started after we did, else what came since we first heard it.
        const std::uint64_t first = env.start < start_us_
                                        ? lowest_held(*s, env.seq + 1)
                                        : std::max<std::uint64_t>(env.lo, 1);
        s = release_held(streams_[env.from], first, now, released);
      }
      if (s) {
        advert(*s, env, now);
        if (s->stream.next_deadline() != rel_clock::time_point::max()) {
          gappy_.insert(env.from);
          deadline = s->stream.next_deadline();
        }
      }
      lock.unlock();
      rx_cv_.notify_all();
      if (ev && ev->kind == peer_event_kind::joined) {
        arm_expiry();
        welcome_newcomer();
      }
      if (ev) dispatch_peer_event(*ev);
      deliver_frames(released);
      if (s) drain(*s, env.from);
      schedule_nacks(deadline);
      return;
    }
    case wire::frame_type::adv: {
      if (self_frame) return;
      std::unique_lock<std::mutex> lock(rx_mu_);
      stream_entry* s = stream_for(env, now);
      if (!s) return;
      peers_.on_heard(env.from, now);
      if (s->held) return;  // its heartbeat will say where its stream starts for us
      advert(*s, env, now);
      auto deadline = s->stream.next_deadline();
      if (deadline != rel_clock::time_point::max()) gappy_.insert(env.from);
      lock.unlock();
      drain(*s, env.from);
      schedule_nacks(deadline);
      return;
    }
    case wire::frame_type::bye: {
      if (self_frame) return;
      std::unique_lock<std::mutex> lock(rx_mu_);
      auto ev = peers_.on_goodbye(env.from, now);
      auto it = streams_.find(env.from);
      std::unique_ptr<stream_entry> gone;
      if (it != streams_.end()) {
        // The sender is gone: whatever it sent that we still miss can no longer come (retire()
        // reports it as lost, in order, after what we hold). The goodbye's seq is its highest.
        if (env.seq) it->second->stream.on_advert(env.seq, 0, now);
        gone = std::move(it->second);
        streams_.erase(it);
        gappy_.erase(env.from);
      }
      lock.unlock();
      rx_cv_.notify_all();
      if (gone) retire(std::move(gone), env.from, now);
      if (ev) dispatch_peer_event(*ev);
      return;
    }
    case wire::frame_type::nack: {
      if (env.to == id_) {
        if (!opts_.passive && !self_frame) answer_nack(env);
        return;
      }
      if (self_frame) return;  // our own NACK looped back: not a reason to suppress ourselves
      std::lock_guard<std::mutex> lock(rx_mu_);
      auto it = streams_.find(env.to);
      if (it == streams_.end()) return;
      for (std::size_t i = 0; i < env.range_count; ++i)
        it->second->stream.on_foreign_nack(seq_range{env.ranges[i].first, env.ranges[i].last}, now);
      return;
    }
  }
}

void bus_impl::drain(stream_entry& s, std::uint64_t sender) {
  for (;;) {
    std::unique_lock<std::mutex> lock(rx_mu_);
    auto item = s.stream.pop_ready();
    lock.unlock();
    if (!item) return;
    if (item->is_loss()) {
      dispatch_loss(sender, s.name, item->seqs.first, item->seqs.last);
      continue;
    }
    wire::envelope env;
    if (wire::decode_frame(item->frame, env)) deliver(env);
  }
}

void bus_impl::retire(std::unique_ptr<stream_entry> gone, std::uint64_t sender,
                      rel_clock::time_point now) {
  // No repair can come any more: every seq still missing is lost ("holds nothing" advert), and
  // what was buffered behind the gaps is delivered after the loss reports.
  std::vector<std::string> released;
  {
    std::lock_guard<std::mutex> lock(rx_mu_);
    // Gone before its heartbeat came: what we heard of it is delivered as a late joiner's.
    if (gone->held && !gone->held_frames.empty())
      release_held(gone, lowest_held(*gone, UINT64_MAX), now, released);
  }
  deliver_frames(released);
  {
    std::lock_guard<std::mutex> lock(rx_mu_);
    const std::uint64_t hi = gone->stream.highest_seen();
    gone->stream.on_advert(hi, hi + 1, now);
  }
  drain(*gone, sender);
  std::lock_guard<std::mutex> lock(rx_mu_);
  const auto& k = gone->stream.counters();
  retired_.received += k.received;
  retired_.delivered += k.delivered;
  retired_.duplicates += k.duplicates;
  retired_.gaps_detected += k.gaps_detected;
  retired_.nacks_sent += k.nacks_sent;
  retired_.recovered += k.recovered;
  retired_.lost += k.lost;
  const std::uint64_t next = gone->stream.next_expected();
  if (auto [it, fresh] = resume_at_.emplace(sender, next); !fresh) {
    it->second = next;
  } else {
    resume_order_.push_back(sender);
    if (resume_order_.size() > max_streams) {
      resume_at_.erase(resume_order_.front());
      resume_order_.pop_front();
    }
  }
}

// A user's handler that throws must not end the bus thread (and with it the process, through
// std::terminate): the exception is reported through the log hook and the bus goes on.
// The description is built only when something threw: this sits on the delivery path.
template <class F>
void bus_impl::guarded(std::string_view what, std::string_view which, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    if (opts_.log) opts_.log(log_level::error, std::string(what) + std::string(which) + " threw: " + e.what());
  } catch (...) {
    if (opts_.log)
      opts_.log(log_level::error, std::string(what) + std::string(which) + " threw a non-exception");
  }
}

void bus_impl::deliver(const wire::envelope& env) {
  if (env.type != wire::frame_type::msg) {
    // Only the addressed peer answers a call or takes a reply; our own come back by the loop.
    if (env.from == id_ || env.to != id_) return;
    if (env.type == wire::frame_type::call) on_call(env);
    else on_reply(env);
    return;
  }
  std::shared_ptr<const std::vector<std::shared_ptr<sub_entry>>> subs;
  {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    subs = subs_;
  }
  const bool self_frame = env.from == id_;
  message m(env.topic, peer_id{env.from}, env.name, env.seq, env.ts, env.data);
  for (const auto& s : *subs) {
    if (!s->active.load(std::memory_order_relaxed)) continue;
    if (self_frame && !s->include_self) continue;
    if (!topic_matches(s->pattern, env.topic)) continue;
    c_.delivered.fetch_add(1, std::memory_order_relaxed);
    guarded("handler for ", s->pattern, [&] { s->fn(m); });
  }
}

void bus_impl::dispatch_loss(std::uint64_t sender, const std::string& name, std::uint64_t first,
                             std::uint64_t last) {
  loss_event ev{peer_id{sender}, name, first, last};
  if (opts_.log)
    opts_.log(log_level::warning, "lost " + std::to_string(ev.count()) + " message(s) from " +
                                      name + "@" + peer_id{sender}.str().substr(0, 4) + " (seq " +
                                      std::to_string(first) + ".." + std::to_string(last) + ")");
  for (auto& h : handlers_of(loss_handlers_)) guarded("loss handler", "", [&] { (*h)(ev); });
}

void bus_impl::dispatch_peer_event(const peer_event& ev) {
  if (ev.kind == peer_event_kind::updated) return;  // not a membership change
  peerbus::peer_event pub{ev.kind == peer_event_kind::joined    ? peerbus::peer_event_kind::joined
                          : ev.kind == peer_event_kind::left    ? peerbus::peer_event_kind::left
                                                                 : peerbus::peer_event_kind::expired,
                          to_info(ev.peer)};
  if (pub.kind == peerbus::peer_event_kind::expired) {
    // An expired sender's missing messages will not come either: report them (retire()).
    std::unique_ptr<stream_entry> gone;
    {
      std::lock_guard<std::mutex> lock(rx_mu_);
      if (auto it = streams_.find(ev.peer.id); it != streams_.end()) {
        gone = std::move(it->second);
        streams_.erase(it);
        gappy_.erase(ev.peer.id);
      }
    }
    if (gone) retire(std::move(gone), ev.peer.id, rel_clock::now());
  }
  if (pub.kind != peerbus::peer_event_kind::joined) {
    // Calls waiting on a peer that is gone fail now, not at their timeout.
    std::vector<call_table::finished> done;
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      done = calls_.on_peer_gone(ev.peer.id, pub.kind == peerbus::peer_event_kind::expired,
                                 rel_clock::now());
    }
    for (auto& f : done) f.run();
  }
  for (auto& h : handlers_of(peer_handlers_)) guarded("peer event handler", "", [&] { (*h)(pub); });
}

void bus_impl::schedule_nacks(rel_clock::time_point deadline) {
  if (opts_.passive || deadline == rel_clock::time_point::max()) return;
  if (deadline >= nack_deadline_) return;
  nack_deadline_ = deadline;
  nack_timer_.expires_at(deadline);
  nack_timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
    if (!ec) self->on_nack_timer();
  }));
}

void bus_impl::on_nack_timer() {
  nack_deadline_ = rel_clock::time_point::max();
  if (closed_.load()) return;
  auto now = rel_clock::now();
  rel_clock::time_point next = rel_clock::time_point::max();
  std::vector<std::pair<std::uint64_t, std::vector<seq_range>>> to_send;
  std::vector<std::uint64_t> to_drain;
  {
    std::lock_guard<std::mutex> lock(rx_mu_);
    for (auto it = gappy_.begin(); it != gappy_.end();) {
      auto s = streams_.find(*it);
      if (s == streams_.end()) {
        it = gappy_.erase(it);
        continue;
      }
      auto ranges = s->second->stream.due_nacks(now);
      if (!ranges.empty()) to_send.emplace_back(*it, std::move(ranges));
      to_drain.push_back(*it);  // giving up on a gap may have released frames
      auto d = s->second->stream.next_deadline();
      if (d == rel_clock::time_point::max()) {
        it = gappy_.erase(it);
      } else {
        next = std::min(next, d);
        ++it;
      }
    }
  }
  for (auto& [sender, ranges] : to_send) {
    std::string buf;
    std::string list = "[";
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      if (i) list += ',';
      list += '[' + std::to_string(ranges[i].first) + ',' + std::to_string(ranges[i].last) + ']';
    }
    list += ']';
    wire::frame_writer(buf, wire::frame_type::nack, id_).id("to", sender).raw("ranges", list).finish();
    c_.nacks_sent.fetch_add(ranges.size(), std::memory_order_relaxed);
    send_control(buf);
  }
  for (auto sender : to_drain) {
    stream_entry* s = nullptr;
    {
      std::lock_guard<std::mutex> lock(rx_mu_);
      auto it = streams_.find(sender);
      if (it != streams_.end()) s = it->second.get();
    }
    if (s) drain(*s, sender);
  }
  schedule_nacks(next);
}

void bus_impl::welcome_newcomer() {
  // A newcomer learns who is here from our next heartbeat; send it within milliseconds instead
  // of up to a period later. The random delay spreads the answers of many peers, and one timer
  // answers a whole burst of joins.
  if (opts_.passive || welcome_armed_) return;
  welcome_armed_ = true;
  std::uniform_int_distribution<int> delay_ms(1, 30);
  welcome_timer_.expires_after(std::chrono::milliseconds(delay_ms(rng_)));
  welcome_timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
    self->welcome_armed_ = false;
    if (!ec) self->send_heartbeat();
  }));
}

void bus_impl::arm_expiry() {
  rel_clock::time_point next;
  {
    std::lock_guard<std::mutex> lock(rx_mu_);
    next = peers_.next_expiry();
  }
  if (next == rel_clock::time_point::max()) return;
  expiry_timer_.expires_at(next);
  expiry_timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
    if (!ec) self->on_expiry_timer();
  }));
}

void bus_impl::on_expiry_timer() {
  if (closed_.load()) return;
  std::vector<peer_event> evs;
  {
    std::lock_guard<std::mutex> lock(rx_mu_);
    evs = peers_.expire(rel_clock::now());
  }
  if (!evs.empty()) rx_cv_.notify_all();
  for (auto& ev : evs) dispatch_peer_event(ev);
  arm_expiry();
}

// ---------------------------------------------------------------------------------------------
// Handlers and queries

subscription bus_impl::subscribe(std::string_view pattern, message_handler h, subscribe_options o) {
  if (!valid_pattern(pattern))
    throw config_error("invalid topic pattern '" + std::string(pattern) +
                       "': '.'-separated segments; '*' matches one segment, '>' (last) the rest");
  auto e = std::make_shared<sub_entry>();
  e->pattern = std::string(pattern);
  e->fn = std::move(h);
  e->include_self = o.include_self;
  {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    auto next = std::make_shared<std::vector<std::shared_ptr<sub_entry>>>(*subs_);
    next->push_back(e);
    subs_ = std::move(next);
  }
  // Tell the bus at once: publishers waiting for subscribers should not wait a heartbeat.
  std::weak_ptr<bus_impl> weak = shared_from_this();
  asio::post(strand_, [weak] {
    if (auto self = weak.lock()) self->send_heartbeat();
  });
  return subscription([weak, e] {
    e->active.store(false);
    if (auto self = weak.lock()) {
      {
        std::lock_guard<std::mutex> lock(self->handlers_mu_);
        auto next = std::make_shared<std::vector<std::shared_ptr<sub_entry>>>();
        for (auto& s : *self->subs_)
          if (s != e) next->push_back(s);
        self->subs_ = std::move(next);
      }
      asio::post(self->strand_, [weak] {
        if (auto s = weak.lock()) s->send_heartbeat();
      });
    }
  });
}

template <class H>
subscription bus_impl::add_handler(handler_list<H>& list, H h) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  auto id = list.next_id++;
  list.items.emplace_back(id, std::make_shared<H>(std::move(h)));
  std::weak_ptr<bus_impl> weak = shared_from_this();
  return subscription([weak, &list, id] {
    if (auto self = weak.lock()) {
      std::lock_guard<std::mutex> l(self->handlers_mu_);
      auto& v = list.items;
      v.erase(std::remove_if(v.begin(), v.end(), [id](auto& p) { return p.first == id; }), v.end());
      self->tapped_.store(!self->taps_.items.empty());
    }
  });
}

template <class H>
std::vector<std::shared_ptr<H>> bus_impl::handlers_of(const handler_list<H>& list) const {
  // Copied under the lock, called without it: a handler may (un)register handlers.
  std::lock_guard<std::mutex> lock(handlers_mu_);
  std::vector<std::shared_ptr<H>> out;
  out.reserve(list.items.size());
  for (auto& item : list.items) out.push_back(item.second);
  return out;
}

subscription bus_impl::on_peer_event(peer_handler h) { return add_handler(peer_handlers_, std::move(h)); }
subscription bus_impl::on_loss(loss_handler h) { return add_handler(loss_handlers_, std::move(h)); }
subscription bus_impl::on_datagram(datagram_handler h) {
  auto sub = add_handler(taps_, std::move(h));
  tapped_.store(true);
  return sub;
}

void bus_impl::dispatch_tap(std::string_view dgram, bool injected,
                            const seal::open_result* sealed) {
  datagram_view v;
  v.received = std::chrono::system_clock::now();
  v.source = rx_from_.address().to_string() + ":" + std::to_string(rx_from_.port());
  v.bytes = dgram;
  v.injected_drop = injected;
  v.sealed = sealed && sealed->ok;
  if (sealed && !sealed->ok) {
    v.ok = false;
    v.reason = sealed->reason;
    v.error = sealed->detail;
    for (auto& h : handlers_of(taps_)) guarded("datagram tap", "", [&] { (*h)(v); });
    return;
  }
  wire::envelope env;
  auto r = wire::for_each_frame(dgram, [&](std::string_view frame) {
    frame_view f;
    f.text = frame;
    auto d = wire::decode_frame(frame, env);
    f.ok = d.ok;
    if (!d) {
      f.reason = d.reason;
      f.error = d.detail;
    } else {
      f.type = wire::to_string(env.type);
      f.from = peer_id{env.from};
      f.name = env.name;
      f.seq = env.seq;
      f.topic = env.topic;
      f.data = env.data;
      f.to = peer_id{env.to};
      for (std::size_t i = 0; i < env.range_count; ++i)
        f.nack_seqs += env.ranges[i].last - env.ranges[i].first + 1;
    }
    v.frames.push_back(f);
  });
  if (!r) {
    v.ok = false;
    v.reason = r.reason;
    v.error = r.detail;
    v.frames.clear();
  }
  for (auto& h : handlers_of(taps_)) guarded("datagram tap", "", [&] { (*h)(v); });
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
  s.published = ld(c_.published);
  s.delivered = ld(c_.delivered);
  for (std::size_t i = 0; i < drop_reason_count; ++i) s.dropped[i] = ld(c_.dropped[i]);
  s.nacks_received = ld(c_.nacks_received);
  s.repairs_sent = ld(c_.repairs_sent);
  s.repairs_unavailable = ld(c_.repairs_unavailable);
  s.dropped_tx_injected = ld(c_.dropped_tx_injected);
  s.nacks_sent = ld(c_.nacks_sent);
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
    s.streams.push_back(std::move(ss));
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Closing

void bus_impl::close() {
  if (closed_.load()) return;
  const bool on_strand = strand_.running_in_this_thread();
  if (!opts_.passive && (c_.published.load() > 0 || sent_sequenced_.load()) && !on_strand) {
    // Linger like a socket with SO_LINGER: advertise the tail, then stay until the receivers
    // have been quiet for a while, so a lost last message can still be repaired.
    auto start = rel_clock::now();
    auto next_advert = start;
    for (;;) {
      auto now = rel_clock::now();
      if (now >= next_advert) {
        std::lock_guard<std::mutex> lock(send_mu_);
        send_advert_locked();  // "anyone missing anything?": receivers NACK their gaps
        next_advert = now + close_advert_every;
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
  auto self = shared_from_this();
  auto shutdown = [self] {
    std::error_code ec;
    self->hb_timer_.cancel();
    self->nack_timer_.cancel();
    self->expiry_timer_.cancel();
    self->tail_timer_.cancel();
    self->welcome_timer_.cancel();
    self->calls_timer_.cancel();
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
