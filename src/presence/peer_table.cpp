// presence/peer_table.cpp: the peer table: joins, refreshes, goodbyes, expiry and lookups.
#include "presence/peer_table.hpp"

#include <algorithm>
#include <tuple>
#include <utility>

#include "presence/glob.hpp"
#include "presence/topic_match.hpp"

namespace peerbus::detail {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The order every multi-peer answer uses, so that listings (the CLI's `peers`) are stable.
bool listing_order(const peer_record& a, const peer_record& b) noexcept {
  return std::tie(a.name, a.first_seen, a.id) < std::tie(b.name, b.first_seen, b.id);
}

}  // namespace

std::string format_id(std::uint64_t id) {
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = hex_digits[id & 0xf];
    id >>= 4;
  }
  return out;
}

std::optional<std::uint64_t> parse_id(std::string_view text) noexcept {
  if (text.size() != 16) return std::nullopt;
  std::uint64_t id = 0;
  for (char c : text) {
    const int v = hex_value(c);
    if (v < 0) return std::nullopt;
    id = (id << 4) | static_cast<std::uint64_t>(v);
  }
  return id;
}

std::string display_name(std::string_view name, std::uint64_t id) {
  std::string out;
  out.reserve(name.size() + 5);
  out.append(name);
  out.push_back('@');
  out.append(format_id(id), 0, 4);
  return out;
}

const char* to_string(peer_event_kind kind) noexcept {
  switch (kind) {
    case peer_event_kind::joined:
      return "joined";
    case peer_event_kind::left:
      return "left";
    case peer_event_kind::expired:
      return "expired";
    case peer_event_kind::updated:
      return "updated";
  }
  return "unknown";
}

peer_table::peer_table(const presence_config& config) : config_(config) {}

std::chrono::milliseconds peer_table::expiry_window(
    std::chrono::milliseconds interval) const noexcept {
  using std::chrono::milliseconds;
  const milliseconds lo = config_.min_expiry;
  const milliseconds hi = std::max(config_.max_expiry, lo);
  const milliseconds ivl = interval.count() > 0 ? interval : config_.default_interval;
  const auto misses = static_cast<milliseconds::rep>(std::max(config_.expiry_misses, 1));
  // Compare before multiplying: a hostile interval (years, or near INT64_MAX ms) must not
  // overflow into a small or negative window.
  if (ivl.count() <= 0) return lo;
  if (ivl.count() > hi.count() / misses) return hi;
  return std::clamp(ivl * misses, lo, hi);
}

void peer_table::sanitize(announce& a) const {
  if (a.name.size() > config_.max_name) a.name.resize(config_.max_name);
  if (a.host.size() > config_.max_host) a.host.resize(config_.max_host);
  std::size_t bytes = 0;
  std::size_t keep = 0;
  while (keep < a.subs.size() && keep < config_.max_subs &&
         bytes + a.subs[keep].size() <= config_.max_sub_bytes) {
    bytes += a.subs[keep].size();
    ++keep;
  }
  if (keep < a.subs.size()) {
    a.subs.resize(keep);
    a.subs_truncated = true;
  }
}

bool peer_table::recently_departed(std::uint64_t id, time_point now) const noexcept {
  for (const departed& d : departed_)
    if (d.id == id && now < d.until) return true;
  return false;
}

bool peer_table::forget_departure(std::uint64_t id) noexcept {
  bool found = false;
  for (departed& d : departed_)
    if (d.id == id && d.until != time_point{}) {
      d.until = time_point{};
      found = true;
    }
  return found;
}

std::optional<peer_event> peer_table::on_announce(announce a, time_point now) {
  sanitize(a);
  const auto window = expiry_window(a.interval);
  auto it = peers_.find(a.id);
  if (it == peers_.end()) {
    if (recently_departed(a.id, now)) {
      ++counters_.ignored_departed;
      return std::nullopt;
    }
    if (peers_.size() >= config_.max_peers) {
      ++counters_.rejected_full;
      return std::nullopt;
    }
    peer_record r;
    static_cast<announce&>(r) = std::move(a);
    r.first_seen = now;
    r.last_heard = now;
    r.expires_at = now + window;
    it = peers_.emplace(r.id, std::move(r)).first;
    ++counters_.joined;
    ++generation_;
    return peer_event{peer_event_kind::joined, it->second};
  }

  peer_record& r = it->second;
  r.last_heard = now;
  r.expires_at = now + window;
  r.interval = a.interval;
  // Reordered heartbeats must not make a stream look like it went backwards.
  r.highest_seq = std::max(r.highest_seq, a.highest_seq);
  r.lowest_seq = std::max(r.lowest_seq, a.lowest_seq);
  const bool changed = r.subs != a.subs || r.subs_truncated != a.subs_truncated ||
                       r.name != a.name || r.host != a.host || r.pid != a.pid ||
                       r.start_time_us != a.start_time_us || r.version != a.version;
  if (!changed) return std::nullopt;  // the common case: nothing copied, nothing allocated
  r.subs = std::move(a.subs);
  r.subs_truncated = a.subs_truncated;
  r.name = std::move(a.name);
  r.host = std::move(a.host);
  r.pid = a.pid;
  r.start_time_us = a.start_time_us;
  r.version = a.version;
  ++generation_;
  return peer_event{peer_event_kind::updated, r};
}

bool peer_table::on_heard(std::uint64_t id, time_point now) noexcept {
  auto it = peers_.find(id);
  if (it == peers_.end()) return false;
  peer_record& r = it->second;
  r.last_heard = now;
  // std::max: a datagram must never shorten a deadline (on_announce may, when the interval
  // shrinks, and the bus re-arms after it).
  r.expires_at = std::max(r.expires_at, now + expiry_window(r.interval));
  return true;
}

void peer_table::grace(time_point now) noexcept {
  for (auto& [id, r] : peers_) r.expires_at = std::max(r.expires_at, now + expiry_window(r.interval));
}

std::optional<peer_event> peer_table::on_goodbye(std::uint64_t id, time_point now) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return std::nullopt;
  if (config_.goodbye_memory > 0) {
    const departed d{id, now + expiry_window(it->second.interval)};
    if (departed_.size() < config_.goodbye_memory) {
      departed_.push_back(d);
    } else {
      departed_[departed_next_] = d;
      departed_next_ = (departed_next_ + 1) % departed_.size();
    }
  }
  peer_event ev{peer_event_kind::left, std::move(it->second)};
  peers_.erase(it);
  ++counters_.left;
  ++generation_;
  return ev;
}

std::vector<peer_event> peer_table::expire(time_point now) {
  std::vector<peer_event> out;
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (it->second.expires_at <= now) {
      out.push_back(peer_event{peer_event_kind::expired, std::move(it->second)});
      it = peers_.erase(it);
    } else {
      ++it;
    }
  }
  if (out.empty()) return out;
  std::sort(out.begin(), out.end(), [](const peer_event& a, const peer_event& b) {
    return std::tie(a.peer.expires_at, a.peer.id) < std::tie(b.peer.expires_at, b.peer.id);
  });
  counters_.expired += out.size();
  ++generation_;
  return out;
}

peer_table::time_point peer_table::next_expiry() const noexcept {
  time_point next = time_point::max();
  for (const auto& [id, r] : peers_) next = std::min(next, r.expires_at);
  return next;
}

const peer_record* peer_table::find(std::uint64_t id) const noexcept {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : &it->second;
}

template <class Pred>
std::vector<const peer_record*> peer_table::select(Pred pred) const {
  std::vector<const peer_record*> out;
  for (const auto& [id, r] : peers_)
    if (pred(r)) out.push_back(&r);
  std::sort(out.begin(), out.end(),
            [](const peer_record* a, const peer_record* b) { return listing_order(*a, *b); });
  return out;
}

std::vector<const peer_record*> peer_table::find_by_name(std::string_view name) const {
  return select([name](const peer_record& r) { return r.name == name; });
}

std::vector<const peer_record*> peer_table::find_by_pattern(std::string_view pattern) const {
  return select([pattern](const peer_record& r) { return glob_match(pattern, r.name); });
}

bool peer_table::has_name(std::string_view name) const noexcept {
  for (const auto& [id, r] : peers_)
    if (r.name == name) return true;
  return false;
}

std::vector<peer_record> peer_table::snapshot() const {
  std::vector<peer_record> out;
  out.reserve(peers_.size());
  for (const auto& [id, r] : peers_) out.push_back(r);
  std::sort(out.begin(), out.end(), listing_order);
  return out;
}

std::size_t peer_table::count_subscribers(std::string_view topic,
                                          bool count_truncated) const noexcept {
  std::size_t n = 0;
  for (const auto& [id, r] : peers_) {
    bool match = count_truncated && r.subs_truncated;
    for (std::size_t i = 0; !match && i < r.subs.size(); ++i)
      match = topic_matches(r.subs[i], topic);
    if (match) ++n;
  }
  return n;
}

}  // namespace peerbus::detail
