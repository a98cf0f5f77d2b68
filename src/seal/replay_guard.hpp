// seal/replay_guard.hpp: anti-replay for sealed datagrams: counter windows, freshness, bounds.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <list>
#include <unordered_map>

namespace peerbus::detail::seal {

/// Decides whether an authenticated datagram (sender id, datagram counter, sender's timestamp)
/// is new, as IPsec and DTLS do: per sender the highest counter accepted and a sliding window of
/// which of the `window` counters below it were accepted. On top of that a freshness limit by
/// the sender's timestamp, which covers what the windows cannot: a sender whose state was
/// dropped (departed, expired, evicted) and the datagrams of a previous run of the receiver.
///
/// The *floor*: nothing sent at or before it is accepted from a sender the guard did not track
/// at the time. It starts at `not_before_us`, the receiver's start: a receiver that just joined
/// has no window for anyone, and without the floor would take a replay of anything sent in the
/// last max_age; with it, only what was sent after it started, which it can have missed but
/// never heard. A sender's entry keeps the floor of its creation, so its counters below the
/// first one heard are refused when they were sent before that.
///
/// Bounded: at most `max_senders` senders are tracked. A sender whose newest datagram is older
/// than the freshness limit is forgotten (all its datagrams are stale anyway). When the table
/// is full of live senders, the least recently heard one is evicted and the floor rises to its
/// newest timestamp, so the evicted sender's old datagrams cannot come back either. The cost
/// (a new sender's datagrams sent before the floor are refused) falls only while the table
/// overflows.
///
/// Pure: no clock, no I/O; `now_us` is the receiver's clock (µs since the Unix epoch, like the
/// sender's timestamp). Not thread-safe: one caller at a time.
class replay_guard {
 public:
  static constexpr std::uint64_t window = 1024;  ///< counters tracked below the highest

  enum class verdict : std::uint8_t {
    accepted,
    replayed,     ///< this counter was accepted before
    behind,       ///< more than `window` below the sender's highest: cannot tell, refused
    stale,        ///< sent more than max_age ago, or not after the floor (see above)
    from_future,  ///< sent more than max_age in the future (a clock off by that much)
    bad_counter,  ///< counter 0 (senders start at 1)
  };

  /// Defaults: 4096 senders (the bus's peer bound), 30 s, no start floor.
  explicit replay_guard(std::size_t max_senders = 4096, std::int64_t max_age_us = 30'000'000,
                        std::int64_t not_before_us = std::numeric_limits<std::int64_t>::min());

  /// Checks one authenticated datagram and, when accepted, records it.
  verdict check_and_record(std::uint64_t sender, std::uint64_t counter, std::int64_t sent_us,
                           std::int64_t now_us);

  std::size_t senders() const noexcept { return index_.size(); }
  std::size_t max_senders() const noexcept { return max_senders_; }
  std::int64_t max_age_us() const noexcept { return max_age_us_; }
  std::int64_t floor_us() const noexcept { return floor_us_; }
  std::uint64_t evictions() const noexcept { return evictions_; }

 private:
  struct entry {
    std::uint64_t sender = 0;
    std::uint64_t highest = 0;   ///< highest counter accepted
    std::int64_t newest_us = 0;  ///< highest sender timestamp accepted
    std::int64_t floor_us = 0;   ///< the guard's floor when this entry was created
    std::array<std::uint64_t, window / 64> seen{};  ///< bit (c % window): counter c accepted
    bool test(std::uint64_t c) const noexcept { return seen[(c % window) / 64] >> (c % 64) & 1u; }
    void set(std::uint64_t c) noexcept { seen[(c % window) / 64] |= std::uint64_t{1} << (c % 64); }
    void clear(std::uint64_t c) noexcept {
      seen[(c % window) / 64] &= ~(std::uint64_t{1} << (c % 64));
    }
  };
  void forget_stale(std::int64_t now_us);

  std::size_t max_senders_;
  std::int64_t max_age_us_;
  std::list<entry> lru_;  // most recently accepted first
  std::unordered_map<std::uint64_t, std::list<entry>::iterator> index_;
  std::int64_t floor_us_;  // unknown senders must be newer than this
  std::uint64_t evictions_ = 0;
};

}  // namespace peerbus::detail::seal
