// reliability/pacer.cpp: the sender's rate limit and its congestion-driven slow-down.
#include "reliability/pacer.hpp"

#include <algorithm>

namespace peerbus::detail {

double pacer::rate() const noexcept {
  if (auto_rate_ > 0 && cfg_.max_rate > 0) return std::min(auto_rate_, cfg_.max_rate);
  return auto_rate_ > 0 ? auto_rate_ : cfg_.max_rate;
}

// Closes measurement periods of `hold`, each one a step of the automatic rate's growth.
void pacer::tick(rel_clock::time_point now) {
  if (period_start_ == rel_clock::time_point{}) period_start_ = now;
  const auto elapsed = now - period_start_;
  if (elapsed < cfg_.hold) return;
  const double secs = std::chrono::duration<double>(elapsed).count();
  const double sample = static_cast<double>(period_frames_) / secs;
  // A smoothed rate: one quiet or busy period does not swing it.
  measured_ = measured_ == 0 ? sample : 0.5 * measured_ + 0.5 * sample;
  period_frames_ = 0;
  period_start_ = now;
  if (auto_rate_ > 0 && (!cut_yet_ || now - last_cut_ >= cfg_.hold)) {
    // Growth is per period whatever its length: an idle sender does not come back at a rate
    // it earned while idle.
    auto_rate_ *= cfg_.increase;
    if (auto_rate_ > cfg_.release * std::max(measured_, cfg_.min_rate)) auto_rate_ = 0;
  }
}

rel_clock::duration pacer::on_send(rel_clock::time_point now) {
  tick(now);
  ++period_frames_;
  const double r = rate();
  if (r <= 0) return rel_clock::duration::zero();
  const auto step = std::chrono::duration_cast<rel_clock::duration>(std::chrono::duration<double>(1.0 / r));
  // Credit saved while idle is capped at `burst`.
  next_free_ = std::max(next_free_, now - cfg_.burst) + step;
  const auto wait = next_free_ - now;
  if (wait < cfg_.min_sleep) return rel_clock::duration::zero();
  ++sleeps_;
  return wait;
}

void pacer::on_congestion(rel_clock::time_point now) {
  tick(now);
  if (cut_yet_ && now - last_cut_ < cfg_.hold) return;  // the same overflow, reported again
  // Cut what the sender really sent, not a limit it was not reaching. Before the first full
  // period the measurement is the frames of the period so far.
  double basis = measured_;
  if (basis <= 0) {
    const double secs = std::chrono::duration<double>(now - period_start_).count();
    basis = secs > 0 ? static_cast<double>(period_frames_) / secs : cfg_.min_rate;
  }
  if (auto_rate_ > 0) basis = std::min(basis, auto_rate_);
  auto_rate_ = std::max(cfg_.min_rate, basis * cfg_.decrease);
  last_cut_ = now;
  cut_yet_ = true;
  ++cuts_;
}

}  // namespace peerbus::detail
