// tests/reliability/receiver_table_test.cpp: which receivers a sender waits for before evicting
// frames from its window (flow control, docs/protocol.md 8.9), on a fake clock: reports raise a
// receiver's floor, dead ones stop counting, stuck ones are left behind after stall_max and come
// back when they move, and one that already lost frames holds nothing; a receiver window (rwin)
// bounds how far ahead of a receiver the sender may be in bytes.
#include "reliability/receiver_table.hpp"

#include <catch2/catch.hpp>

using namespace peerbus::detail;
using namespace std::chrono_literals;

namespace {
const rel_clock::time_point t0 = rel_clock::time_point{} + 1h;
constexpr auto stall = 5s;
constexpr std::uint64_t a = 0xa, b = 0xb;
}  // namespace

TEST_CASE("receiver_table: without receivers nothing is held", "[reliability][flow]") {
  receiver_table t;
  CHECK(t.empty());
  CHECK(t.clear_fast(1000, 0));
  CHECK_FALSE(t.holds(1000, 0, 0, 1, t0, t0, stall));
  t.on_report(a, 500, std::nullopt, 1000, t0);  // never announced: ignored (a forged report holds nothing)
  CHECK(t.empty());
}

TEST_CASE("receiver_table: a receiver holds every seq above what it reported, until it reports more",
          "[reliability][flow]") {
  receiver_table t;
  t.on_announce(a, 100, 0, 0, t0 + 3s, t0);  // we had sent 100 when we first heard it: our guess
  REQUIRE(t.size() == 1);
  CHECK(t.clear_fast(100, 0));
  CHECK_FALSE(t.clear_fast(101, 0));
  CHECK(t.holds(101, 0, 0, 1, t0, t0, stall));
  t.on_report(a, 5000, std::nullopt, 4000, t0 + 1ms);  // more than we sent: cut to what we sent
  CHECK(t.clear_fast(4000, 0));
  CHECK_FALSE(t.clear_fast(4001, 0));
  t.on_report(a, 3000, std::nullopt, 4000, t0 + 2ms);  // older news, crossed on the wire: no step back
  CHECK(t.clear_fast(4000, 0));
  // A second receiver: the floor is the slower one's.
  t.on_announce(b, 4000, 0, 0, t0 + 3s, t0 + 2ms);
  t.on_announce(b, 9000, 0, 0, t0 + 4s, t0 + 3ms);  // its next heartbeat does not move our guess
  CHECK(t.clear_fast(4000, 0));
  CHECK_FALSE(t.clear_fast(4001, 0));
  t.on_report(a, 4000, std::nullopt, 8000, t0 + 4ms);
  t.on_report(b, 6000, std::nullopt, 8000, t0 + 4ms);
  CHECK(t.clear_fast(4000, 0));
  CHECK_FALSE(t.clear_fast(4001, 0));
  CHECK(t.holds(4001, 0, 0, 1, t0 + 4ms, t0 + 4ms, stall));
  t.forget(a);  // said goodbye
  CHECK(t.clear_fast(6000, 0));
  CHECK_FALSE(t.holds(6000, 0, 0, 1, t0 + 5ms, t0 + 5ms, stall));
  CHECK(t.holds(6001, 0, 0, 1, t0 + 5ms, t0 + 5ms, stall));
}

TEST_CASE("receiver_table: a receiver whose heartbeats stopped is forgotten", "[reliability][flow]") {
  receiver_table t;
  t.on_announce(a, 0, 0, 0, t0 + 3s, t0);
  CHECK(t.holds(10, 0, 0, 1, t0 + 2s, t0, stall));
  t.on_announce(a, 0, 0, 0, t0 + 5s, t0 + 2s);  // its next heartbeat: alive longer, still at 0
  CHECK(t.holds(10, 0, 0, 1, t0 + 4s, t0 + 4s, stall));
  CHECK_FALSE(t.holds(10, 0, 0, 1, t0 + 5s + 1ms, t0 + 4s, stall));  // expired
  CHECK(t.empty());
  CHECK(t.stalls() == 0);  // gone is not stalled
}

TEST_CASE("receiver_table: a receiver that makes no progress while we wait is left behind, and "
          "counts again once it moves",
          "[reliability][flow]") {
  receiver_table t;
  t.on_announce(a, 0, 0, 0, t0 + 1h, t0);
  // Idle for a minute before we first wait: the stall clock starts when the wait does.
  const auto w = t0 + 60s;
  CHECK(t.holds(10, 0, 0, 1, w, w, stall));
  CHECK(t.holds(10, 0, 0, 1, w + stall - 1ms, w, stall));
  t.on_report(a, 5, std::nullopt, 100, w + 4s);  // progress, not enough: the clock starts again
  CHECK(t.holds(10, 0, 0, 1, w + 8s, w, stall));
  CHECK_FALSE(t.holds(10, 0, 0, 1, w + 9s, w, stall));  // 5 s without progress: stalled
  CHECK(t.stalls() == 1);
  CHECK(t.clear_fast(100, 0));  // and left out of the fast check too
  CHECK_FALSE(t.holds(50, 0, 0, 1, w + 10s, w + 10s, stall));
  CHECK(t.stalls() == 1);  // counted once
  t.on_report(a, 20, std::nullopt, 100, w + 11s);  // it moved: waited for again
  CHECK(t.holds(50, 0, 0, 1, w + 11s, w + 11s, stall));
  CHECK_FALSE(t.clear_fast(50, 0));
}

TEST_CASE("receiver_table: a receiver that already lost frames (below the window's oldest) holds "
          "nothing",
          "[reliability][flow]") {
  receiver_table t;
  t.on_announce(a, 10, 0, 0, t0 + 1h, t0);
  CHECK(t.holds(20, 0, 0, 11, t0, t0, stall));        // it needs 11 and 11 is still held
  CHECK_FALSE(t.holds(20, 0, 0, 12, t0, t0, stall));  // 11 is gone: waiting cannot bring it back
  CHECK(t.stalls() == 0);
  CHECK(t.clear_fast(20, 0));
  t.on_report(a, 30, std::nullopt, 100, t0 + 1ms);  // caught up past the hole: waited for again
  CHECK(t.holds(40, 0, 0, 31, t0 + 1ms, t0 + 1ms, stall));
}

TEST_CASE("receiver_table: a receiver's first report replaces our guess, even downwards, and later ones "
          "only raise it",
          "[reliability][flow]") {
  receiver_table t;
  // First heard when we had sent 1000, but it was there before (or we had forgotten it): it
  // lacks everything after 40.
  t.on_announce(a, 1000, 0, 0, t0 + 1h, t0);
  CHECK(t.clear_fast(1000, 0));
  t.on_report(a, 40, std::nullopt, 1000, t0 + 1ms);
  CHECK(t.clear_fast(40, 0));
  CHECK_FALSE(t.clear_fast(41, 0));
  CHECK(t.holds(41, 0, 0, 1, t0 + 1ms, t0 + 1ms, stall));
  t.on_report(a, 30, std::nullopt, 1000, t0 + 2ms);  // a report that crossed the first one: no step back
  CHECK(t.clear_fast(40, 0));
  CHECK_FALSE(t.clear_fast(41, 0));
  // A first report equal to the guess confirms it; the next lower one is old news.
  t.on_announce(b, 1000, 0, 0, t0 + 1h, t0);
  t.on_report(b, 1000, std::nullopt, 1000, t0 + 3ms);
  t.on_report(b, 900, std::nullopt, 1000, t0 + 4ms);
  t.forget(a);
  CHECK(t.clear_fast(1000, 0));
}

TEST_CASE("receiver_table: the fast check counts a receiver whose heartbeats stopped until holds() "
          "drops it",
          "[reliability][flow]") {
  receiver_table t;
  t.on_announce(a, 0, 0, 0, t0 + 3s, t0);
  CHECK_FALSE(t.clear_fast(1, 0));  // conservative: holds() decides
  CHECK_FALSE(t.holds(1, 0, 0, 1, t0 + 4s, t0 + 4s, stall));
  CHECK(t.empty());
  CHECK(t.clear_fast(1, 0));
}

TEST_CASE("receiver_table: a receiver window holds the sender at rwin bytes ahead of the receiver's "
          "have, but never a message once it has everything",
          "[reliability][flow]") {
  receiver_table t;
  // Announced when we had sent 10 frames, 1000 bytes through them: it may be 500 bytes behind.
  t.on_announce(a, 10, 1000, 500, t0 + 1h, t0);
  CHECK(t.clear_fast(0, 1500));
  CHECK_FALSE(t.clear_fast(0, 1501));
  // It has everything sent (10): the next message goes, however large (even above rwin).
  CHECK_FALSE(t.holds(0, 5000, 10, 1, t0, t0, stall));
  // We sent 11..20 (1400 bytes through 20): the next push would put it 501 bytes behind.
  CHECK(t.holds(0, 1501, 20, 1, t0, t0, stall));
  CHECK_FALSE(t.holds(0, 1500, 20, 1, t0, t0, stall));
  t.on_report(a, 15, 1200, 20, t0 + 1ms);  // through 15: 1200 bytes, so up to 1700 now
  CHECK(t.clear_fast(0, 1700));
  CHECK_FALSE(t.clear_fast(0, 1701));
  CHECK(t.holds(0, 1701, 20, 1, t0 + 1ms, t0 + 1ms, stall));
  // A second receiver without a window bounds nothing by bytes; the floor is the lower mark.
  t.on_announce(b, 20, 1400, 0, t0 + 1h, t0 + 1ms);
  CHECK(t.clear_fast(0, 1700));
  CHECK_FALSE(t.clear_fast(0, 1701));
  // Stuck 5 s behind its window: left behind like any stalled receiver.
  CHECK(t.holds(0, 1701, 20, 1, t0 + 2s, t0 + 1s, stall));
  CHECK_FALSE(t.holds(0, 1701, 20, 1, t0 + 6s + 2ms, t0 + 1s, stall));
  CHECK(t.stalls() == 1);
  CHECK(t.clear_fast(0, 1'000'000));
  // It moves again, to a seq older than the window (no mark): counted again, bounded by
  // eviction only.
  t.on_report(a, 16, std::nullopt, 20, t0 + 7s);
  CHECK_FALSE(t.holds(0, 1'000'000, 20, 1, t0 + 7s, t0 + 7s, stall));
  CHECK(t.holds(17, 1'000'000, 20, 1, t0 + 7s, t0 + 7s, stall));
}

TEST_CASE("receiver_table: a huge announced rwin is capped and cannot overflow the bound",
          "[reliability][flow]") {
  receiver_table t;
  const std::uint64_t mark = std::uint64_t{1} << 62;
  t.on_announce(a, 10, mark, ~std::uint64_t{0}, t0 + 1h, t0);
  CHECK(t.clear_fast(0, mark + receiver_table::max_rwin));
  CHECK_FALSE(t.clear_fast(0, mark + receiver_table::max_rwin + 1));
}
