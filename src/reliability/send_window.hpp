// reliability/send_window.hpp: a sender's retransmit buffer of encoded frames; repair rate limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reliability/config.hpp"

namespace peerbus::detail {

/// The frames a sender has sent, kept so it can retransmit them when a receiver NACKs. Keyed by
/// consecutive seqs: the sender pushes seq 1, 2, 3... (seq 0 is never used), each exactly once,
/// right after encoding it. Bounded by count and by bytes; a push evicts the oldest frames.
///
/// Frames sit back to back in one byte ring, indexed by a ring of (offset, size) entries: a push
/// is one copy and, once both rings have grown to the working size, allocates nothing (the
/// sender's hot path). A frame never wraps: one that does not fit before the end of the byte
/// ring goes to its start. The byte ring grows by doubling up to twice max_bytes (or the one
/// frame larger than that); past that, a push that finds no room evicts the oldest frames even
/// within the bounds, which only a ring fragmented by frames of very different sizes does.
///
/// Not thread-safe: one owner (the bus's send path) calls everything.
///
///     send_window w{cfg.send_window_max_count, cfg.send_window_max_bytes};
///     w.push(seq, encoded);                             // after each sequenced send
///     // on a NACK for [a, b]:
///     for (auto s = std::max(a, w.lowest()); s <= std::min(b, w.highest()); ++s)
///       if (w.may_repair(s, now, cfg.repair_holdoff)) send(*w.find(s));
///     if (a < w.lowest() || w.size() == 0) send_advert(w.highest_pushed(), w.lowest());
class send_window {
 public:
  using time_point = rel_clock::time_point;
  using duration = rel_clock::duration;

  static constexpr std::size_t default_max_count = 131072;
  static constexpr std::size_t default_max_bytes = std::size_t{32} << 20;

  /// max_count and max_bytes of 0 are taken as 1.
  explicit send_window(std::size_t max_count = default_max_count,
                       std::size_t max_bytes = default_max_bytes);

  /// Keeps a copy of `frame` as seq `seq`, evicting the oldest frames until both bounds hold.
  /// The newest frame is always kept, even one larger than max_bytes on its own.
  /// Expects seq == highest() + 1 (any seq >= 1 when empty). A seq that does not follow, which
  /// only a caller bug or a sender restarting its numbering produces, clears the window first
  /// (counted in resets()) so find() never returns the wrong frame. seq 0 is ignored.
  void push(std::uint64_t seq, std::string_view frame);

  /// The highest seq that pushing `frames` more frames of `bytes` bytes in all would evict by the
  /// two bounds (0: none). What a sender checks before it sends, so it can wait for receivers
  /// that still need those frames (receiver_table). Exact for one frame; for several (the
  /// fragments of a large message) it takes them as one, so it may say a little more.
  std::uint64_t evicts_through(std::size_t frames, std::size_t bytes) const noexcept;

  /// Bytes of frames ever pushed (a running total, evictions and clear() aside).
  std::uint64_t bytes_pushed() const noexcept { return bytes_pushed_; }
  /// bytes_pushed() right after `seq` was pushed, for seq from lowest() - 1 (what came before
  /// the oldest frame held) to highest(); nullopt outside that. The flow control's measure of
  /// how far a receiver that has everything up to `seq` lags: bytes_pushed() - bytes_through(seq).
  std::optional<std::uint64_t> bytes_through(std::uint64_t seq) const noexcept;

  /// The frame pushed as `seq`, if still held. The view is valid until the next push().
  std::optional<std::string_view> find(std::uint64_t seq) const;

  /// Lowest and highest seq held; 0 when empty. Every seq in [lowest(), highest()] is held.
  std::uint64_t lowest() const noexcept { return count_ == 0 ? 0 : lowest_; }
  std::uint64_t highest() const noexcept { return count_ == 0 ? 0 : lowest_ + count_ - 1; }
  /// Highest seq ever pushed (0 before the first), even once evicted: what a heartbeat
  /// advertises as highest sent.
  std::uint64_t highest_pushed() const noexcept { return highest_pushed_; }
  std::size_t size() const noexcept { return count_; }
  /// Bytes of frames held (their sizes, not the buffers' capacities).
  std::size_t bytes() const noexcept { return bytes_; }
  /// Bytes of buffer the window holds (memory stats): the byte ring and the index. At most
  /// twice max_bytes (or the largest frame) plus max_count index entries.
  std::size_t capacity_bytes() const noexcept {
    return data_capacity_ + entries_.capacity() * sizeof(entry);
  }
  std::size_t max_count() const noexcept { return max_count_; }
  std::size_t max_bytes() const noexcept { return max_bytes_; }

  /// Repair rate limit. Returns true, and records `now` as the seq's last repair, when `seq` is
  /// held and was not repaired in the last `holdoff` (or never); false otherwise, so many NACKs
  /// for the same seq within a few ms cost one retransmission.
  bool may_repair(std::uint64_t seq, time_point now, duration holdoff);

  /// Forgets every frame (counters stay).
  void clear() noexcept;

  // Counters.
  std::uint64_t evicted() const noexcept { return evicted_; }  ///< frames pushed out by a bound
  std::uint64_t resets() const noexcept { return resets_; }    ///< non-consecutive pushes
  std::uint64_t repairs_allowed() const noexcept { return repairs_allowed_; }
  std::uint64_t repairs_held_off() const noexcept { return repairs_held_off_; }

 private:
  struct entry {
    std::size_t offset = 0;  // in data_
    std::size_t size = 0;
    std::uint64_t pushed_through = 0;  // bytes_pushed_ once this frame was pushed
    time_point last_repair{};
    bool repaired = false;
  };
  std::size_t index_of(std::uint64_t seq) const noexcept {
    return (head_ + static_cast<std::size_t>(seq - lowest_)) % entries_.size();
  }
  const entry& newest() const noexcept { return entries_[(head_ + count_ - 1) % entries_.size()]; }
  void drop_oldest();
  void grow_index();
  // Where a frame of `size` bytes can go in data_ now, or npos.
  std::size_t place(std::size_t size) const noexcept;
  // Reallocates data_ with `capacity` bytes, the live frames copied to its start in order.
  void regrow_data(std::size_t capacity);
  std::size_t max_count_;
  std::size_t max_bytes_;
  std::vector<entry> entries_;  // ring; grows by doubling up to max_count_
  std::size_t head_ = 0;        // entry of lowest_
  std::size_t count_ = 0;
  std::uint64_t lowest_ = 0;
  std::uint64_t highest_pushed_ = 0;
  std::size_t bytes_ = 0;
  std::uint64_t bytes_pushed_ = 0;
  std::unique_ptr<char[]> data_;  // the byte ring; not value-initialised (untouched until used)
  std::size_t data_capacity_ = 0;
  std::uint64_t evicted_ = 0;
  std::uint64_t resets_ = 0;
  std::uint64_t repairs_allowed_ = 0;
  std::uint64_t repairs_held_off_ = 0;
};

}  // namespace peerbus::detail
