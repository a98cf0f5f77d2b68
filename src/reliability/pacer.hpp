// reliability/pacer.hpp: a sender's rate limit: a fixed ceiling, and an automatic slow-down when
// receivers report that their socket buffers overflowed (congestion), in NORM's spirit.
#pragma once

#include "reliability/config.hpp"

#include <cstddef>
#include <cstdint>

namespace peerbus::detail {

/// The pacer's settings (see pacer).
struct pacer_config {
  double max_rate = 0;            ///< the user's ceiling, frames/s; 0: none
  double min_byte_rate = 1 << 20; ///< the automatic limit never goes below this, bytes/s (1 MiB/s)
  double decrease = 0.5;          ///< factor applied to the measured rate on a congestion report
  double increase = 1.03;         ///< factor per `hold` without a report: doubles in about 0.23 s
  double release = 4.0;           ///< lifted once this many times the measured rate
  rel_clock::duration hold = std::chrono::milliseconds(10);
  /// Waits shorter than this are not asked for: the debt is carried and paid in one longer
  /// sleep, so a fast sender sleeps every few hundred µs rather than every frame.
  rel_clock::duration min_sleep = std::chrono::microseconds(200);
  /// Credit an idle sender may save up: this long at the current rate goes out at once.
  rel_clock::duration burst = std::chrono::milliseconds(2);
};

/// Paces one sender's sequenced frames. Two limits, both enforced:
/// - a fixed ceiling `max_rate` in frames/s (0: none), the user's choice;
/// - an automatic one in bytes/s, absent until a receiver reports congestion (a NACK carrying a
///   new `cong` count: its socket's receive buffer overflowed, so it cannot keep up). Each report
///   cuts the automatic rate to `decrease` times the bytes/s the sender was actually sending, at
///   most once per `hold` (one overflow reaches several receivers: one cut). Every `hold` without
///   a report it grows by `increase`; once it passes `release` times the measured rate the
///   sender is not using it and it is lifted. Bytes, not frames: what fills a receiver's buffer
///   is bytes, and a fragment of a large message weighs a thousand small messages.
/// Plain NACKs (random loss, a dropped datagram on a LAN) never slow the sender: only a full
/// buffer says "too fast", so injected or line loss costs repairs, not throughput.
///
/// Pure: every call takes `now`; nothing sleeps. The caller sleeps what debt() returns.
/// Not thread-safe: the bus calls it under its send mutex.
class pacer {
 public:
  using config = pacer_config;

  explicit pacer(config c = {}) : cfg_(c) {}

  /// Accounts one frame of `bytes` sent at `now`.
  void on_send(rel_clock::time_point now, std::size_t bytes);
  /// How long the sender should wait at `now` before sending more (zero: go on at once).
  rel_clock::duration debt(rel_clock::time_point now);
  /// A receiver reported congestion at `now`.
  void on_congestion(rel_clock::time_point now);

  /// The automatic limit in force, bytes/s; 0 when none.
  double byte_rate() const noexcept { return auto_rate_; }
  /// The sender's measured rate, bytes/s (smoothed over `hold` periods).
  double measured_byte_rate() const noexcept { return measured_; }
  std::uint64_t cuts() const noexcept { return cuts_; }

 private:
  void tick(rel_clock::time_point now);

  config cfg_;
  double auto_rate_ = 0;  // bytes/s; 0: no automatic limit
  double measured_ = 0;   // bytes/s
  std::uint64_t period_bytes_ = 0;
  rel_clock::time_point period_start_{};
  rel_clock::time_point last_cut_{};
  bool cut_yet_ = false;
  // When the next frame may go under each limit; behind `now` by at most `burst`.
  rel_clock::time_point frames_free_{};
  rel_clock::time_point bytes_free_{};
  std::uint64_t cuts_ = 0;
};

}  // namespace peerbus::detail
