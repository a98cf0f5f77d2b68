// reliability/receiver_table.hpp: a sender's view of how far each receiver has got, so that it
// never evicts from its retransmit window a frame a live receiver may still ask for.
#pragma once

#include "reliability/config.hpp"

#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace peerbus::detail {

/// Receivers that report their progress (heartbeat `"fc":true`, NACK `have`: docs/protocol.md
/// 8.9). Pacing alone cannot promise delivery: a receiver that is descheduled, or prints every
/// message, falls behind by more than any window while the sender runs flat out, and what left
/// the window can never be repaired. So before a push would evict seq `e`, the sender asks this
/// table whether any receiver still needs `e`, and waits (publish blocks) while one does, in the
/// spirit of NORM's and Aeron's flow control by the slowest receiver.
///
/// A receiver holds the sender back only while it is:
/// - alive: announced by a heartbeat within its expiry time (a crashed receiver stops counting);
/// - within reach: `have + 1 >= lowest`, the window's oldest seq (one that already lost frames
///   gains nothing from waiting);
/// - making progress: once the sender has waited `stall_max` without the receiver's `have`
///   advancing, the receiver is *stalled* and left behind until it reports progress again. A
///   stuck or forged receiver costs a sender at most `stall_max` at a time.
///
/// Pure: every call takes `now`. Not thread-safe: the bus calls it under its send mutex.
class receiver_table {
 public:
  /// A heartbeat from a receiver that reports progress. New ones start at `have`, a guess
  /// (what the sender had sent when it first heard them: usually all they can want) that their
  /// first report replaces, even downwards: one that was there before we heard it, or that we
  /// forgot when its heartbeats were late, may lack older frames.
  void on_announce(std::uint64_t id, std::uint64_t have, rel_clock::time_point alive_until,
                   rel_clock::time_point now);
  /// A receiver's report: it holds or has given up every seq <= have. Unknown ids (never
  /// announced, or gone) are ignored; a `have` beyond `highest_sent` is cut to it.
  void on_report(std::uint64_t id, std::uint64_t have, std::uint64_t highest_sent,
                 rel_clock::time_point now);
  /// The receiver left (goodbye).
  void forget(std::uint64_t id) { if (receivers_.erase(id)) dirty_ = true; }

  /// Cheap check for the send path: true when evicting every seq <= `evicts_through` keeps
  /// everything each receiver not stalled last reported needing. Conservative (counts receivers
  /// whose heartbeats stopped until holds() drops them); when it says false, ask holds().
  bool clear_fast(std::uint64_t evicts_through) {
    if (receivers_.empty() || evicts_through == 0) return true;
    if (dirty_) recompute();
    return evicts_through <= floor_;
  }

  /// Whether some live, reachable, progressing receiver still needs a seq <= `evicts_through`,
  /// the window's oldest being `lowest`. `waiting_since` is when the sender started waiting:
  /// a receiver's stall clock runs from the later of it and its last progress. Drops receivers
  /// whose heartbeats stopped; marks stalled ones (counted in stalls()).
  bool holds(std::uint64_t evicts_through, std::uint64_t lowest, rel_clock::time_point now,
             rel_clock::time_point waiting_since, rel_clock::duration stall_max);

  /// Receivers in the table (those whose heartbeats stopped count until holds() drops them).
  std::size_t size() const noexcept { return receivers_.size(); }
  bool empty() const noexcept { return receivers_.empty(); }
  /// Receivers left behind because they stopped making progress while the sender waited.
  std::uint64_t stalls() const noexcept { return stalls_; }

 private:
  struct receiver {
    std::uint64_t have = 0;
    rel_clock::time_point alive_until{};
    rel_clock::time_point progress{};  // when `have` last advanced (or the receiver appeared)
    bool stalled = false;
    bool confirmed = false;  // `have` came from a report, not from our guess
  };
  void recompute();

  std::unordered_map<std::uint64_t, receiver> receivers_;
  std::uint64_t floor_ = 0;  // lowest `have` of the receivers not stalled (all of them: see clear_fast)
  bool dirty_ = false;
  std::uint64_t stalls_ = 0;
};

}  // namespace peerbus::detail
