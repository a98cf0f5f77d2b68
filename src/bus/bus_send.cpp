// bus/bus_send.cpp: the send side: publish, heartbeats, adverts, answering NACKs with repairs.
#include "bus/bus_impl.hpp"

#include "bus/bus_limits.hpp"
#include "wire/encode.hpp"
#include "wire/json_scan.hpp"
#include "wire/topic.hpp"

#include <peerbus/error.hpp>

#include <asio/bind_executor.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <cstring>

namespace peerbus::detail {

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
  if (auto ec = check_publish(topic, json_text.size())) return ec;
  if (!wire::valid_json(json_text, wire::max_depth - 1)) return errc::invalid_json;
  return send_message(topic, json_text, {});
}

std::error_code bus_impl::publish_bytes(std::string_view topic, std::string_view bytes,
                                        std::string_view ctype) {
  if (auto ec = check_publish(topic, bytes.size())) return ec;
  if (!wire::valid_ctype(ctype)) return errc::bad_content_type;
  // "application/json" promises JSON: receivers hand it to data(), so it must be JSON.
  if (ctype == wire::json_ctype && !wire::valid_json(bytes, wire::max_depth - 1))
    return errc::invalid_json;
  return send_message(topic, bytes, ctype);
}

std::error_code bus_impl::check_publish(std::string_view topic, std::size_t size) const {
  if (closed_.load(std::memory_order_relaxed)) return errc::closed;
  if (opts_.passive) return errc::passive;
  if (!valid_topic(topic)) return errc::bad_topic;
  if (size > opts_.max_message_size) return errc::payload_too_large;
  return {};
}

std::error_code bus_impl::send_message(std::string_view topic, std::string_view payload,
                                       std::string_view ctype) {
  rel_clock::duration pause{};
  {
    std::unique_lock<std::mutex> lock(send_mu_);
    const std::size_t bound = wire::msg_bound(msg_head_.size(), topic.size(), payload.size());
    if (!flow_.empty()) {
      // Frames and bytes this message adds to the window: exact enough for one JSON frame, an
      // upper bound for a body or fragments (each fragment's header and body line take at most
      // `overhead`; send_fragments_locked's chunks are at least max_plain_ - overhead).
      std::size_t frames = 1, bytes = bound;
      if (!ctype.empty() || bound > max_plain_) {
        const std::size_t overhead = 256 + name_.size() + topic.size() + ctype.size();
        frames = payload.size() / (max_plain_ > overhead ? max_plain_ - overhead : 1) + 2;
        bytes = payload.size() + frames * overhead;
      }
      wait_for_receivers(lock, frames, bytes);
      if (closed_.load(std::memory_order_relaxed)) return errc::closed;
    }
    const auto now = rel_clock::now();
    const std::int64_t ts = wall_us_locked(now);
    if (ctype.empty() && bound <= max_plain_) {
      // The common case, a JSON message that fits a datagram: written once, straight into the
      // open batch (or the lone-message buffer), then kept by the window.
      const std::uint64_t seq = next_seq_++;
      std::string* out = &tx_buf_;
      if (in_burst_) {
        if (!batch_.empty() && batch_.size() + 1 + bound > max_plain_) flush_batch_locked();
        if (!batch_.empty()) batch_ += '\n';
        out = &batch_;
      } else {
        tx_buf_.clear();
      }
      const std::size_t at = out->size();
      out->resize(at + bound);
      const std::size_t n = wire::write_msg(out->data() + at, msg_head_, seq, ts, topic, payload);
      out->resize(at + n);
      if (std::memchr(payload.data(), '\n', payload.size())) {
        // A raw line feed would split the frame on the wire (frames end at '\n'). In valid JSON
        // it can only be white space between tokens (strings hold it escaped), so a space
        // means the same.
        std::replace(out->begin() + static_cast<std::ptrdiff_t>(at), out->end(), '\n', ' ');
      }
      const std::string_view frame(out->data() + at, n);
      keep_locked(seq, frame);
      pacer_.on_send(now, n);
      if (in_burst_) ++batch_frames_;
      else send_lone_locked(frame);
    } else {
      tx_buf_.clear();
      const std::uint64_t seq = next_seq_;
      wire::frame_writer w(tx_buf_, wire::frame_type::msg, id_);
      w.str("name", name_).uint("seq", seq).int64("ts", ts).str("topic", topic);
      if (ctype.empty()) w.raw("data", payload);
      else w.str("ctype", ctype);
      w.finish();
      const std::size_t body = ctype.empty() ? 0 : wire::body_overhead(payload.size()) + payload.size();
      if (tx_buf_.size() + body > max_plain_) {
        // Too large for one datagram: fragments. JSON text travels as their bodies, raw line
        // feeds and all (a body is never split at '\n').
        if (auto ec = send_fragments_locked(topic, ctype.empty() ? wire::json_ctype : ctype, payload))
          return ec;
      } else {
        if (!ctype.empty()) {
          wire::append_body(tx_buf_, payload);
        } else if (payload.find('\n') != std::string_view::npos) {
          std::replace(tx_buf_.begin(), tx_buf_.end(), '\n', ' ');  // as above
        }
        ++next_seq_;
        keep_locked(seq, tx_buf_);
        send_sequenced_locked(tx_buf_, now);
      }
    }
    pause = pacer_.debt(now);
  }
  c_.published.fetch_add(1, std::memory_order_relaxed);
  after_sequenced_send();
  pace(pause);
  return {};
}

// Wall-clock µs for a frame's "ts", from the steady clock the send path reads anyway: one clock
// read per message instead of two. Re-anchored every 100 ms, so a wall clock that is stepped or
// slewed is followed within that.
std::int64_t bus_impl::wall_us_locked(rel_clock::time_point now) {
  if (wall_anchor_ == rel_clock::time_point{} || now - wall_anchor_ >= std::chrono::milliseconds(100)) {
    wall_anchor_ = now;
    wall_anchor_us_ = now_us();
  }
  return wall_anchor_us_ +
         std::chrono::duration_cast<std::chrono::microseconds>(now - wall_anchor_).count();
}

std::error_code bus_impl::send_fragments_locked(std::string_view topic, std::string_view ctype,
                                                std::string_view payload) {
  const std::int64_t ts = now_us();
  auto header = [&](std::uint64_t seq, std::uint64_t frag, std::uint64_t nfrag) {
    tx_buf_.clear();
    wire::frame_writer(tx_buf_, wire::frame_type::msg, id_)
        .str("name", name_)
        .uint("seq", seq)
        .int64("ts", ts)
        .str("topic", topic)
        .str("ctype", ctype)
        .uint("frag", frag)
        .uint("nfrag", nfrag)
        .uint("size", payload.size())
        .finish();
  };
  // Every fragment's header is at most this long (the widest seq and fragment numbers), so every
  // chunk of this size fits, whatever the fragment's own numbers.
  header(UINT64_MAX, wire::max_fragments, wire::max_fragments);
  const std::size_t room = tx_buf_.size() + wire::body_overhead(max_plain_);
  if (room >= max_plain_ || payload.size() < 2) return errc::payload_too_large;
  const std::size_t chunk = max_plain_ - room;
  const std::uint64_t nfrag = std::max<std::uint64_t>(2, (payload.size() + chunk - 1) / chunk);
  if (nfrag > wire::max_fragments) return errc::payload_too_large;
  // Even chunks: no tiny last fragment.
  const std::size_t each = static_cast<std::size_t>((payload.size() + nfrag - 1) / nfrag);
  for (std::uint64_t i = 0; i < nfrag; ++i) {
    const std::uint64_t seq = next_seq_++;
    header(seq, i, nfrag);
    wire::append_body(tx_buf_, payload.substr(static_cast<std::size_t>(i) * each, each));
    keep_locked(seq, tx_buf_);
    send_sequenced_locked(tx_buf_, rel_clock::now());
  }
  return {};
}

void bus_impl::pace(rel_clock::duration pause) {
  // The publisher waits out its rate limit here, holding no lock. Not on the bus's executor: a
  // handler that publishes must not stall receiving (its messages go at the rate it calls).
  if (pause > rel_clock::duration::zero() && !strand_.running_in_this_thread())
    std::this_thread::sleep_for(pause);
}

// Every sequenced frame we send is kept here for repairs; the first also sets "since" (when
// seq 1 left, as our heartbeats and adverts say: docs/protocol.md 8.1).
void bus_impl::keep_locked(std::uint64_t seq, std::string_view frame) {
  if (first_sent_us_ == 0) first_sent_us_ = now_us();
  window_.push(seq, frame);
}

// The sender was idle: a lone message leaves at once, never waiting for company. What follows
// before the bus thread next looks (end_burst) is a burst and is batched.
void bus_impl::send_lone_locked(std::string_view frame) {
  in_burst_ = true;
  send_locked(frame);
}

void bus_impl::send_sequenced_locked(std::string_view frame, rel_clock::time_point now) {
  pacer_.on_send(now, frame.size());
  if (!in_burst_) {
    send_lone_locked(frame);
    return;
  }
  if (!batch_.empty() && batch_.size() + 1 + frame.size() > max_plain_) flush_batch_locked();
  if (!batch_.empty()) batch_ += '\n';
  batch_.append(frame.data(), frame.size());
  ++batch_frames_;
}

void bus_impl::flush_batch_locked() {
  if (batch_.empty()) return;
  c_.batched_frames.fetch_add(batch_frames_, std::memory_order_relaxed);
  send_locked(batch_);
  batch_.clear();
  batch_frames_ = 0;
}

void bus_impl::after_sequenced_send() {
  // A handler publishing from the receive loop: the loop ends the burst once it has read what
  // is queued (drain_socket), with no trip through the strand's queue.
  if (strand_.running_in_this_thread() && in_drain_) {
    burst_due_ = true;
    return;
  }
  // One post per burst, not per message: the bus thread runs end_burst when it next gets to it,
  // which is when the sender's burst is taken as over (the sender went idle, or the bus thread
  // got a turn while it kept going: see end_burst).
  if (!end_burst_posted_.load(std::memory_order_relaxed) && !end_burst_posted_.exchange(true)) {
    asio::post(strand_, [self = shared_from_this()] { self->end_burst(); });
  }
}

void bus_impl::burst_over() {
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    flush_batch_locked();
    in_burst_ = false;
  }
  arm_tail_advert();
}

void bus_impl::arm_tail_advert() {
  // The tail advert follows a burst by tail_advert_delay; later bursts ride on a pending one.
  if (!tail_pending_.exchange(true)) {
    tail_timer_.expires_after(opts_.tail_advert_delay);
    tail_timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
      if (!ec) self->send_tail_advert();
    }));
  }
}

void bus_impl::end_burst() {
  {
    std::lock_guard<std::mutex> lock(send_mu_);
    // A sender publishing flat out gets many frames in before the bus thread (which has a core
    // of its own) runs: it is not idle, and flushing now would send small datagrams and cost it
    // a wake-up per handful of messages. Look again shortly instead; the batch leaves when full
    // (from the sender's own thread) or once a look finds the sender stopped. A sender that
    // published only a few frames since the last look counts as gone idle: flushed at once.
    const std::uint64_t since = next_seq_ - burst_seen_seq_;
    burst_seen_seq_ = next_seq_;
    if (!batch_.empty() && since >= busy_sender_frames && !closed_.load(std::memory_order_relaxed)) {
      // The longer it keeps going, the less often we look (each look is a wake-up of this
      // thread on the sender's time): 50, 100, 200 us.
      burst_timer_.expires_after(burst_recheck_);
      burst_recheck_ = std::min(2 * burst_recheck_, busy_sender_recheck_max);
      burst_timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
        if (ec) self->end_burst_posted_.store(false);
        else self->end_burst();
      }));
      return;
    }
    end_burst_posted_.store(false);  // under the lock: a publish from now on posts again
    burst_recheck_ = busy_sender_recheck;
    flush_batch_locked();
    in_burst_ = false;
  }
  arm_tail_advert();
}

void bus_impl::send_tail_advert() {
  tail_pending_.store(false);
  if (closed_.load()) return;
  std::lock_guard<std::mutex> lock(send_mu_);
  if (next_seq_ - 1 == advertised_seq_) return;
  send_advert_locked();
}

void bus_impl::send_advert_locked(bool ask) {
  flush_batch_locked();  // an advert claims every seq up to hi: they must have left first
  advertised_seq_ = next_seq_ - 1;
  std::string buf = advert_frame_locked(ask);
  send_locked(buf);
}

// {"seq": highest sent, "lo": lowest held, "since": when seq 1 left}: "since" lets a receiver
// that never heard our heartbeat place our stream (docs/protocol.md 8.1) all the same. "ask":
// receivers, tell us how far you have got (flow control, 8.9).
std::string bus_impl::advert_frame_locked(bool ask) const {
  std::string buf;
  wire::frame_writer w(buf, wire::frame_type::adv, id_);
  w.uint("seq", next_seq_ - 1).uint("lo", window_.lowest());
  if (first_sent_us_ != 0) w.int64("since", first_sent_us_);
  if (ask) w.boolean("ask", true);
  w.finish();
  return buf;
}

// Pacing cannot promise delivery: a receiver that is descheduled, or prints every message,
// falls behind by more than any window while we send flat out, and a frame that left the
// window can never be repaired. So before frames go out that would push older ones out, we
// wait while a live receiver still needs those (its reports say how far it has got), asking
// for fresh reports meanwhile. Bounded: a receiver that makes no progress for flow_stall_max
// while we wait is left behind (receiver_table). The bus's own threads never wait here: the
// reports we wait for are read there.
void bus_impl::wait_for_receivers(std::unique_lock<std::mutex>& lock, std::size_t frames,
                                  std::size_t bytes) {
  if (flow_.clear_fast(window_.evicts_through(frames, bytes), window_.bytes_pushed() + bytes) ||
      !may_block() || handler_depth > 0)
    return;
  const auto since = rel_clock::now();
  bool counted = false;
  for (;;) {
    const auto now = rel_clock::now();
    const std::uint64_t through = window_.evicts_through(frames, bytes);
    if (closed_.load(std::memory_order_relaxed) ||
        !flow_.holds(through, window_.bytes_pushed() + bytes, next_seq_ - 1, window_.lowest(), now,
                     since, flow_stall_max))
      return;
    if (!counted) {
      c_.flow_waits.fetch_add(1, std::memory_order_relaxed);
      counted = true;
    }
    // Ask at once if reports came since the last ask (a small window turns over between
    // periodic reports: one round trip, not a 10 ms sleep), else every flow_ask_every.
    const auto reports = c_.flow_reports.load(std::memory_order_relaxed);
    if (now - last_ask_ >= flow_ask_every || reports != reports_at_ask_) {
      last_ask_ = now;
      reports_at_ask_ = reports;
      send_advert_locked(true);
    }
    flow_cv_.wait_for(lock, flow_ask_every);
  }
}

bool bus_impl::unconfirmed_locked(rel_clock::time_point now, rel_clock::time_point since) {
  return next_seq_ > 1 && !flow_.empty() &&
         flow_.holds(next_seq_ - 1, 0, next_seq_ - 1, window_.lowest(), now, since, flow_stall_max);
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
  std::lock_guard<std::mutex> lock(send_mu_);
  // Checked again under the lock: close() marks the bus closed under it as it says goodbye, so
  // no heartbeat already on its way (an unsubscribe sends one) can follow the goodbye.
  if (closed_.load()) return;
  flush_batch_locked();  // the heartbeat claims every seq up to hi
  std::string buf;
  std::uint64_t hi = next_seq_ - 1;
  advertised_seq_ = hi;
  // A small mtu may not hold every pattern: the last ones go ("trunc") until the heartbeat fits.
  for (;;) {
    std::string subs = "[";
    for (std::size_t i = 0; i < pats.size(); ++i) {
      if (i) subs += ',';
      subs += '"';
      subs += pats[i];
      subs += '"';
    }
    subs += ']';
    buf.clear();
    wire::frame_writer w(buf, wire::frame_type::hb, id_);
    w.str("name", name_)
        .uint("seq", hi)
        .uint("lo", window_.lowest())
        .text("host", host_)
        .int64("pid", pid_)
        .int64("start", start_us_);
    if (first_sent_us_ != 0) w.int64("since", first_sent_us_);
    w.uint("ivl", static_cast<std::uint64_t>(opts_.heartbeat_interval.count()))
        .raw("subs", subs)
        .boolean("trunc", truncated)
        .boolean("fc", true)  // we report our progress: senders may wait for us (8.9)
        .uint("rwin", rwin_)  // and need not be further ahead of what we reported than this
        .int64("ts", now_us())
        .finish();
    if (buf.size() <= max_plain_ || pats.empty()) break;
    pats.pop_back();
    truncated = true;
  }
  send_locked(buf);
}

void bus_impl::send_control(std::string& buf) {
  std::lock_guard<std::mutex> lock(send_mu_);
  send_locked(buf);
}

void bus_impl::on_heartbeat_timer() {
  if (closed_.load()) return;
  send_heartbeat();
  next_heartbeat_ = rel_clock::now() + opts_.heartbeat_interval;  // see while_blocked()
  hb_timer_.expires_after(opts_.heartbeat_interval);
  hb_timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
    if (!ec) self->on_heartbeat_timer();
  }));
}

// A receiver's buffer overflowed: we send faster than it reads. Slow down once per overflow
// episode it reports (its NACKs repeat the same count while it works through the backlog).
void bus_impl::note_congestion(std::uint64_t receiver, std::uint64_t episodes) {
  auto [it, fresh] = congestion_heard_.try_emplace(receiver, 0);
  if (!fresh && episodes <= it->second) return;
  if (fresh && congestion_heard_.size() > max_streams) {
    congestion_heard_.clear();  // bounded: forgetting only costs one extra slow-down each
    congestion_heard_.emplace(receiver, episodes);
  } else {
    it->second = episodes;
  }
  std::lock_guard<std::mutex> lock(send_mu_);
  const auto before = pacer_.cuts();
  pacer_.on_congestion(rel_clock::now());
  if (pacer_.cuts() != before) c_.rate_cuts.fetch_add(1, std::memory_order_relaxed);
}

void bus_impl::answer_nack(const wire::envelope& env) {
  c_.nacks_received.fetch_add(env.range_count, std::memory_order_relaxed);
  if (env.cong && opts_.auto_slowdown) note_congestion(env.from, env.cong);
  auto now = rel_clock::now();
  std::lock_guard<std::mutex> lock(send_mu_);
  if (env.has_have) {
    c_.flow_reports.fetch_add(1, std::memory_order_relaxed);
    // The bytes pushed through its `have` place it against its rwin (nullopt: older than the
    // window, out of reach anyway).
    const std::uint64_t have = std::min(env.have, next_seq_ - 1);
    flow_.on_report(env.from, have, window_.bytes_through(have), next_seq_ - 1, now);
    flow_cv_.notify_all();
  }
  if (env.range_count == 0) return;  // a report or a congestion notice: nothing to repair
  last_nack_ns_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
  flush_batch_locked();  // what is NACKed may sit in the open batch; send it before repairing
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
      if (!frame) continue;
      if (repair_budget_.available(now) < frame->size()) {
        // The repair budget (all askers together) is spent: not now; the askers NACK again.
        c_.repairs_deferred.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (!window_.may_repair(s, now, rel_cfg_.repair_holdoff)) continue;
      repair_budget_.take_up_to(frame->size(), now);
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
    std::string buf = advert_frame_locked();
    send_locked(buf);
  }
}

}  // namespace peerbus::detail
