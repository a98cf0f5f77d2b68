// tests/reliability/pacer_test.cpp: the sender's rate limit on a fake clock: no limit, the
// max_rate ceiling, the congestion cut, its growth and release, the floor and the burst cap.
#include "reliability/pacer.hpp"

#include <catch2/catch.hpp>

#include <cmath>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

using namespace peerbus::detail;
using namespace std::chrono_literals;

namespace {

const rel_clock::time_point t0 = rel_clock::time_point{} + 1h;

double secs(rel_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// A sender on a fake clock: it wants a frame of `bytes` out every `gap` (zero: flat out) and
// waits whatever the pacer asks, plus `oversleep` (a real sleep always overshoots).
struct sender {
  pacer& p;
  rel_clock::time_point now = t0;
  std::uint64_t frames = 0, bytes = 0, waits = 0;
  rel_clock::duration waited{};
  rel_clock::duration shortest_wait = rel_clock::duration::max();
  rel_clock::duration oversleep{};

  // One frame and the wait after it.
  void send(std::size_t size, rel_clock::duration gap) {
    p.on_send(now, size);
    ++frames;
    bytes += size;
    const auto d = p.debt(now);
    if (d > rel_clock::duration::zero()) {
      ++waits;
      waited += d;
      shortest_wait = std::min(shortest_wait, d);
      now += std::max(gap, d + oversleep);
    } else {
      now += gap;
    }
  }
  // Sends until the clock reaches `until` (bounded: gap must be non-zero or a limit in force).
  void run_until(rel_clock::time_point until, std::size_t size, rel_clock::duration gap) {
    for (int i = 0; i < 10'000'000 && now < until; ++i) send(size, gap);
    REQUIRE(now >= until);
  }
};

// A sender that had been sending 1000-byte frames at 10 MB/s for 200 ms (measured 1e7 bytes/s).
void warm_up(sender& s) {
  s.run_until(t0 + 200ms, 1000, 100us);
  REQUIRE(s.p.measured_byte_rate() == Approx(1e7).epsilon(0.01));
  REQUIRE(s.p.byte_rate() == 0);
}

}  // namespace

TEST_CASE("pacer: without a ceiling or a congestion report no frame ever waits", "[reliability]") {
  pacer p;
  sender s{p};
  // 100,000 frames flat out at a single instant, then at 1 GB/s for 100 ms.
  for (int i = 0; i < 100'000; ++i) {
    p.on_send(s.now, 1400);
    REQUIRE(p.debt(s.now) == rel_clock::duration::zero());
  }
  s.run_until(t0 + 100ms, 1000, 1us);
  CHECK(s.waits == 0);
  CHECK(p.byte_rate() == 0);
  CHECK(p.cuts() == 0);
  CHECK(p.measured_byte_rate() > 0);
}

TEST_CASE("pacer: max_rate spreads a flat-out sender to that many frames per second",
          "[reliability]") {
  pacer::config c;
  c.max_rate = 1000;  // 1 ms a frame: every debt is longer than min_sleep
  pacer p(c);
  sender s{p};
  constexpr std::uint64_t n = 5000;
  for (std::uint64_t i = 0; i < n; ++i) s.send(100, 0us);
  // Five seconds' worth, less the burst credit a sender starts with, within a frame.
  const double expect = n / c.max_rate;
  INFO("waited " << secs(s.waited) << " s for " << n << " frames at " << c.max_rate << "/s");
  CHECK(secs(s.waited) <= expect);
  CHECK(secs(s.waited) >= expect - secs(c.burst) - 1 / c.max_rate);
  CHECK(s.waits >= n - 3);  // every frame past the burst credit waits its own millisecond
  CHECK(p.byte_rate() == 0);  // the ceiling is not an automatic limit
}

TEST_CASE("pacer: at a high max_rate short debts are carried and paid in sleeps of min_sleep",
          "[reliability]") {
  pacer::config c;
  c.max_rate = 100'000;  // 10 us a frame, a twentieth of min_sleep
  pacer p(c);
  sender s{p};
  // Until the debt reaches min_sleep nothing is asked: the credit (burst) and then 20 frames.
  const auto free_frames = static_cast<std::uint64_t>(secs(c.burst + c.min_sleep) * c.max_rate);
  for (std::uint64_t i = 0; i + 1 < free_frames; ++i) {
    INFO("frame " << i);
    s.send(100, 0us);
    REQUIRE(s.waits == 0);
  }
  constexpr std::uint64_t n = 200'000;  // two seconds' worth
  while (s.frames < n) s.send(100, 0us);
  const double expect = n / c.max_rate;
  INFO("waited " << secs(s.waited) << " s in " << s.waits << " waits for " << n << " frames");
  CHECK(s.shortest_wait >= c.min_sleep);
  CHECK(s.waits <= n / 20 + 1);  // a sleep per 20 frames, not one per frame
  CHECK(s.waits >= n / 30);
  CHECK(secs(s.waited) <= expect);
  CHECK(secs(s.waited) >= expect - secs(c.burst + c.min_sleep) - 2 / c.max_rate);
}

TEST_CASE("pacer: a sender that oversleeps every wait still averages max_rate", "[reliability]") {
  pacer::config c;
  c.max_rate = 100'000;
  pacer p(c);
  sender s{p};
  s.oversleep = 50us;  // a quarter of each 200 us sleep
  constexpr std::uint64_t n = 200'000;
  while (s.frames < n) s.send(100, 0us);
  // The overshoot is made up from the credit (up to burst), not lost: 2 s, within a frame or two
  // and one overshoot, less the starting credit.
  const double elapsed = secs(s.now - t0);
  const double expect = n / c.max_rate;
  INFO("elapsed " << elapsed << " s for " << n << " frames");
  CHECK(elapsed <= expect + secs(s.oversleep) + 2 / c.max_rate);
  CHECK(elapsed >= expect - secs(c.burst) - 2 / c.max_rate);
}

TEST_CASE("pacer: a congestion report halves the measured byte rate, once per hold",
          "[reliability]") {
  pacer p;
  const pacer::config c;
  sender s{p};
  warm_up(s);
  const auto cut_at = s.now;
  p.on_congestion(cut_at);
  CHECK(p.cuts() == 1);
  const double first = p.byte_rate();
  CHECK(first == Approx(c.decrease * 1e7).epsilon(0.01));

  // The same overflow reported by other NACKs within hold: no further cut.
  for (auto after : {0us, 1us, 1000us, 5000us, 9999us}) {
    INFO("report " << after.count() << " us after the cut");
    p.on_congestion(cut_at + after);
    CHECK(p.cuts() == 1);
    CHECK(p.byte_rate() == first);
  }
  // A report a hold later is a new episode: cut again, from at most the limit in force.
  p.on_congestion(cut_at + c.hold);
  CHECK(p.cuts() == 2);
  CHECK(p.byte_rate() <= first * c.increase * c.decrease * 1.000001);
  CHECK(p.byte_rate() >= c.min_byte_rate);
}

TEST_CASE("pacer: after a cut a flat-out sender is held to the limit at once", "[reliability]") {
  pacer p;
  sender s{p};
  warm_up(s);
  p.on_congestion(s.now);
  const double limit = p.byte_rate();
  REQUIRE(limit > 0);
  // No credit from before the cut: the first frames already wait (5 MB/s: 200 us a frame).
  const auto start = s.now;
  const auto bytes0 = s.bytes;
  s.send(1000, 0us);
  s.send(1000, 0us);
  CHECK(s.waits > 0);
  s.run_until(start + 100ms, 1000, 0us);
  // It sends what the limit allows: at least the limit it started with, at most the limit it
  // grew to (3% a hold), give or take a frame.
  const double rate = static_cast<double>(s.bytes - bytes0) / secs(s.now - start);
  INFO("limit " << limit << " -> " << p.byte_rate() << " bytes/s, sent " << rate << " bytes/s");
  CHECK(p.byte_rate() > limit);  // it grew
  CHECK(rate >= limit * 0.99);
  CHECK(rate <= p.byte_rate() * 1.01);
}

TEST_CASE("pacer: the limit grows by its increase a hold after a cut and is lifted far above use",
          "[reliability]") {
  pacer::config c;
  c.min_byte_rate = 10'000;  // out of the way: the release is measured against use here
  pacer p(c);
  sender s{p};
  warm_up(s);
  p.on_congestion(s.now);
  const double first = p.byte_rate();
  REQUIRE(first == Approx(5e6).epsilon(0.01));

  // Then it sends 2 MB/s, under the limit: the limit grows until it passes 4x that, 8 MB/s:
  // 5 MB/s * increase^16 (3% a hold: about 0.16 s).
  std::vector<double> steps{first};
  double lifted_from = 0, measured_at_lift = 0;
  const auto cut_at = s.now;
  for (int i = 0; i < 100'000 && s.now < cut_at + 1s; ++i) {
    s.send(1000, 500us);
    const double r = p.byte_rate();
    if (r == steps.back()) continue;
    if (r == 0) {
      lifted_from = steps.back();
      measured_at_lift = p.measured_byte_rate();
      break;
    }
    INFO("step " << steps.size() << ": " << steps.back() << " -> " << r);
    CHECK(r == Approx(steps.back() * c.increase).epsilon(1e-9));
    CHECK(r <= c.release * std::max(p.measured_byte_rate(), c.min_byte_rate));
    steps.push_back(r);
  }
  INFO(steps.size() - 1 << " growth steps from " << first << " to " << steps.back()
                        << " bytes/s in " << secs(s.now - cut_at) << " s");
  // 2 MB/s is under the limit: only the first frame after the cut waits (no credit at a cut).
  CHECK(s.waits <= 1);
  REQUIRE(lifted_from > 0);
  const double expected = std::log(c.release * 2e6 / first) / std::log(c.increase);
  CHECK(static_cast<double>(steps.size() - 1) >= 0.85 * expected);
  CHECK(static_cast<double>(steps.size() - 1) <= expected + 1);
  CHECK(measured_at_lift == Approx(2e6).epsilon(0.02));
  // Lifted by the growth step that took it past release x use, not before.
  CHECK(lifted_from <= c.release * measured_at_lift);
  CHECK(lifted_from * c.increase > c.release * measured_at_lift);
  // Lifted: a flat-out sender goes unhindered again.
  for (int i = 0; i < 1000; ++i) p.on_send(s.now, 1400);
  CHECK(p.debt(s.now) == rel_clock::duration::zero());
  CHECK(p.cuts() == 1);
}

TEST_CASE("pacer: the automatic limit never goes below min_byte_rate", "[reliability]") {
  const pacer::config c;
  SECTION("a slow sender cut once") {
    pacer p;
    sender s{p};
    s.run_until(t0 + 1s, 1000, 10ms);  // 100 kB/s, a tenth of the floor
    p.on_congestion(s.now);
    CHECK(p.cuts() == 1);
    CHECK(p.byte_rate() == c.min_byte_rate);
  }
  SECTION("a sender cut every hold while it obeys") {
    pacer p;
    sender s{p};
    warm_up(s);
    for (int k = 0; k < 20; ++k) {
      p.on_congestion(s.now);
      INFO("cut " << k + 1 << ": " << p.byte_rate() << " bytes/s");
      CHECK(p.byte_rate() >= c.min_byte_rate);
      s.run_until(s.now + c.hold, 1000, 0us);
    }
    CHECK(p.cuts() == 20);
    CHECK(p.byte_rate() <= c.min_byte_rate * 1.2);  // down at the floor, growing off it a little
  }
}

TEST_CASE("pacer: credit saved while idle is capped at burst", "[reliability]") {
  SECTION("the max_rate ceiling") {
    pacer::config c;
    c.max_rate = 100'000;
    pacer p(c);
    sender s{p};
    for (int i = 0; i < 1000; ++i) s.send(100, 0us);
    s.now += 1s;  // idle: 100,000 frames' worth of time
    std::uint64_t free = 0;
    for (; free < 200'000; ++free) {
      p.on_send(s.now, 100);
      if (p.debt(s.now) > rel_clock::duration::zero()) break;
    }
    // burst (2 ms = 200 frames) plus the debt below min_sleep (20 frames), not 100,000.
    INFO(free << " frames went without a wait after 1 s idle");
    CHECK(free >= static_cast<std::uint64_t>(secs(c.burst) * c.max_rate) - 1);
    CHECK(free <= static_cast<std::uint64_t>(secs(c.burst + c.min_sleep) * c.max_rate) + 1);
  }
  SECTION("the automatic byte limit") {
    pacer::config c;
    pacer p(c);
    sender s{p};
    warm_up(s);
    p.on_congestion(s.now);
    s.run_until(s.now + 50ms, 1000, 0us);
    s.now += 1s;
    std::uint64_t free = 0;
    for (; free < 100'000; ++free) {
      p.on_send(s.now, 1000);
      if (p.debt(s.now) > rel_clock::duration::zero()) break;
    }
    REQUIRE(p.byte_rate() > 0);  // still in force after the pause
    const double most = secs(c.burst + c.min_sleep) * p.byte_rate() / 1000;
    INFO(free << " frames of 1000 bytes went without a wait after 1 s idle at "
              << p.byte_rate() << " bytes/s");
    CHECK(static_cast<double>(free) >= secs(c.burst) * p.byte_rate() / 1000 - 1);
    CHECK(static_cast<double>(free) <= most + 1);
  }
}
