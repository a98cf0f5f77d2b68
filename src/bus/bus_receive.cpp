// bus/bus_receive.cpp: the receive side: datagrams to frames, per-sender streams, NACKs, presence.
#include "bus/bus_impl.hpp"

#include "bus/bus_limits.hpp"
#include "transport/platform.hpp"
#include "wire/encode.hpp"
#include "wire/json_scan.hpp"

#include <asio/bind_executor.hpp>

#include <algorithm>

namespace peerbus::detail {

namespace {
// A NACK frame besides its ranges: {"v":1,"type":"nack","from":"<16>","to":"<16>","ranges":[]}
constexpr std::size_t nack_frame_overhead = 140;  // with "cong" and "have"
}  // namespace

void bus_impl::receive() {
  // Wait for readability, then drain what is queued with plain non-blocking reads: one wake-up
  // and one trip through the strand per burst instead of per datagram, and recvmsg gives the
  // socket's overflow count (congestion, see note_overflows). Asio's epoll reactor re-arms the
  // socket with EPOLL_CTL_MOD for every async_wait (a non-speculative wait), and the kernel then
  // reports it ready at once if anything is queued: a drain that yielded with datagrams left
  // (drain_datagrams' budget) is woken again without new traffic. The call costs ~0.18 us, two
  // per round trip (docs/performance.md, section 0000); keep the property if the wait is replaced.
  transport_.socket().async_wait(
      asio::socket_base::wait_read,
      asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
        if (ec == asio::error::operation_aborted || self->closed_.load()) return;
        if (!ec) self->drain_socket();
        self->receive();
      }));
}

void bus_impl::drain_socket() {
  in_drain_ = true;
  drain_datagrams();
  in_drain_ = false;
  if (burst_due_) {
    // Handlers published while we read: nothing more of theirs comes before the next wake-up.
    burst_due_ = false;
    burst_over();
  }
}

void bus_impl::drain_datagrams() {
  // Bounded, so timers and posted work on the strand get their turn under a flood: by count,
  // and by time, since a datagram may carry hundreds of messages and unqueued handlers run
  // here (a handler that prints to a slow pipe would otherwise hold back our heartbeats for
  // seconds, and peers would take us for gone).
  std::size_t budget = max_datagrams_per_wake;
  const auto started = rel_clock::now();
  while (budget > 0) {
    const auto sent_before = c_.datagrams_sent.load(std::memory_order_relaxed);
    std::error_code ec;
    const std::size_t n = rx_batch_.receive(transport_.socket(), ec);
    if (n == 0) {
      // An error the socket reports once (a pending one, ENOMEM...): counted and logged, and
      // the next wake-up reads on. Nothing was taken from the queue.
      if (ec) {
        c_.receive_errors.fetch_add(1, std::memory_order_relaxed);
        if (opts_.log) opts_.log(log_level::warning, "receive failed: " + ec.message());
      }
      return;
    }
    if (rx_batch_.overflow_known()) note_overflows(rx_batch_.overflows());
    for (std::size_t i = 0; i < n; ++i) {
      rx_from_ = &rx_batch_.from(i);
      on_datagram(rx_batch_.datagram(i));
      if (closed_.load(std::memory_order_relaxed)) return;
    }
    budget -= std::min(budget, n);
    if (n == rx_batch_.slots()) check_backlog();  // more is queued: are we falling behind?
    if (rel_clock::now() - started >= max_drain_time) return;
    // Fewer than asked for: the socket was empty, no call needed to find that out. Read again
    // only if we sent meanwhile (a handler published): the multicast loop has put our own
    // datagram behind, and reading it now costs one call where leaving it costs a wake-up.
    if (n < rx_batch_.slots() && c_.datagrams_sent.load(std::memory_order_relaxed) == sent_before)
      return;
  }
}

// The kernel dropped datagrams for want of room in our receive buffer: we are not keeping up.
void bus_impl::note_overflows(std::uint32_t total) {
  if (!overflow_seen_) {
    overflow_seen_ = true;
    overflow_base_ = total;  // drops before we looked are not ours to report
    return;
  }
  if (total == overflow_base_) return;
  c_.rx_overflows.fetch_add(static_cast<std::uint32_t>(total - overflow_base_), std::memory_order_relaxed);
  overflow_base_ = total;
  congestion(rel_clock::now());
}

// Our receive queue is more than three quarters full: we are falling behind. The drops that
// would follow show only once we have read the backlog in front of them, so the senders hear it
// now, before anything is lost (the idea of ECN). Not at half: a subscriber that is briefly
// behind (starting up, descheduled) catches up, and slowing a sender costs it ~0.2 s at full
// rate; the last quarter of a buffer still takes milliseconds to fill, and the notice arrives in
// microseconds on a host.
void bus_impl::check_backlog() {
  const auto q = platform::receive_queue(transport_.socket());
  if (!q || q->capacity == 0 || q->queued * 4 < q->capacity * 3) return;
  c_.rx_backlogs.fetch_add(1, std::memory_order_relaxed);
  congestion(rel_clock::now());
}

// Congestion (reliability/pacer, docs/protocol.md 8.8): one episode is many drops or backlog
// checks in a row, and a sender slows down once per episode (it compares the count we send
// with the last it heard from us). Our NACKs carry the count for a while (the gaps they ask
// about are the episode's), and the senders we heard lately get it at once in a NACK that asks
// for nothing.
void bus_impl::congestion(rel_clock::time_point now) {
  congested_until_ = now + congestion_memory;
  // Congestion that goes on past an episode's length is a new episode: still too fast.
  if (congestion_episodes_ != 0 && now - episode_start_ < congestion_episode) return;
  ++congestion_episodes_;
  episode_start_ = now;
  if (opts_.passive) return;
  // Established senders only (a flood of forged ids must not turn into a flood of notices), and
  // at most max_congestion_notices of them, the most lately heard.
  std::vector<std::pair<rel_clock::time_point, std::uint64_t>> heard;
  {
    std::lock_guard<std::mutex> lock(rx_mu_);
    for (const auto& [id, s] : streams_)
      if (now - s->last_heard < congestion_notice_recent && established(id, *s))
        heard.emplace_back(s->last_heard, id);
  }
  if (heard.size() > max_congestion_notices) {
    std::partial_sort(heard.begin(), heard.begin() + max_congestion_notices, heard.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    heard.resize(max_congestion_notices);
  }
  for (const auto& [when, to] : heard) {
    std::string buf;
    wire::frame_writer(buf, wire::frame_type::nack, id_)
        .id("to", to)
        .raw("ranges", "[]")
        .uint("cong", congestion_episodes_)
        .finish();
    send_control(buf);
    c_.congestion_notices.fetch_add(1, std::memory_order_relaxed);
  }
}

// Flow control (docs/protocol.md 8.9): a NACK that asks for nothing and says how far we have got
// with this sender's stream: every seq up to "have" is held or given up. Due every
// flow_report_frames frames or flow_report_bytes bytes from an established sender (a forged
// id gets none), and when a sender that announced itself asks (at most once per
// flow_answer_every unless we moved on). rx_mu_ held.
bool bus_impl::report_due(const stream_entry& s) const noexcept {
  return s.stream.next_expected() - 1 - s.reported_have >= flow_report_frames ||
         s.unreported_bytes >= report_bytes_;
}

std::string bus_impl::progress_report(stream_entry& s, std::uint64_t sender,
                                      rel_clock::time_point now, bool asked) {
  if (opts_.passive || s.held) return {};
  const std::uint64_t have = s.stream.next_expected() - 1;
  if (asked) {
    if (!peers_.find(sender)) return {};
    if (have == s.reported_have && now - s.reported_at < flow_answer_every) return {};
  } else if (!established(sender, s)) {
    return {};
  }
  s.reported_have = have;
  s.reported_at = now;
  s.unreported_bytes = 0;
  std::string buf;
  wire::frame_writer(buf, wire::frame_type::nack, id_)
      .id("to", sender)
      .raw("ranges", "[]")
      .uint("have", have)
      .finish();
  return buf;
}

void bus_impl::on_datagram(std::string_view dgram) {
  c_.datagrams_received.fetch_add(1, std::memory_order_relaxed);
  c_.bytes_received.fetch_add(dgram.size(), std::memory_order_relaxed);
  if (!tapped_.load(std::memory_order_relaxed) && self_subs_.load(std::memory_order_relaxed) == 0 &&
      own_datagram(dgram)) {
    // Multicast loop hands us back everything we send; unless a subscription or a tap wants
    // it, it is set aside before any decoding or opening (it was ~30% of a publisher's CPU).
    c_.own_datagrams.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const bool injected = rx_faults_.drop();
  seal::open_result opened;
  if (sealer_) {
    opened = sealer_->open(dgram, rx_plain_.get(), rx_slot_size, now_us());
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

// Is this datagram one we sent? Sealed: the sender id in the clear header. Open: the first
// frame's "from", which our own writer puts among the first 40 bytes. A datagram forged with our
// id is set aside too, which is all it deserves.
bool bus_impl::own_datagram(std::string_view dgram) const noexcept {
  if (sealer_) {
    if (dgram.size() < seal::header_size || dgram.substr(0, wire::sealed_magic.size()) != wire::sealed_magic)
      return false;
    std::uint64_t sender = 0;
    for (std::size_t i = 8; i < 16; ++i) sender = (sender << 8) | static_cast<unsigned char>(dgram[i]);
    return sender == id_;
  }
  constexpr std::string_view key = "\"from\":\"";
  const auto head = dgram.substr(0, 64);
  const auto at = head.find(key);
  if (at == std::string_view::npos || at + key.size() + 16 > dgram.size()) return false;
  return dgram.substr(at + key.size(), 16) == std::string_view(own_hex_, 16);
}

// A sender sends nothing new after its goodbye (seq above the goodbye's, where its retired stream
// had got to: resume_at_): one that does never left, and its goodbye was forged. It is taken back
// at once (its next heartbeat announces it) instead of ignored for its expiry window. rx_mu_ held.
void bus_impl::taken_back(const wire::envelope& env, rel_clock::time_point now) {
  if (!peers_.said_goodbye(env.from, now)) return;
  const auto resume = resume_at_.find(env.from);
  // A heartbeat's seq is the highest it has sent; a sequenced frame's, its own.
  const std::uint64_t newest = env.seq;
  if (resume == resume_at_.end() ? newest > 0 : newest >= resume->second) {
    peers_.forget_departure(env.from);
    c_.goodbyes_refuted.fetch_add(1, std::memory_order_relaxed);
  }
}

bool bus_impl::established(std::uint64_t sender, const stream_entry& s) const {
  // Frames that arrived, not frames delivered: a real sender whose first frame we missed is
  // established by the traffic behind the gap, which a forged id's single frame is not.
  return s.stream.counters().received >= established_frames && peers_.find(sender);
}

// All streams' held and reordered frames stay within max_buffered_total: past it, the streams
// that are not established (new ids, unannounced ones: what a flood of forged senders makes)
// give theirs up, newest first; an established peer with traffic never loses frames here.
// Returns whether any stream gave up frames (they are gappy_ now: the NACK timer drains them).
bool bus_impl::bound_buffers(std::size_t added) {
  buffered_estimate_ += added;
  if (buffered_estimate_ <= max_buffered_total) return false;
  std::size_t total = 0;
  std::vector<std::pair<std::uint64_t, stream_entry*>> candidates;
  for (auto& [id, e] : streams_) {
    const std::size_t b = e->held_bytes + e->stream.buffered_bytes();
    total += b;
    if (b > 0 && !established(id, *e)) candidates.emplace_back(id, e.get());
  }
  buffered_estimate_ = total;
  if (total <= max_buffered_total) return false;
  std::sort(candidates.begin(), candidates.end(),
            [](const auto& a, const auto& b) { return a.second->created > b.second->created; });
  bool shed = false;
  for (auto& [id, e] : candidates) {
    if (total <= max_buffered_total / 4 * 3) break;
    // Held frames were never anyone's to deliver yet (the sender's announce decides): dropped.
    // Reordered frames become part of one lost run, reported in order.
    c_.frames_shed.fetch_add(e->held_frames.size() + e->stream.buffered_count(),
                             std::memory_order_relaxed);
    total -= e->held_bytes;
    e->held_frames.clear();
    e->held_frames.shrink_to_fit();
    e->held_bytes = 0;
    total -= e->stream.shed();
    gappy_.insert(id);
    shed = true;
  }
  buffered_estimate_ = total;
  return shed;
}

// Is all of a sender's stream ours to have, as its heartbeat or advert tells? Yes if its bus
// started after ours, or if it sent seq 1 after we started ("since"): a publisher that started
// first and waited for us (wait_for_subscribers) sent us everything. Otherwise we joined late,
// and what it sent before we first heard from it is history, not a loss to NACK. An advert
// carries no "start", and without "since" says nothing either way (false).
bool bus_impl::ours_from_start(const wire::envelope& env) const noexcept {
  return (env.type == wire::frame_type::hb && env.start >= start_us_) ||
         (env.since != 0 && env.since >= start_us_);
}

// Where a held stream starts once its sender's heartbeat or advert `env` tells (8.1): at the
// oldest seq it still holds if all of its stream is ours, else at the oldest held frame, as a
// late joiner. rx_mu_ held.
std::uint64_t bus_impl::held_start(const stream_entry& s, const wire::envelope& env) const {
  return ours_from_start(env) ? std::max<std::uint64_t>(env.lo, 1) : lowest_held(s, env.seq + 1);
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
  // A heartbeat or advert whose whole stream is ours (its announce and first messages were lost)
  // starts it at the sender's lowest held seq instead, and is its first advert: the rest is NACKed.
  std::uint64_t first = wire::is_sequenced(env.type) ? env.seq
                        : ours_from_start(env)       ? std::max<std::uint64_t>(env.lo, 1)
                                                     : env.seq + 1;
  // A sender heard again after its stream was retired resumes where it had got to (resume_at_):
  // older seqs are duplicates, and what it sent meanwhile is a gap to NACK, not a silent hole.
  const auto resume = resume_at_.find(env.from);
  if (resume != resume_at_.end()) first = resume->second;
  taken_back(env, now);
  auto e = std::make_unique<stream_entry>(rel_cfg_, first, rng_);
  e->name = std::string(env.name);
  e->last_heard = now;
  e->created = now;
  // Frames of a sender whose announce we missed wait for its heartbeat (stream_entry::held).
  // An advert alone says as little (it may be the tail advert of a first message we lost).
  e->held = resume == resume_at_.end() &&
            (env.type == wire::frame_type::adv || (wire::is_sequenced(env.type) && env.seq > 1)) &&
            !peers_.find(env.from);
  return streams_.emplace(env.from, std::move(e)).first->second.get();
}

// Ends the wait of a held stream: a fresh stream expecting `first` replaces it and takes the
// held frames in seq order. Those that follow on at once are appended to `deliverable`, for the
// caller to hand on (deliver_frames) outside rx_mu_ before it drains the rest. The heartbeat
// that ended the wait, if any, is the fresh stream's first advert, taken before the held frames:
// its claim is a claim made before any frame, bounded by max_first_gap (a forged heartbeat with a
// later start and a huge seq must not make us NACK up to it). rx_mu_ held.
bus_impl::stream_entry* bus_impl::release_held(std::unique_ptr<stream_entry>& slot,
                                               std::uint64_t first, rel_clock::time_point now,
                                               std::vector<std::string>& deliverable,
                                               const wire::envelope* hb) {
  auto fresh = std::make_unique<stream_entry>(rel_cfg_, first, rng_);
  fresh->name = std::move(slot->name);
  fresh->last_heard = slot->last_heard;
  fresh->created = slot->created;
  if (hb) advert(*fresh, *hb, now);
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
      // What a repair costs our receive buffer (nack_grant), smoothed over the last ~64 frames.
      avg_frame_bytes_ += (static_cast<double>(env.frame.size()) - avg_frame_bytes_) / 64;
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
          const bool shed = bound_buffers(env.frame.size());
          lock.unlock();
          if (shed) schedule_nacks(now);  // the timer drains what was given up
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
        if (bound_buffers(env.frame.size())) schedule_nacks(now);
        auto deadline = s->stream.next_deadline();
        // A new stream's first jump is reported lost at once (max_first_gap), not NACKed: the
        // frame behind it is ready now.
        const bool ready = s->stream.has_ready();
        lock.unlock();
        schedule_nacks(deadline);
        if (ready) drain(*s, env.from);
        return;
      }
      if (res != offer_result::deliver) return;
      // In order, the common case: what was buffered behind it (if anything) follows.
      const bool more = s->stream.has_ready();
      std::string report;
      s->unreported_bytes += env.frame.size();
      if (report_due(*s)) report = progress_report(*s, env.from, now, false);
      lock.unlock();
      if (!report.empty()) send_control(report);
      deliver(env);
      if (more) drain(*s, env.from);
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
      taken_back(env, now);
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
        // Its start times settle what we should have: everything (from the oldest it still
        // holds) if its stream began after we started, else what came since we first heard it.
        s = release_held(streams_[env.from], held_start(*s, env), now, released, &env);
      } else if (s) {
        advert(*s, env, now);
      }
      if (s) {
        if (s->stream.next_deadline() != rel_clock::time_point::max()) {
          gappy_.insert(env.from);
          deadline = s->stream.next_deadline();
        }
      }
      if (env.fc && opts_.flow_control && !opts_.passive) {
        // A receiver that reports its progress: our window waits for it (8.9) while it lives.
        // Added with rx_mu_ still held (the one place send_mu_ nests inside it): whoever sees
        // this peer in the table (wait_for_subscribers) and publishes finds it here first, so
        // its guessed "have" comes before that publish.
        std::lock_guard<std::mutex> send_lock(send_mu_);
        flow_.on_announce(env.from, next_seq_ - 1, window_.bytes_pushed(), env.rwin,
                          now + a.interval * std::max(opts_.expiry_misses, 1), now);
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
      std::vector<std::string> released;
      if (s->held) {
        // An advert that says when its stream began ("since") places it as well as a heartbeat
        // would: a sender whose one heartbeat we missed may say goodbye before its next one.
        // Without "since", its heartbeat will say where its stream starts for us.
        if (env.since == 0) return;
        s = release_held(streams_[env.from], held_start(*s, env), now, released, &env);
      } else {
        advert(*s, env, now);
      }
      auto deadline = s->stream.next_deadline();
      if (deadline != rel_clock::time_point::max()) gappy_.insert(env.from);
      std::string report;
      if (env.ask) report = progress_report(*s, env.from, now, true);
      lock.unlock();
      if (!report.empty()) send_control(report);
      deliver_frames(released);
      drain(*s, env.from);
      schedule_nacks(deadline);
      return;
    }
    case wire::frame_type::bye: {
      if (self_frame) return;
      std::unique_lock<std::mutex> lock(rx_mu_);
      auto it = streams_.find(env.from);
      if (it != streams_.end() && env.seq < it->second->stream.highest_seen()) {
        // A sender's goodbye carries the last seq it sent; one below what we have heard from it
        // is not its own (open bus: anyone can send a goodbye in its name).
        count_drop(drop_reason::implausible);
        return;
      }
      auto ev = peers_.on_goodbye(env.from, now);
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
      {
        std::lock_guard<std::mutex> send_lock(send_mu_);
        flow_.forget(env.from);  // gone: nothing to wait for
        flow_cv_.notify_all();
      }
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
    // Frames released behind a filled gap count towards the next progress report as in-order
    // ones do: a sender held at our window hears of them without having to ask.
    std::string report;
    if (item) {
      if (!item->is_loss()) s.unreported_bytes += item->frame.size();
      if (report_due(s)) report = progress_report(s, sender, rel_clock::now(), false);
    }
    lock.unlock();
    if (!report.empty()) send_control(report);
    if (!item) return;
    if (item->is_loss()) {
      report_stream_loss(sender, s.name, item->seqs.first, item->seqs.last);
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
  // A message it was still sending will not be completed.
  for (const auto& l : reasm_.on_gone(sender)) dispatch_loss(sender, gone->name, l.first, l.last);
  after_reassembly();
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

void bus_impl::schedule_nacks(rel_clock::time_point deadline) {
  if (opts_.passive || deadline == rel_clock::time_point::max()) return;
  if (deadline >= nack_deadline_) return;
  nack_deadline_ = deadline;
  nack_timer_.expires_at(deadline);
  nack_timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
    if (!ec) self->on_nack_timer();
  }));
}

// Seqs one stream may ask for in one turn so that their repairs take at most half our receive
// buffer: asking for more than it holds makes the repairs overflow it and be lost again (a
// non-root user's buffer is 208 KiB on stock Debian: about 700 small frames).
std::uint64_t bus_impl::nack_grant() const noexcept {
  const double frame = std::max(avg_frame_bytes_, 64.0);
  const auto fit = static_cast<std::uint64_t>(static_cast<double>(transport_.receive_buffer()) / 2 / frame);
  return std::max<std::uint64_t>(fit, 64);
}

void bus_impl::on_nack_timer() {
  nack_deadline_ = rel_clock::time_point::max();
  if (closed_.load()) return;
  auto now = rel_clock::now();
  rel_clock::time_point next = rel_clock::time_point::max();
  struct nack_out {
    std::uint64_t sender;
    std::uint64_t have;  // flow control: every NACK also reports our progress (8.9)
    std::vector<seq_range> ranges;
  };
  std::vector<nack_out> to_send;
  std::vector<std::uint64_t> to_drain;
  {
    std::lock_guard<std::mutex> lock(rx_mu_);
    // The streams with NACKs due take turns at the NACK budget (bus_limits.hpp): established
    // ones first, then the rest; within each, the one served longest ago first.
    struct turn {
      std::uint64_t sender;
      stream_entry* s;
      bool established;
    };
    std::vector<turn> due;
    for (auto it = gappy_.begin(); it != gappy_.end();) {
      auto s = streams_.find(*it);
      if (s == streams_.end()) {
        it = gappy_.erase(it);
        continue;
      }
      stream_entry& e = *s->second;
      if (e.stream.next_deadline() <= now)
        due.push_back({*it, &e, established(*it, e)});
      ++it;
    }
    std::sort(due.begin(), due.end(), [](const turn& a, const turn& b) {
      return a.established != b.established ? a.established : a.s->nack_turn < b.s->nack_turn;
    });
    for (const turn& t : due) {
      // Streams not established yet may not spend the reserve.
      // Established streams (real senders) draw on a budget of their own, large enough to
      // repair a receive buffer's worth of loss at once; the others share the small one.
      token_bucket& budget = t.established ? nack_budget_established_ : nack_budget_;
      const std::uint64_t floor = t.established ? 0 : nack_budget_reserve;
      const std::uint64_t have = budget.available(now);
      const std::uint64_t grant = std::min({have > floor ? have - floor : 0, max_repairs_per_nack, nack_grant()});
      const auto deferred_before = t.s->stream.counters().nacks_deferred;
      auto ranges = t.s->stream.due_nacks(now, grant);
      c_.nacks_deferred.fetch_add(t.s->stream.counters().nacks_deferred - deferred_before,
                                  std::memory_order_relaxed);
      std::uint64_t asked = 0;
      for (const auto& r : ranges) asked += r.count();
      budget.take_up_to(asked, now);
      if (!ranges.empty()) {
        t.s->nack_turn = now;
        const std::uint64_t at = t.s->stream.next_expected() - 1;
        t.s->reported_have = at;
        t.s->reported_at = now;
        t.s->unreported_bytes = 0;
        to_send.push_back({t.sender, at, std::move(ranges)});
      }
      to_drain.push_back(t.sender);  // giving up on a gap may have released frames
      if (t.s->stream.next_deadline() <= now) {
        // Still due: more ranges than one NACK holds (call again at once), or out of budget
        // (again once it has refilled a little).
        next = std::min(next, now + budget.wait_for(floor + nack_budget_quantum, now));
      }
    }
    for (auto it = gappy_.begin(); it != gappy_.end();) {
      auto s = streams_.find(*it);
      const auto d = s == streams_.end() ? rel_clock::time_point::max() : s->second->stream.next_deadline();
      if (s != streams_.end() && s->second->stream.has_ready())
        to_drain.push_back(*it);  // a stream that gave up its buffer (bound_buffers)
      if (d == rel_clock::time_point::max()) {
        it = gappy_.erase(it);
        continue;
      }
      if (d > now) next = std::min(next, d);
      ++it;
    }
  }
  for (auto& [sender, have, ranges] : to_send) {
    // 64 ranges take up to 2.9 KB: with a small mtu they go in several NACKs.
    std::string list;
    std::size_t in_list = 0;
    auto flush = [&, to = sender, at = have] {
      std::string buf;
      wire::frame_writer w(buf, wire::frame_type::nack, id_);
      w.id("to", to).raw("ranges", list + "]");
      if (now < congested_until_) w.uint("cong", congestion_episodes_);
      w.uint("have", at);
      w.finish();
      c_.nacks_sent.fetch_add(in_list, std::memory_order_relaxed);
      send_control(buf);
      list.clear();
      in_list = 0;
    };
    for (const auto& r : ranges) {
      std::string item = '[' + std::to_string(r.first) + ',' + std::to_string(r.last) + ']';
      if (in_list > 0 && list.size() + item.size() + nack_frame_overhead > max_plain_) flush();
      list += list.empty() ? '[' : ',';
      list += item;
      ++in_list;
    }
    if (in_list > 0) flush();
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

}  // namespace peerbus::detail
