// reliability/pacer.cpp: the sender's rate limit and its congestion-driven slow-down.
#include "reliability/pacer.hpp"

#include <algorithm>

namespace peerbus::detail {

namespace {
rel_clock::duration seconds(double s) {
  return std::chrono::duration_cast<rel_clock::duration>(std::chrono::duration<double>(s));
}
}  // namespace

// Closes measurement periods of `hold`, each one a step of the automatic rate's growth.
void pacer::tick(rel_clock::time_point now) {
  if (period_start_ == rel_clock::time_point{}) period_start_ = now;
  const auto elapsed = now - period_start_;
  if (elapsed < cfg_.hold) return;
  const double sample = static_cast<double>(period_bytes_) / std::chrono::duration<double>(elapsed).count();
  // Smoothed: one quiet or busy period does not swing it.
  measured_ = measured_ == 0 ? sample : 0.5 * measured_ + 0.5 * sample;
  period_bytes_ = 0;
  period_start_ = now;
  if (auto_rate_ > 0 && now - last_cut_ >= cfg_.hold) {
    // Growth is per period whatever its length: an idle sender does not come back at a rate
    // it earned while idle.
    auto_rate_ *= cfg_.increase;
    if (auto_rate_ > cfg_.release * std::max(measured_, cfg_.min_byte_rate)) auto_rate_ = 0;
  }
}

void pacer::on_send(rel_clock::time_point now, std::size_t bytes) {
  tick(now);
  period_bytes_ += bytes;
  if (cfg_.max_rate > 0)
    frames_free_ = std::max(frames_free_, now - cfg_.burst) + seconds(1.0 / cfg_.max_rate);
  if (auto_rate_ > 0)
    bytes_free_ = std::max(bytes_free_, now - cfg_.burst) +
                  seconds(static_cast<double>(bytes) / auto_rate_);
}

rel_clock::duration pacer::debt(rel_clock::time_point now) {
  const auto until = std::max(cfg_.max_rate > 0 ? frames_free_ : now, auto_rate_ > 0 ? bytes_free_ : now);
  const auto wait = until - now;
  return wait < cfg_.min_sleep ? rel_clock::duration::zero() : wait;
}

void pacer::on_congestion(rel_clock::time_point now) {
  tick(now);
  if (cut_yet_ && now - last_cut_ < cfg_.hold) return;  // the same overflow, reported again
  // Cut what the sender really sent, not a limit it was not reaching. Before the first full
  // period the measurement is the period so far.
  double basis = measured_;
  if (basis <= 0) {
    const double secs = std::chrono::duration<double>(now - period_start_).count();
    basis = secs > 0 ? static_cast<double>(period_bytes_) / secs : cfg_.min_byte_rate;
  }
  if (auto_rate_ > 0) basis = std::min(basis, auto_rate_);
  auto_rate_ = std::max(cfg_.min_byte_rate, basis * cfg_.decrease);
  // A limit that starts now: no credit carried over from before the cut.
  bytes_free_ = std::max(bytes_free_, now);
  last_cut_ = now;
  cut_yet_ = true;
  ++cuts_;
}

}  // namespace peerbus::detail
