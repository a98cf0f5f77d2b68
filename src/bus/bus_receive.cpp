// bus/bus_receive.cpp: the receive side: datagrams to frames, per-sender streams, NACKs, presence.
#include "bus/bus_impl.hpp"

#include "bus/bus_limits.hpp"
#include "wire/encode.hpp"
#include "wire/json_scan.hpp"

#include <asio/bind_executor.hpp>

#include <algorithm>

namespace peerbus::detail {

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
      dispatch_loss(loss_event{peer_id{sender}, s.name, item->seqs.first, item->seqs.last,
                               loss_cause::not_repaired, {}});
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

}  // namespace peerbus::detail
