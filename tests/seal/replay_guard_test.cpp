// seal/replay_guard_test.cpp: the anti-replay core on its own: verdicts, the window edges, the
// floor, expiry and the sender bound, with a fake clock.
#include "seal/replay_guard.hpp"

#include <catch2/catch.hpp>
#include <cstdint>

using peerbus::detail::seal::replay_guard;
using verdict = replay_guard::verdict;

namespace {
constexpr std::int64_t t0 = 1'800'000'000'000'000;
constexpr std::int64_t second = 1'000'000;
}  // namespace

TEST_CASE("replay_guard: every verdict", "[seal]") {
  replay_guard g(8, 30 * second, t0 - second);
  CHECK(g.check_and_record(1, 0, t0, t0) == verdict::bad_counter);
  CHECK(g.check_and_record(1, 5, t0, t0) == verdict::accepted);
  CHECK(g.check_and_record(1, 5, t0, t0) == verdict::replayed);
  CHECK(g.check_and_record(1, 4, t0, t0) == verdict::accepted);
  CHECK(g.check_and_record(1, 5000, t0, t0) == verdict::accepted);
  CHECK(g.check_and_record(1, 5000 - 1024, t0, t0) == verdict::behind);
  CHECK(g.check_and_record(1, 5000 - 1023, t0, t0) == verdict::accepted);
  CHECK(g.check_and_record(1, 6000, t0 - 31 * second, t0) == verdict::stale);
  CHECK(g.check_and_record(1, 6000, t0 + 31 * second, t0) == verdict::from_future);
  CHECK(g.check_and_record(2, 1, t0 - 2 * second, t0) == verdict::stale);  // before the start
  CHECK(g.senders() == 1);
}

TEST_CASE("replay_guard: refused datagrams leave no trace", "[seal]") {
  replay_guard g(8, 30 * second);
  REQUIRE(g.check_and_record(1, 10, t0, t0) == verdict::accepted);
  // A stale datagram with a high counter must not move the window.
  CHECK(g.check_and_record(1, 100000, t0 - 40 * second, t0) == verdict::stale);
  CHECK(g.check_and_record(1, 9, t0, t0) == verdict::accepted);
  CHECK(g.check_and_record(3, 1, t0 + 40 * second, t0) == verdict::from_future);
  CHECK(g.senders() == 1);
}

TEST_CASE("replay_guard: every counter of a long in-order run is accepted once", "[seal]") {
  replay_guard g(4, 30 * second);
  for (std::uint64_t c = 1; c <= 5000; ++c) {
    REQUIRE(g.check_and_record(9, c, t0, t0) == verdict::accepted);
    REQUIRE(g.check_and_record(9, c, t0, t0) == verdict::replayed);
    if (c > 1) REQUIRE(g.check_and_record(9, c - 1, t0, t0) == verdict::replayed);
  }
}

TEST_CASE("replay_guard: eviction raises the floor for senders it no longer tracks", "[seal]") {
  replay_guard g(2, 30 * second);
  REQUIRE(g.check_and_record(1, 1, t0 + 1, t0 + 10) == verdict::accepted);
  REQUIRE(g.check_and_record(2, 1, t0 + 2, t0 + 10) == verdict::accepted);
  REQUIRE(g.check_and_record(3, 1, t0 + 3, t0 + 10) == verdict::accepted);  // evicts 1
  CHECK(g.evictions() == 1);
  CHECK(g.floor_us() == t0 + 1);
  CHECK(g.senders() == 2);
  // Sender 1's counter 1 again: unknown now, but sent before the floor.
  CHECK(g.check_and_record(1, 1, t0 + 1, t0 + 10) == verdict::stale);
  // Sender 1 sending on is accepted.
  CHECK(g.check_and_record(1, 2, t0 + 5, t0 + 10) == verdict::accepted);
}

TEST_CASE("replay_guard: a sender silent past the freshness limit is forgotten", "[seal]") {
  replay_guard g(100, 30 * second);
  REQUIRE(g.check_and_record(1, 1, t0, t0) == verdict::accepted);
  REQUIRE(g.check_and_record(2, 1, t0 + 20 * second, t0 + 20 * second) == verdict::accepted);
  REQUIRE(g.check_and_record(2, 2, t0 + 31 * second, t0 + 31 * second) == verdict::accepted);
  CHECK(g.senders() == 1);  // sender 1 went
  CHECK(g.evictions() == 0);
  // Its old datagram is stale by its own timestamp.
  CHECK(g.check_and_record(1, 1, t0, t0 + 31 * second) == verdict::stale);
}
