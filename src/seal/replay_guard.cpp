// seal/replay_guard.cpp: sliding counter windows, the freshness limit, the bounded sender table.
#include "seal/replay_guard.hpp"

#include <algorithm>

namespace peerbus::detail::seal {

replay_guard::replay_guard(std::size_t max_senders, std::int64_t max_age_us,
                           std::int64_t not_before_us)
    : max_senders_(std::max<std::size_t>(max_senders, 1)),
      max_age_us_(std::max<std::int64_t>(max_age_us, 1)),
      floor_us_(not_before_us) {}

void replay_guard::forget_stale(std::int64_t now_us) {
  // The least recently heard sender is at the back; once its newest datagram is stale, every
  // datagram of it is, so its window is no longer needed.
  while (!lru_.empty() && lru_.back().newest_us < now_us - max_age_us_) {
    index_.erase(lru_.back().sender);
    lru_.pop_back();
  }
}

replay_guard::verdict replay_guard::check_and_record(std::uint64_t sender, std::uint64_t counter,
                                                     std::int64_t sent_us, std::int64_t now_us) {
  if (counter == 0) return verdict::bad_counter;
  if (sent_us < now_us - max_age_us_) return verdict::stale;
  if (sent_us > now_us + max_age_us_) return verdict::from_future;
  forget_stale(now_us);

  auto it = index_.find(sender);
  if (it == index_.end()) {
    if (sent_us <= floor_us_) return verdict::stale;  // before we started, or an evicted sender's
    if (index_.size() >= max_senders_) {
      const entry& victim = lru_.back();
      floor_us_ = std::max(floor_us_, victim.newest_us);
      index_.erase(victim.sender);
      lru_.pop_back();
      ++evictions_;
    }
    entry e;
    e.sender = sender;
    e.highest = counter;
    e.newest_us = sent_us;
    e.floor_us = floor_us_;
    e.set(counter);
    lru_.push_front(e);
    index_.emplace(sender, lru_.begin());
    return verdict::accepted;
  }

  entry& e = *it->second;
  if (sent_us <= e.floor_us) return verdict::stale;
  if (counter > e.highest) {
    // Slide the window up: the slots of the counters skipped become free.
    const std::uint64_t jump = counter - e.highest;
    if (jump >= window) {
      e.seen.fill(0);
    } else {
      for (std::uint64_t c = e.highest + 1; c < counter; ++c) e.clear(c);
    }
    e.clear(counter);
    e.highest = counter;
  } else {
    if (e.highest - counter >= window) return verdict::behind;
    if (e.test(counter)) return verdict::replayed;
  }
  e.set(counter);
  e.newest_us = std::max(e.newest_us, sent_us);
  lru_.splice(lru_.begin(), lru_, it->second);
  return verdict::accepted;
}

}  // namespace peerbus::detail::seal
