// reliability/receiver_table.hpp: a sender's view of how far each receiver has got, so that it
// never evicts from its retransmit window a frame a live receiver may still ask for.
#pragma once

#include "reliability/config.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>

namespace peerbus::detail {

/// Receivers that report their progress (heartbeat `"fc":true`, NACK `have`: docs/protocol.md
/// 8.9). Pacing alone cannot promise delivery: a receiver that is descheduled, or prints every
/// message, falls behind by more than any window while the sender runs flat out, and what left
/// the window can never be repaired. So before a push would evict seq `e`, the sender asks this
/// table whether any receiver still needs `e`, and waits (publish blocks) while one does, in the
/// spirit of NORM's and Aeron's flow control by the slowest receiver.
///
/// A receiver that also says how many bytes it can take ahead of what it has (heartbeat `rwin`:
/// a share of its socket's receive buffer) holds the sender back, too, while the bytes pushed
/// after its `have` would exceed that: TCP's receive window, for every receiver at once. A
/// sender a whole window ahead of a slow receiver overflows its socket, and the repairs that
/// follow overflow it again; within `rwin` nothing is dropped. It never holds back a receiver's
/// next message once it has everything sent (a message larger than `rwin` still goes).
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
  /// The largest `rwin` taken from a receiver (1 TiB): larger says nothing more, and the sum
  /// with a mark cannot overflow.
  static constexpr std::uint64_t max_rwin = std::uint64_t{1} << 40;

  /// A heartbeat from a receiver that reports progress. New ones start at `have`, a guess
  /// (what the sender had sent when it first heard them: usually all they can want) that their
  /// first report replaces, even downwards: one that was there before we heard it, or that we
  /// forgot when its heartbeats were late, may lack older frames.
  /// `have_mark`: the sender's bytes pushed through `have` (send_window::bytes_through);
  /// `rwin`: the bytes it may be ahead of that, 0 for no such bound (it is capped at max_rwin).
  void on_announce(std::uint64_t id, std::uint64_t have, std::uint64_t have_mark,
                   std::uint64_t rwin, rel_clock::time_point alive_until,
                   rel_clock::time_point now);
  /// A receiver's report: it holds or has given up every seq <= have. Unknown ids (never
  /// announced, or gone) are ignored; a `have` beyond `highest_sent` is cut to it (the caller
  /// cuts it the same way for `have_mark`, nullopt when `have` is older than the window).
  void on_report(std::uint64_t id, std::uint64_t have, std::optional<std::uint64_t> have_mark,
                 std::uint64_t highest_sent, rel_clock::time_point now);
  /// The receiver left (goodbye).
  void forget(std::uint64_t id) { if (receivers_.erase(id)) dirty_ = true; }

  /// Cheap check for the send path: true when evicting every seq <= `evicts_through` (0: none)
  /// keeps everything each receiver not stalled last reported needing, and `bytes_after` (the
  /// bytes pushed once the new frames are) stays within every receiver's `rwin`. Conservative
  /// (counts receivers whose heartbeats stopped until holds() drops them, and those that have
  /// everything); when it says false, ask holds().
  bool clear_fast(std::uint64_t evicts_through, std::uint64_t bytes_after) {
    if (receivers_.empty()) return true;
    if (dirty_) recompute();
    return evicts_through <= floor_ && bytes_after <= byte_floor_;
  }

  /// Whether some live, reachable, progressing receiver still needs a seq <= `evicts_through`
  /// (0: none), or lacks some of the `highest_sent` seqs sent and would be more than its `rwin`
  /// behind at `bytes_after`; the window's oldest being `lowest`. `waiting_since` is when the
  /// sender started waiting: a receiver's stall clock runs from the later of it and its last
  /// progress. Drops receivers whose heartbeats stopped; marks stalled ones (in stalls()).
  bool holds(std::uint64_t evicts_through, std::uint64_t bytes_after, std::uint64_t highest_sent,
             std::uint64_t lowest, rel_clock::time_point now,
             rel_clock::time_point waiting_since, rel_clock::duration stall_max);

  /// Receivers in the table (those whose heartbeats stopped count until holds() drops them).
  std::size_t size() const noexcept { return receivers_.size(); }
  bool empty() const noexcept { return receivers_.empty(); }
  /// Receivers left behind because they stopped making progress while the sender waited.
  std::uint64_t stalls() const noexcept { return stalls_; }

 private:
  struct receiver {
    std::uint64_t have = 0;
    std::uint64_t mark = 0;           // bytes pushed through `have`, when known
    std::uint64_t rwin = 0;           // 0: no bound by bytes
    bool mark_known = false;
    rel_clock::time_point alive_until{};
    rel_clock::time_point progress{};  // when `have` last advanced (or the receiver appeared)
    bool stalled = false;
    bool confirmed = false;  // `have` came from a report, not from our guess
  };
  void recompute();

  std::unordered_map<std::uint64_t, receiver> receivers_;
  std::uint64_t floor_ = 0;  // lowest `have` of the receivers not stalled (all of them: see clear_fast)
  std::uint64_t byte_floor_ = 0;  // lowest `mark + rwin` of those with a bound
  bool dirty_ = false;
  std::uint64_t stalls_ = 0;
};

}  // namespace peerbus::detail
