// tools/monitor_model.cpp: the monitor's counters, rates, sorting and topic filter.
#include "monitor_model.hpp"

#include <algorithm>
#include <tuple>

namespace peerbus::tools::monitor {

void rate_meter::sample(steady::time_point now, std::uint64_t total) {
  samples_.emplace_back(now, total);
  // Keep one sample at or before the window's start, so the rate always spans a full window once
  // there is enough history.
  while (samples_.size() > 2 && samples_[1].first <= now - window_) samples_.pop_front();
  const auto& a = samples_.front();
  const auto& b = samples_.back();
  const auto dt = std::chrono::duration<double>(b.first - a.first).count();
  if (dt < 0.010) return;
  rate_ = b.second >= a.second ? static_cast<double>(b.second - a.second) / dt : 0.0;
}

const char* to_string(peer_sort s) noexcept {
  switch (s) {
    case peer_sort::name: return "name";
    case peer_sort::msg_rate: return "msg/s";
    case peer_sort::byte_rate: return "bytes/s";
    case peer_sort::lost: return "lost";
    case peer_sort::last_heard: return "heard";
  }
  return "?";
}

const char* to_string(topic_sort s) noexcept {
  switch (s) {
    case topic_sort::topic: return "topic";
    case topic_sort::msg_rate: return "msg/s";
    case topic_sort::byte_rate: return "bytes/s";
    case topic_sort::publishers: return "publishers";
    case topic_sort::last: return "last";
  }
  return "?";
}

std::optional<peer_sort> parse_peer_sort(std::string_view s) noexcept {
  for (std::size_t i = 0; i < peer_sort_count; ++i)
    if (s == to_string(static_cast<peer_sort>(i))) return static_cast<peer_sort>(i);
  if (s == "rate" || s == "msgs") return peer_sort::msg_rate;
  if (s == "bytes") return peer_sort::byte_rate;
  return std::nullopt;
}

std::optional<topic_sort> parse_topic_sort(std::string_view s) noexcept {
  for (std::size_t i = 0; i < topic_sort_count; ++i)
    if (s == to_string(static_cast<topic_sort>(i))) return static_cast<topic_sort>(i);
  if (s == "rate" || s == "msgs") return topic_sort::msg_rate;
  if (s == "bytes") return topic_sort::byte_rate;
  if (s == "pubs") return topic_sort::publishers;
  return std::nullopt;
}

bool pattern_matches(std::string_view pattern, std::string_view topic) noexcept {
  std::size_t p = 0;
  std::size_t t = 0;
  for (;;) {
    std::size_t pe = pattern.find('.', p);
    if (pe == std::string_view::npos) pe = pattern.size();
    std::size_t te = topic.find('.', t);
    if (te == std::string_view::npos) te = topic.size();
    const std::string_view pseg = pattern.substr(p, pe - p);
    // Each round starts on a topic segment that exists, so a final `>` has one to swallow.
    if (pseg == ">" && pe == pattern.size()) return !topic.empty();
    if (pseg != "*" && pseg != topic.substr(t, te - t)) return false;
    const bool p_done = pe == pattern.size();
    const bool t_done = te == topic.size();
    if (p_done || t_done) return p_done && t_done;
    p = pe + 1;
    t = te + 1;
  }
}

bool valid_pattern(std::string_view pattern) noexcept {
  if (pattern.empty() || pattern.size() > 255) return false;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = pattern.find('.', start);
    const bool last = end == std::string_view::npos;
    if (last) end = pattern.size();
    const std::string_view seg = pattern.substr(start, end - start);
    if (seg.empty()) return false;
    if (!(seg == "*" || (last && seg == ">"))) {
      for (char c : seg) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x21 || u > 0x7e || c == '"' || c == '\\' || c == '*' || c == '>') return false;
      }
    }
    if (last) return true;
    start = end + 1;
  }
}

peer_row& model::peer(std::uint64_t id) {
  auto it = peers_.find(id);
  if (it == peers_.end()) {
    it = peers_.emplace(id, peer_row{}).first;
    it->second.id = peer_id{id};
  }
  return it->second;
}

peer_row& model::peer(std::uint64_t id, steady::time_point now) {
  auto it = peers_.find(id);
  if (it != peers_.end()) return it->second;
  peer_row& r = peer(id);
  r.msg_rate.sample(now, 0);
  r.byte_rate.sample(now, 0);
  return r;
}

namespace {

bool is_sequenced(std::string_view type) noexcept {
  return type == "msg" || type == "call" || type == "reply";
}

void fill(peer_row& r, const peer_info& p) {
  r.name = p.name;
  r.host = p.host;
  r.pid = p.pid;
  if (p.started.time_since_epoch().count() != 0) r.started = p.started;
  r.highest_seq = std::max(r.highest_seq, p.highest_seq);
  r.announced = true;
}

}  // namespace

void model::on_datagram(const datagram_view& d, steady::time_point now) {
  ++totals_.datagrams;
  totals_.bytes += d.bytes.size();
  if (d.injected_drop) ++totals_.wire_dropped[static_cast<std::size_t>(drop_reason::injected)];
  if (!d.ok) {
    ++totals_.wire_dropped[static_cast<std::size_t>(d.reason)];
    return;
  }
  for (const auto& f : d.frames) {
    ++totals_.frames;
    if (!f.ok) {
      ++totals_.wire_dropped[static_cast<std::size_t>(f.reason)];
      continue;
    }
    peer_row& p = peer(f.from.value, now);
    p.bytes += f.text.size();
    p.last_heard = now;
    if (p.name.empty() && !f.name.empty()) p.name = std::string(f.name);
    if (f.type == "bye") {
      p.state = peer_state::left;
      p.highest_seq = std::max(p.highest_seq, f.seq);
      continue;
    }
    if (p.state == peer_state::expired) p.state = peer_state::live;  // it was only silent
    if (is_sequenced(f.type)) {
      ++p.messages;
      ++totals_.messages;
      if (p.highest_heard > 0 && f.seq <= p.highest_heard) {
        // Loopback does not reorder: an old sequence number on the wire is a retransmission.
        ++p.repairs;
        ++totals_.repairs;
      } else {
        if (p.highest_heard > 0 && f.seq > p.highest_heard + 1) ++p.wire_gaps;
        p.highest_heard = f.seq;
      }
      p.highest_seq = std::max(p.highest_seq, f.seq);
      if (f.type != "msg") continue;
      auto it = topics_.find(f.topic);
      if (it == topics_.end()) {
        if (topics_.size() >= max_topics) {
          ++topics_overflow_;
          continue;
        }
        it = topics_.emplace(std::string(f.topic), topic_row{}).first;
        it->second.topic = std::string(f.topic);
        it->second.msg_rate.sample(now, 0);
        it->second.byte_rate.sample(now, 0);
      }
      topic_row& t = it->second;
      ++t.messages;
      t.publishers.insert(f.from.value);
      if (f.has_body) {
        // Bytes (or a fragment of a large message): shown by type and size, never as text.
        t.bytes += f.body_size;
        t.last_payload_cut = false;
        t.last_payload = "(" + std::string(f.ctype) + ", " +
                         std::to_string(f.nfrag ? f.size : f.body_size) + " bytes" +
                         (f.nfrag ? ", fragment " + std::to_string(f.frag + 1) + "/" +
                                        std::to_string(f.nfrag)
                                  : std::string()) +
                         ")";
      } else {
        t.bytes += f.data.size();
        t.last_payload_cut = f.data.size() > max_payload_keep;
        t.last_payload.assign(f.data.substr(0, max_payload_keep));
      }
      t.last = now;
    } else if (f.type == "nack") {
      peer_row& target = peer(f.to.value, now);
      ++target.nacks;
      target.nack_seqs += f.nack_seqs;
      ++totals_.nacks;
    } else {  // hb, adv: the sender's highest sequence number
      if (f.type == "hb") p.announced = true;
      p.highest_seq = std::max(p.highest_seq, f.seq);
    }
  }
}

void model::on_peer_event(peer_event_kind kind, const peer_info& info, steady::time_point now) {
  peer_row& r = peer(info.id.value);
  fill(r, info);
  switch (kind) {
    case peer_event_kind::joined:
      r.state = peer_state::live;
      if (r.last_heard == steady::time_point{}) r.last_heard = now;
      break;
    case peer_event_kind::left: r.state = peer_state::left; break;
    case peer_event_kind::expired: r.state = peer_state::expired; break;
  }
}

void model::on_peers(const std::vector<peer_info>& peers) {
  for (const auto& p : peers) {
    peer_row& r = peer(p.id.value);
    fill(r, p);
    if (r.state == peer_state::expired) r.state = peer_state::live;
  }
}

void model::on_stats(const bus_stats& s) {
  totals_.stats_known = true;
  totals_.stats_dropped = s.dropped;
  for (const auto& st : s.streams) {
    peer_row& r = peer(st.id.value);
    if (r.name.empty()) r.name = st.name;
    r.stream_known = true;
    // A stream restarts from zero when the bus forgets and re-learns a sender: keep the most.
    r.stream_gaps = std::max(r.stream_gaps, st.gaps);
    r.stream_lost = std::max(r.stream_lost, st.lost);
    r.highest_seq = std::max(r.highest_seq, st.highest_seq);
  }
}

void model::on_loss(peer_id sender, std::string_view name, std::uint64_t count) {
  peer_row& r = peer(sender.value);
  if (r.name.empty()) r.name = std::string(name);
  r.event_lost += count;
}

void model::tick(steady::time_point now) {
  totals_.datagram_rate.sample(now, totals_.datagrams);
  totals_.byte_rate.sample(now, totals_.bytes);
  for (auto it = peers_.begin(); it != peers_.end();) {
    peer_row& p = it->second;
    if (p.state != peer_state::live && now - p.last_heard > forget_after) {
      it = peers_.erase(it);
      continue;
    }
    p.msg_rate.sample(now, p.messages);
    p.byte_rate.sample(now, p.bytes);
    ++it;
  }
  for (auto& [name, t] : topics_) {
    t.msg_rate.sample(now, t.messages);
    t.byte_rate.sample(now, t.bytes);
  }
}

std::vector<const peer_row*> model::sorted_peers(peer_sort key, bool reversed) const {
  std::vector<const peer_row*> out;
  out.reserve(peers_.size());
  for (const auto& [id, p] : peers_) out.push_back(&p);
  auto by_name = [](const peer_row* a, const peer_row* b) {
    return std::tie(a->name, a->id.value) < std::tie(b->name, b->id.value);
  };
  auto less = [&](const peer_row* a, const peer_row* b) {
    switch (key) {
      case peer_sort::name: break;
      case peer_sort::msg_rate:
        if (a->msg_rate.per_second() != b->msg_rate.per_second())
          return a->msg_rate.per_second() > b->msg_rate.per_second();
        break;
      case peer_sort::byte_rate:
        if (a->byte_rate.per_second() != b->byte_rate.per_second())
          return a->byte_rate.per_second() > b->byte_rate.per_second();
        break;
      case peer_sort::lost:
        if (a->lost() != b->lost()) return a->lost() > b->lost();
        if (a->gaps() != b->gaps()) return a->gaps() > b->gaps();
        break;
      case peer_sort::last_heard:
        if (a->last_heard != b->last_heard) return a->last_heard > b->last_heard;
        break;
    }
    return by_name(a, b);
  };
  std::stable_sort(out.begin(), out.end(), less);
  if (reversed) std::reverse(out.begin(), out.end());
  return out;
}

std::vector<const topic_row*> model::sorted_topics(topic_sort key, bool reversed,
                                                   std::string_view filter) const {
  std::vector<const topic_row*> out;
  out.reserve(topics_.size());
  for (const auto& [name, t] : topics_)
    if (filter.empty() || pattern_matches(filter, name)) out.push_back(&t);
  auto less = [&](const topic_row* a, const topic_row* b) {
    switch (key) {
      case topic_sort::topic: break;
      case topic_sort::msg_rate:
        if (a->msg_rate.per_second() != b->msg_rate.per_second())
          return a->msg_rate.per_second() > b->msg_rate.per_second();
        break;
      case topic_sort::byte_rate:
        if (a->byte_rate.per_second() != b->byte_rate.per_second())
          return a->byte_rate.per_second() > b->byte_rate.per_second();
        break;
      case topic_sort::publishers:
        if (a->publishers.size() != b->publishers.size())
          return a->publishers.size() > b->publishers.size();
        break;
      case topic_sort::last:
        if (a->last != b->last) return a->last > b->last;
        break;
    }
    return a->topic < b->topic;
  };
  std::stable_sort(out.begin(), out.end(), less);
  if (reversed) std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace peerbus::tools::monitor
