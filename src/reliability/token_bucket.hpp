// reliability/token_bucket.hpp: a token bucket (rate and burst) on a caller-supplied clock.
#pragma once

#include "reliability/config.hpp"

#include <algorithm>
#include <cstdint>

namespace peerbus::detail {

/// A budget of `rate` tokens per second, of which at most `burst` can be saved up: what bounds
/// the NACKs a receiver sends and the repairs a sender makes, whatever its input (issue 8).
/// Starts full. Pure: every call takes `now` (a fake clock in tests); never sleeps.
/// Not thread-safe: one owner (the bus's strand, or a caller holding its lock).
///
///     token_bucket b{10000, 2000, now};
///     const auto n = b.take_up_to(wanted, now);  // spend n, defer the rest
class token_bucket {
 public:
  using time_point = rel_clock::time_point;

  /// rate: tokens added per second (0 is taken as 1); burst: the most it holds (0 is taken as 1).
  token_bucket(std::uint64_t rate, std::uint64_t burst, time_point now) noexcept
      : rate_(static_cast<double>(std::max<std::uint64_t>(rate, 1))),
        burst_(static_cast<double>(std::max<std::uint64_t>(burst, 1))),
        level_(burst_),
        last_(now) {}

  /// Whole tokens available at `now`.
  std::uint64_t available(time_point now) noexcept {
    refill(now);
    return static_cast<std::uint64_t>(level_);
  }

  /// Takes min(n, available) tokens and returns how many it took.
  std::uint64_t take_up_to(std::uint64_t n, time_point now) noexcept {
    const std::uint64_t got = std::min(n, available(now));
    level_ -= static_cast<double>(got);
    return got;
  }

  /// Takes exactly n tokens if that many are available; else takes none.
  bool take(std::uint64_t n, time_point now) noexcept {
    if (available(now) < n) return false;
    level_ -= static_cast<double>(n);
    return true;
  }

  /// How long until `n` tokens (capped at the burst) are available; zero if they already are.
  rel_clock::duration wait_for(std::uint64_t n, time_point now) noexcept {
    refill(now);
    const double want = std::min(static_cast<double>(n), burst_);
    if (level_ >= want) return rel_clock::duration::zero();
    const double seconds = (want - level_) / rate_;
    // Rounded up, so that waiting this long really finds the tokens there.
    return std::chrono::duration_cast<rel_clock::duration>(std::chrono::duration<double>(seconds)) +
           rel_clock::duration(1);
  }

  std::uint64_t rate() const noexcept { return static_cast<std::uint64_t>(rate_); }
  std::uint64_t burst() const noexcept { return static_cast<std::uint64_t>(burst_); }

 private:
  void refill(time_point now) noexcept {
    if (now <= last_) return;  // a clock that stands still or steps back adds nothing
    const double seconds = std::chrono::duration<double>(now - last_).count();
    level_ = std::min(burst_, level_ + seconds * rate_);
    last_ = now;
  }

  double rate_;
  double burst_;
  double level_;
  time_point last_;
};

}  // namespace peerbus::detail
