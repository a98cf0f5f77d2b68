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
  next_heartbeat_ = rel_clock::now() + opts_.heartbeat_interval;  // see while_blocked()
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

}  // namespace peerbus::detail
