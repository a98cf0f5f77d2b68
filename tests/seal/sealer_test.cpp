// seal/sealer_test.cpp: sealing and opening datagrams: round trip, tampering, wrong keys, replays,
// reordering within the window, freshness, and bounded replay state.
#include "seal/sealer.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

using namespace peerbus::detail::seal;
using peerbus::drop_reason;

namespace {

constexpr std::int64_t t0 = 1'800'000'000'000'000;  // µs since the epoch, 2027
constexpr std::int64_t second = 1'000'000;

key key_of(unsigned char fill) {
  std::array<unsigned char, key_bytes> b;
  b.fill(fill);
  return key(b);
}

}  // namespace

TEST_CASE("sealer: a sealed datagram opens to the same bytes", "[seal]") {
  const key k = key_of(7);
  sealer tx(k, 0x1111, replay_guard(16, 30 * second, t0 - second));
  sealer rx(k, 0x2222, replay_guard(16, 30 * second, t0 - second));
  CHECK(tx.key_id() == rx.key_id());
  CHECK(tx.key_id() == key_id(k));

  for (std::string plain : {std::string(R"({"v":1,"type":"hb","from":"0000000000001111"})"),
                            std::string(), std::string(1000, 'x'), std::string("\0\n\xff", 3)}) {
    std::string sealed, opened;
    tx.seal(plain, sealed, t0);
    REQUIRE(sealed.size() == plain.size() + overhead);
    CHECK(sealed.compare(0, 4, "PBS1") == 0);
    // Encrypted: the plaintext does not show through.
    if (plain.size() > 8) CHECK(sealed.find(plain.substr(0, 8)) == std::string::npos);
    auto r = rx.open(sealed, opened, t0);
    INFO(r.detail);
    REQUIRE(r.ok);
    CHECK(r.plain == plain);
    CHECK(opened == plain);
    CHECK(r.sender == 0x1111);
  }
}

TEST_CASE("sealer: counters start at 1 and grow by one per datagram", "[seal]") {
  const key k = key_of(1);
  sealer tx(k, 5), rx(k, 6);
  std::string sealed, opened;
  for (std::uint64_t i = 1; i <= 5; ++i) {
    tx.seal("x", sealed, t0);
    auto r = rx.open(sealed, opened, t0);
    REQUIRE(r.ok);
    CHECK(r.counter == i);
  }
}

TEST_CASE("sealer: the largest datagram that fits sealed is max_datagram", "[seal]") {
  const key k = key_of(2);
  sealer tx(k, 1), rx(k, 2);
  std::string plain(max_plain, 'a'), sealed, opened;
  tx.seal(plain, sealed, t0);
  CHECK(sealed.size() == peerbus::detail::wire::max_datagram);
  auto r = rx.open(sealed, opened, t0);
  REQUIRE(r.ok);
  CHECK(r.plain.size() == max_plain);
}

TEST_CASE("sealer: a changed bit anywhere in the datagram is refused", "[seal]") {
  const key k = key_of(3);
  sealer tx(k, 0xabc);
  const std::string plain = R"({"v":1,"type":"msg","from":"0000000000000abc","seq":1})";
  std::string sealed;
  tx.seal(plain, sealed, t0);
  sealer rx(k, 0xdef, replay_guard(16, 30 * second, t0 - second));
  std::string opened;
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    for (unsigned char bit : {0x01, 0x80}) {
      std::string bad = sealed;
      bad[i] = static_cast<char>(bad[i] ^ bit);
      auto r = rx.open(bad, opened, t0);
      INFO("byte " << i << " bit " << int(bit) << ": " << r.detail);
      REQUIRE_FALSE(r.ok);
      CHECK(r.reason == drop_reason::unauthenticated);
    }
  }
  // Truncated or extended: refused too.
  for (std::size_t cut : {std::size_t{1}, std::size_t{16}, sealed.size() - overhead}) {
    auto r = rx.open(sealed.substr(0, sealed.size() - cut), opened, t0);
    CHECK_FALSE(r.ok);
  }
  CHECK_FALSE(rx.open(sealed + "x", opened, t0).ok);
  // None of the failures touched the replay state: the genuine datagram still opens, once.
  auto r = rx.open(sealed, opened, t0);
  REQUIRE(r.ok);
  CHECK(r.plain == plain);
  CHECK(rx.open(sealed, opened, t0).reason == drop_reason::replayed);
}

TEST_CASE("sealer: another key is refused as unauthenticated, even with a forged key id",
          "[seal]") {
  sealer tx(key_of(4), 1);
  sealer rx(key_of(5), 2);
  REQUIRE(tx.key_id() != rx.key_id());
  std::string sealed, opened;
  tx.seal("{}", sealed, t0);
  auto r = rx.open(sealed, opened, t0);
  CHECK_FALSE(r.ok);
  CHECK(r.reason == drop_reason::unauthenticated);
  CHECK(std::string(r.detail) == "sealed with another key");
  // Writing the receiver's key id into the header does not help: the tag does not verify.
  const auto id = rx.key_id();
  for (int i = 0; i < 4; ++i) sealed[4 + i] = static_cast<char>(id >> (24 - 8 * i));
  r = rx.open(sealed, opened, t0);
  CHECK_FALSE(r.ok);
  CHECK(r.reason == drop_reason::unauthenticated);
  CHECK(std::string(r.detail) == "authentication failed");
}

TEST_CASE("sealer: open datagrams and short sealed ones are refused on a sealed bus", "[seal]") {
  sealer rx(key_of(6), 2);
  std::string opened;
  auto r =
      rx.open(R"({"v":1,"type":"hb","from":"0000000000000001","name":"x","seq":0})", opened, t0);
  CHECK_FALSE(r.ok);
  CHECK(r.reason == drop_reason::unauthenticated);
  r = rx.open("PBS1 too short", opened, t0);
  CHECK_FALSE(r.ok);
  CHECK(r.reason == drop_reason::malformed);
  r = rx.open("", opened, t0);
  CHECK_FALSE(r.ok);
}

TEST_CASE("sealer: a datagram heard again is refused as replayed", "[seal]") {
  const key k = key_of(8);
  sealer tx(k, 10), rx(k, 20);
  std::string a, b, opened;
  tx.seal("first", a, t0);
  tx.seal("second", b, t0);
  REQUIRE(rx.open(a, opened, t0).ok);
  auto r = rx.open(a, opened, t0 + 1);
  CHECK_FALSE(r.ok);
  CHECK(r.reason == drop_reason::replayed);
  REQUIRE(rx.open(b, opened, t0 + 2).ok);
  CHECK(rx.open(b, opened, t0 + 3).reason == drop_reason::replayed);
  CHECK(rx.open(a, opened, t0 + 4).reason == drop_reason::replayed);
}

TEST_CASE("sealer: out of order within the window, each accepted exactly once", "[seal]") {
  const key k = key_of(9);
  sealer tx(k, 10), rx(k, 20);
  std::vector<std::string> d(1100);
  for (auto& s : d) tx.seal("m", s, t0);  // d[i] carries counter i + 1
  std::string opened;
  REQUIRE(rx.open(d[1099], opened, t0).ok);  // counter 1100
  // Counters 1099 down to 77 (1100 - 1023): inside the window, never seen: accepted once.
  for (std::size_t c = 1099; c >= 1100 - 1023; --c) {
    INFO("counter " << c);
    REQUIRE(rx.open(d[c - 1], opened, t0).ok);
    REQUIRE(rx.open(d[c - 1], opened, t0).reason == drop_reason::replayed);
  }
  // Counter 76 and below: behind the window, cannot be told from a replay: refused.
  for (std::size_t i : {std::size_t{75}, std::size_t{10}, std::size_t{0}}) {
    auto r = rx.open(d[i], opened, t0);
    INFO("counter " << i + 1);
    CHECK_FALSE(r.ok);
    CHECK(r.reason == drop_reason::replayed);
  }
}

TEST_CASE("sealer: a window that jumps forward forgets nothing it should not", "[seal]") {
  const key k = key_of(10);
  sealer tx(k, 10), rx(k, 20);
  std::vector<std::string> d(3000);
  for (auto& s : d) tx.seal("m", s, t0);
  std::string opened;
  REQUIRE(rx.open(d[0], opened, t0).ok);     // 1
  REQUIRE(rx.open(d[499], opened, t0).ok);   // 500: a jump within the window
  REQUIRE(rx.open(d[2999], opened, t0).ok);  // 3000: a jump beyond it
  CHECK(rx.open(d[2999], opened, t0).reason == drop_reason::replayed);
  CHECK(rx.open(d[499], opened, t0).reason == drop_reason::replayed);  // now behind
  REQUIRE(rx.open(d[2998], opened, t0).ok);                            // 2999: never seen, inside
  REQUIRE(rx.open(d[1976], opened, t0).ok);  // 1977 = 3000 - 1023: the window's last slot
  CHECK(rx.open(d[1975], opened, t0).reason == drop_reason::replayed);  // 1976: behind
}

TEST_CASE("sealer: stale and future datagrams are refused, whatever the window says", "[seal]") {
  const key k = key_of(11);
  sealer tx(k, 10);
  std::string old_one, opened;
  tx.seal("old", old_one, t0);
  {
    sealer rx(k, 20);  // never heard it: only the timestamp can tell
    auto r = rx.open(old_one, opened, t0 + 31 * second);
    CHECK_FALSE(r.ok);
    CHECK(r.reason == drop_reason::replayed);
    CHECK(std::string(r.detail).find("stale") != std::string::npos);
  }
  {
    sealer rx(k, 20);
    CHECK(rx.open(old_one, opened, t0 + 29 * second).ok);  // within 30 s: fine
  }
  {
    sealer rx(k, 20);
    auto r = rx.open(old_one, opened, t0 - 31 * second);  // the sender's clock runs ahead
    CHECK_FALSE(r.ok);
    CHECK(r.reason == drop_reason::implausible);
  }
}

TEST_CASE("sealer: a receiver refuses what was sealed before it started", "[seal]") {
  const key k = key_of(12);
  sealer tx(k, 10);
  std::string before, after, before2, opened;
  tx.seal("before", before, t0);
  tx.seal("before2", before2, t0 + 10);
  sealer rx(k, 20, replay_guard(16, 30 * second, t0 + 100));  // starts at t0 + 100 µs
  tx.seal("after", after, t0 + 200);
  auto r = rx.open(before, opened, t0 + 300);
  CHECK(r.reason == drop_reason::replayed);
  REQUIRE(rx.open(after, opened, t0 + 300).ok);
  // Counter 2 is inside the window of the now known sender, but it was sealed before rx
  // started: rx cannot have missed it, so it is a replay.
  CHECK(rx.open(before2, opened, t0 + 300).reason == drop_reason::replayed);
}

TEST_CASE("sealer: replay state stays bounded under a flood of sender ids", "[seal]") {
  const key k = key_of(13);
  constexpr std::size_t bound = 64;
  sealer rx(k, 1, replay_guard(bound, 30 * second, t0 - second));
  std::string sealed, opened;
  // The first sender's datagram, kept to be replayed after it was evicted.
  sealer first(k, 1000);
  first.seal("early", sealed, t0);
  const std::string early = sealed;
  REQUIRE(rx.open(early, opened, t0).ok);
  for (std::uint64_t id = 1001; id < 1001 + 5000; ++id) {
    sealer s(k, id);
    s.seal("flood", sealed, t0 + static_cast<std::int64_t>(id));
    REQUIRE(rx.open(sealed, opened, t0 + static_cast<std::int64_t>(id)).ok);
    REQUIRE(rx.guard().senders() <= bound);
  }
  CHECK(rx.guard().senders() == bound);
  CHECK(rx.guard().evictions() == 5001 - bound);
  // The first sender was evicted long ago; its old datagram still does not come back.
  CHECK(rx.open(early, opened, t0 + 6000).reason == drop_reason::replayed);
  // A sender sealing now is accepted.
  sealer late(k, 9999);
  late.seal("late", sealed, t0 + 10000);
  CHECK(rx.open(sealed, opened, t0 + 10000).ok);
}

TEST_CASE("sealer: senders silent for longer than the freshness limit are forgotten", "[seal]") {
  const key k = key_of(14);
  sealer rx(k, 1, replay_guard(100, 30 * second, t0 - second));
  std::string sealed, opened;
  for (std::uint64_t id = 2; id < 52; ++id) {
    sealer s(k, id);
    s.seal("x", sealed, t0);
    REQUIRE(rx.open(sealed, opened, t0).ok);
  }
  CHECK(rx.guard().senders() == 50);
  sealer s(k, 77);
  s.seal("later", sealed, t0 + 40 * second);
  REQUIRE(rx.open(sealed, opened, t0 + 40 * second).ok);
  CHECK(rx.guard().senders() == 1);
  CHECK(rx.guard().evictions() == 0);
}
