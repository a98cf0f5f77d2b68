// reliability/pacer.hpp: a sender's rate limit: a fixed ceiling, and an automatic slow-down when
// receivers report that their socket buffers overflowed (congestion), in NORM's spirit.
#pragma once

#include "reliability/config.hpp"

#include <cstdint>

namespace peerbus::detail {

/// The pacer's settings (see pacer).
struct pacer_config {
  double max_rate = 0;       ///< frames/s, 0: no ceiling
  double min_rate = 2000;    ///< the automatic rate never goes below this
  double decrease = 0.5;     ///< factor applied to the measured rate on a congestion report
  double increase = 1.01;    ///< factor per `hold` without a report: doubles in about 0.7 s
  double release = 4.0;      ///< lifted once this many times the measured rate
  rel_clock::duration hold = std::chrono::milliseconds(10);
  /// Sleeps shorter than this are not asked for: the debt is carried and paid in one longer
  /// sleep, so a fast sender sleeps every few hundred µs rather than every frame.
  rel_clock::duration min_sleep = std::chrono::microseconds(200);
  /// Credit an idle sender may save up: this long at the current rate goes out at once.
  rel_clock::duration burst = std::chrono::milliseconds(2);
};

/// Paces one sender's sequenced frames. Two limits, the lower wins:
/// - a fixed ceiling `max_rate` (frames/s; 0: none), the user's choice;
/// - an automatic one, absent until a receiver reports congestion (a NACK flagged `cong`: its
///   socket's receive buffer overflowed, so it cannot keep up). Each report cuts the automatic
///   rate to `decrease` times what the sender was actually sending, at most once per `hold`
///   (one overflow is reported by several NACKs of several receivers: one cut). Every `hold`
///   without a report it grows by `increase`; once it passes `release` times the measured rate
///   the sender is not using it and it is lifted.
/// Plain NACKs (random loss, a dropped datagram on a LAN) never slow the sender: only a full
/// buffer says "too fast", so injected or line loss costs repairs, not throughput.
///
/// Pure: every call takes `now`; nothing sleeps. The caller sleeps what on_send() returns.
/// Not thread-safe: the bus calls it under its send mutex.
class pacer {
 public:
  using config = pacer_config;

  explicit pacer(config c = {}) : cfg_(c) {}

  /// Accounts one frame sent at `now`; returns how long the sender should now wait (zero: go
  /// on at once).
  rel_clock::duration on_send(rel_clock::time_point now);
  /// A receiver reported congestion at `now`.
  void on_congestion(rel_clock::time_point now);

  /// The rate in force, frames/s; 0 when nothing limits the sender.
  double rate() const noexcept;
  /// The sender's measured rate, frames/s (over the last few `hold` periods).
  double measured_rate() const noexcept { return measured_; }
  std::uint64_t cuts() const noexcept { return cuts_; }
  std::uint64_t sleeps() const noexcept { return sleeps_; }

 private:
  void tick(rel_clock::time_point now);

  config cfg_;
  double auto_rate_ = 0;  // 0: no automatic limit
  double measured_ = 0;
  std::uint64_t period_frames_ = 0;
  rel_clock::time_point period_start_{};
  rel_clock::time_point last_cut_{};
  bool cut_yet_ = false;
  rel_clock::time_point next_free_{};  // when the next frame may go, at the rate in force
  std::uint64_t cuts_ = 0;
  std::uint64_t sleeps_ = 0;
};

}  // namespace peerbus::detail
