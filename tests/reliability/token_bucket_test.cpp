// tests/reliability/token_bucket_test.cpp: the NACK and repair budgets' bucket, on a fake clock.
#include "reliability/token_bucket.hpp"

#include <catch2/catch.hpp>

using namespace peerbus::detail;
using namespace std::chrono_literals;

namespace {
const rel_clock::time_point t0 = rel_clock::time_point{} + 1h;
}  // namespace

TEST_CASE("token_bucket: starts full and never gives more than its burst", "[reliability]") {
  token_bucket b(1000, 50, t0);
  CHECK(b.available(t0) == 50);
  CHECK(b.take_up_to(80, t0) == 50);
  CHECK(b.available(t0) == 0);
  CHECK(b.take_up_to(1, t0) == 0);
  // A long idle spell saves up the burst, no more.
  CHECK(b.available(t0 + 1h) == 50);
}

TEST_CASE("token_bucket: refills at its rate", "[reliability]") {
  token_bucket b(1000, 100, t0);
  REQUIRE(b.take_up_to(100, t0) == 100);
  CHECK(b.available(t0 + 10ms) == 10);
  CHECK(b.available(t0 + 50ms) == 50);
  CHECK(b.take_up_to(30, t0 + 50ms) == 30);
  CHECK(b.available(t0 + 50ms) == 20);
  CHECK(b.available(t0 + 130ms) == 100);
}

TEST_CASE("token_bucket: take is all or nothing", "[reliability]") {
  token_bucket b(10, 5, t0);
  CHECK(b.take(3, t0));
  CHECK_FALSE(b.take(3, t0));
  CHECK(b.available(t0) == 2);
  CHECK(b.take(2, t0));
  CHECK(b.available(t0) == 0);
}

TEST_CASE("token_bucket: wait_for says when the tokens will be there", "[reliability]") {
  token_bucket b(1000, 100, t0);
  CHECK(b.wait_for(10, t0) == rel_clock::duration::zero());
  REQUIRE(b.take_up_to(100, t0) == 100);
  const auto w = b.wait_for(10, t0);
  CHECK(w >= 10ms);
  CHECK(w <= 11ms);
  CHECK(b.available(t0 + w) >= 10);
  // More than the burst can never be there at once: the wait is for a full bucket.
  CHECK(b.wait_for(1000000, t0) <= 101ms);
}

TEST_CASE("token_bucket: a clock that steps back adds nothing and takes nothing", "[reliability]") {
  token_bucket b(1000, 100, t0);
  REQUIRE(b.take_up_to(100, t0 + 1s) == 100);
  CHECK(b.available(t0) == 0);
  CHECK(b.available(t0 + 1s + 20ms) == 20);
}

TEST_CASE("token_bucket: a zero rate or burst is taken as one", "[reliability]") {
  token_bucket b(0, 0, t0);
  CHECK(b.rate() == 1);
  CHECK(b.burst() == 1);
  CHECK(b.take_up_to(5, t0) == 1);
  CHECK(b.available(t0 + 1s) == 1);
}

TEST_CASE("token_bucket: a long run hands out rate x time plus the burst, no more", "[reliability]") {
  token_bucket b(5000, 500, t0);
  std::uint64_t got = 0;
  for (int ms = 0; ms <= 2000; ++ms) got += b.take_up_to(1000, t0 + std::chrono::milliseconds(ms));
  CHECK(got >= 10000);
  CHECK(got <= 10000 + 500);
}
