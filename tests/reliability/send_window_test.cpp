// tests/reliability/send_window_test.cpp: retransmit ring bounds, lookup, reuse, repair holdoff.
#include "reliability/send_window.hpp"

#include <catch2/catch.hpp>
#include <random>
#include <string>

using namespace peerbus::detail;
using namespace std::chrono_literals;

namespace {

const rel_clock::time_point t0 = rel_clock::time_point{} + 1h;

std::string frame_for(std::uint64_t seq, std::size_t size = 0) {
  std::string f = "frame-" + std::to_string(seq);
  if (f.size() < size) f.append(size - f.size(), 'x');
  return f;
}

}  // namespace

TEST_CASE("send_window: empty window holds nothing", "[reliability]") {
  send_window w;
  CHECK(w.size() == 0);
  CHECK(w.bytes() == 0);
  CHECK(w.lowest() == 0);
  CHECK(w.highest() == 0);
  CHECK(w.highest_pushed() == 0);
  CHECK_FALSE(w.find(0));
  CHECK_FALSE(w.find(1));
  CHECK_FALSE(w.may_repair(1, t0, 10ms));
  CHECK(w.max_count() == send_window::default_max_count);
  CHECK(w.max_bytes() == send_window::default_max_bytes);
}

TEST_CASE("send_window: push and find consecutive seqs", "[reliability]") {
  send_window w;
  for (std::uint64_t s = 1; s <= 100; ++s) w.push(s, frame_for(s));
  CHECK(w.size() == 100);
  CHECK(w.lowest() == 1);
  CHECK(w.highest() == 100);
  CHECK(w.highest_pushed() == 100);
  std::size_t bytes = 0;
  for (std::uint64_t s = 1; s <= 100; ++s) {
    auto f = w.find(s);
    REQUIRE(f);
    CHECK(*f == frame_for(s));
    bytes += f->size();
  }
  CHECK(w.bytes() == bytes);
  CHECK_FALSE(w.find(0));
  CHECK_FALSE(w.find(101));
  CHECK(w.evicted() == 0);
}

TEST_CASE("send_window: numbering may start anywhere", "[reliability]") {
  send_window w;
  w.push(1000, "a");
  w.push(1001, "b");
  CHECK(w.lowest() == 1000);
  CHECK(w.highest() == 1001);
  CHECK(*w.find(1000) == "a");
  CHECK(*w.find(1001) == "b");
  CHECK_FALSE(w.find(999));
}

TEST_CASE("send_window: seq 0 is ignored", "[reliability]") {
  send_window w;
  w.push(0, "zero");
  CHECK(w.size() == 0);
  w.push(1, "one");
  w.push(0, "zero");
  CHECK(w.size() == 1);
  CHECK(w.resets() == 0);
}

TEST_CASE("send_window: a seq that does not follow clears the window", "[reliability]") {
  send_window w;
  w.push(1, "a");
  w.push(2, "b");
  w.push(5, "e");
  CHECK(w.resets() == 1);
  CHECK(w.size() == 1);
  CHECK(w.lowest() == 5);
  CHECK_FALSE(w.find(2));
  CHECK(*w.find(5) == "e");
  w.push(5, "again");  // a repeat does not follow either
  CHECK(w.resets() == 2);
  CHECK(*w.find(5) == "again");
  CHECK(w.evicted() == 0);  // a reset is not an eviction by a bound
}

TEST_CASE("send_window: eviction by count keeps the newest", "[reliability]") {
  send_window w(4, 1 << 20);
  for (std::uint64_t s = 1; s <= 10; ++s) w.push(s, frame_for(s));
  CHECK(w.size() == 4);
  CHECK(w.lowest() == 7);
  CHECK(w.highest() == 10);
  CHECK(w.evicted() == 6);
  CHECK_FALSE(w.find(6));
  for (std::uint64_t s = 7; s <= 10; ++s) CHECK(*w.find(s) == frame_for(s));
  CHECK(w.bytes() == 3 * frame_for(7).size() + frame_for(10).size());
}

TEST_CASE("send_window: eviction by bytes keeps the newest", "[reliability]") {
  send_window w(100, 10);
  w.push(1, "aaaa");
  w.push(2, "bbbb");
  CHECK(w.size() == 2);
  CHECK(w.bytes() == 8);
  w.push(3, "cccc");  // 12 > 10: seq 1 goes
  CHECK(w.size() == 2);
  CHECK(w.bytes() == 8);
  CHECK(w.lowest() == 2);
  CHECK(w.evicted() == 1);
  w.push(4, "dddddddd");  // needs 8: both older ones go
  CHECK(w.size() == 1);
  CHECK(w.lowest() == 4);
  CHECK(w.evicted() == 3);

  SECTION("a frame larger than max_bytes is still kept, alone") {
    w.push(5, std::string(50, 'z'));
    CHECK(w.size() == 1);
    CHECK(w.lowest() == 5);
    CHECK(w.bytes() == 50);
    CHECK(w.find(5)->size() == 50);
    w.push(6, "f");
    CHECK(w.size() == 1);
    CHECK(*w.find(6) == "f");
  }
}

TEST_CASE("send_window: zero bounds are taken as one", "[reliability]") {
  send_window w(0, 0);
  CHECK(w.max_count() == 1);
  CHECK(w.max_bytes() == 1);
  w.push(1, "abc");
  w.push(2, "def");
  CHECK(w.size() == 1);
  CHECK(*w.find(2) == "def");
}

TEST_CASE("send_window: contents survive ring growth and wrap-around", "[reliability]") {
  std::mt19937_64 rng(7);
  send_window w(50, 1 << 20);
  for (std::uint64_t s = 1; s <= 1000; ++s) {
    w.push(s, frame_for(s, rng() % 300));
    const std::uint64_t lo = s > 50 ? s - 49 : 1;
    REQUIRE(w.lowest() == lo);
    REQUIRE(w.highest() == s);
    for (std::uint64_t q = lo; q <= s; ++q) {
      auto f = w.find(q);
      REQUIRE(f);
      REQUIRE(f->substr(0, frame_for(q).size()) == frame_for(q));
    }
  }
  CHECK(w.evicted() == 950);
}

TEST_CASE("send_window: steady-state pushes allocate nothing", "[reliability]") {
  // Once both rings have grown to the working size, the sender's pushes only copy.
  send_window w(64, 1 << 20);
  for (std::uint64_t s = 1; s <= 200; ++s) w.push(s, frame_for(s, 200));
  const std::size_t cap = w.capacity_bytes();
  for (std::uint64_t s = 201; s <= 5000; ++s) w.push(s, frame_for(s, 50 + s % 150));
  CHECK(w.capacity_bytes() == cap);
  for (std::uint64_t s = 4937; s <= 5000; ++s) CHECK(w.find(s)->substr(0, frame_for(s).size()) == frame_for(s));
}

TEST_CASE("send_window: buffer capacity stays within twice the byte bound", "[reliability]") {
  // Frames of very different sizes fragment the byte ring; it never grows past 2 * max_bytes,
  // and every frame the bounds keep is still found whole.
  std::mt19937_64 rng(11);
  send_window w(1024, 16384);
  for (std::uint64_t s = 1; s <= 20000; ++s) {
    const std::size_t size = rng() % 4 == 0 ? 4000 + rng() % 4000 : 10 + rng() % 200;
    w.push(s, frame_for(s, size));
    REQUIRE(w.bytes() <= 16384);
    REQUIRE(w.capacity_bytes() <= 2 * 16384 + 1024 * 64);
    REQUIRE(w.highest() == s);
    REQUIRE(w.find(s)->size() == frame_for(s, size).size());
    const std::uint64_t lo = w.lowest();
    REQUIRE(w.find(lo)->substr(0, frame_for(lo).size()) == frame_for(lo));
  }
  CHECK(w.size() >= 2);  // the ring holds several frames, not one at a time
}

TEST_CASE("send_window: clear forgets frames and keeps counters", "[reliability]") {
  send_window w(2, 100);
  for (std::uint64_t s = 1; s <= 5; ++s) w.push(s, "x");
  w.clear();
  CHECK(w.size() == 0);
  CHECK(w.bytes() == 0);
  CHECK(w.lowest() == 0);
  CHECK(w.evicted() == 3);
  w.push(42, "y");  // any seq may follow an empty window
  CHECK(w.lowest() == 42);
  CHECK(w.resets() == 0);
}

TEST_CASE("send_window: may_repair allows one repair per holdoff and seq", "[reliability]") {
  send_window w;
  for (std::uint64_t s = 1; s <= 3; ++s) w.push(s, frame_for(s));
  CHECK(w.may_repair(2, t0, 10ms));
  CHECK_FALSE(w.may_repair(2, t0, 10ms));
  CHECK_FALSE(w.may_repair(2, t0 + 9ms, 10ms));
  CHECK(w.may_repair(3, t0 + 9ms, 10ms));   // per seq
  CHECK(w.may_repair(2, t0 + 10ms, 10ms));  // holdoff elapsed
  CHECK_FALSE(w.may_repair(2, t0 + 19ms, 10ms));
  CHECK(w.may_repair(2, t0 + 20ms, 10ms));
  CHECK(w.may_repair(1, t0, 0ms));
  CHECK(w.may_repair(1, t0, 0ms));         // no holdoff
  CHECK_FALSE(w.may_repair(4, t0, 10ms));  // not held
  CHECK(w.repairs_allowed() == 6);
  CHECK(w.repairs_held_off() == 3);
}

TEST_CASE("send_window: a reused slot forgets the previous seq's repair time", "[reliability]") {
  send_window w(2, 1 << 20);
  w.push(1, "a");
  w.push(2, "b");
  CHECK(w.may_repair(1, t0, 10ms));
  w.push(3, "c");  // evicts 1; 3 takes its slot
  CHECK_FALSE(w.may_repair(1, t0, 10ms));
  CHECK(w.may_repair(3, t0 + 1ms, 10ms));
}

TEST_CASE("send_window: evicts_through says which seqs a push would evict, as push does",
          "[reliability][flow]") {
  send_window w(4, 100);
  CHECK(w.evicts_through(1, 10) == 0);  // empty
  for (std::uint64_t s = 1; s <= 3; ++s) w.push(s, frame_for(s, 20));  // 60 bytes, 3 frames
  CHECK(w.evicts_through(1, 20) == 0);   // 4 frames, 80 bytes: fits
  CHECK(w.evicts_through(2, 20) == 1);   // 5 frames: one out
  CHECK(w.evicts_through(1, 45) == 1);   // 105 bytes: one out
  CHECK(w.evicts_through(1, 70) == 2);   // 130, 110 bytes: two out
  CHECK(w.evicts_through(1, 500) == 3);  // larger than the bound: everything else goes
  // Several frames (a fragmented message): the bounds, frames and bytes together.
  CHECK(w.evicts_through(2, 40) == 1);  // 5 frames
  CHECK(w.evicts_through(3, 40) == 2);  // 6 frames
  CHECK(w.evicts_through(1, 90) == 3);
}

TEST_CASE("send_window: evicts_through predicts push exactly, for frames of very different sizes",
          "[reliability][flow]") {
  // Frames from 100 bytes to half the bound: push evicts what the bounds say and no more (the
  // byte ring, twice the bound, always has room), and evicts_through says so beforehand.
  send_window w(1000, 40000);
  std::mt19937_64 rng(7);
  std::uint64_t evicted = 0;
  w.push(1, frame_for(1, 100));
  for (std::uint64_t s = 2; s < 2000; ++s) {
    const std::string f = frame_for(s, 100 + rng() % 20000);
    const std::uint64_t predicted = w.evicts_through(1, f.size());
    const std::uint64_t lowest = w.lowest();
    w.push(s, f);
    INFO("seq " << s << " size " << f.size());
    REQUIRE(w.lowest() == (predicted == 0 ? lowest : predicted + 1));
    evicted += w.lowest() - lowest;
  }
  CHECK(evicted > 1000);  // the bounds were hit all along
  CHECK(w.evicted() == evicted);
}

TEST_CASE("send_window: bytes_through gives the running byte total after each held seq",
          "[reliability][flow]") {
  send_window w{2, 1 << 20};
  CHECK(w.bytes_pushed() == 0);
  CHECK_FALSE(w.bytes_through(0));  // nothing pushed
  w.push(1, std::string(10, 'a'));
  w.push(2, std::string(20, 'b'));
  CHECK(w.bytes_pushed() == 30);
  CHECK(w.bytes_through(0) == 0u);  // before the oldest held
  CHECK(w.bytes_through(1) == 10u);
  CHECK(w.bytes_through(2) == 30u);
  CHECK_FALSE(w.bytes_through(3));  // not sent yet
  w.push(3, std::string(40, 'c'));  // evicts 1 (two frames at most)
  CHECK(w.lowest() == 2);
  CHECK(w.bytes_pushed() == 70);
  CHECK_FALSE(w.bytes_through(0));  // older than the window: unknown
  CHECK(w.bytes_through(1) == 10u);
  CHECK(w.bytes_through(3) == 70u);
  CHECK(w.bytes() == 60);  // held, unlike pushed, falls with evictions
}
