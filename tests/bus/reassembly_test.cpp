// bus/reassembly_test.cpp: the reassembler with a fake clock: whole messages, losses inside and
// around them reported once, timeouts, departures, the memory bound, late joins.
#include "bus/reassembly.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace peerbus::detail;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t alice = 1, bob = 2;
const rel_clock::time_point t0{};

// A message of `size` bytes ('a', 'b', ... by fragment) cut into `n` fragments from `seq`.
std::vector<std::string> chunks(std::size_t size, std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t len = size / n + (i < size % n ? 1 : 0);
    out.emplace_back(len, static_cast<char>('a' + i % 26));
  }
  return out;
}

fragment_in frag(const std::vector<std::string>& c, std::uint64_t first_seq, std::size_t i,
                 std::string_view topic = "t.x") {
  fragment_in f;
  f.seq = first_seq + i;
  f.frag = i;
  f.nfrag = c.size();
  for (auto& s : c) f.size += s.size();
  f.topic = topic;
  f.ctype = "application/octet-stream";
  f.body = c[i];
  f.ts = 42;
  return f;
}

std::string joined(const std::vector<std::string>& c) {
  std::string s;
  for (auto& x : c) s += x;
  return s;
}

bool same(const std::vector<reassembly_loss>& got, std::vector<reassembly_loss> want) {
  if (got.size() != want.size()) return false;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i].first != want[i].first || got[i].last != want[i].last) return false;
  return true;
}

}  // namespace

TEST_CASE("reassembly: consecutive fragments make one message, memory freed after", "[reassembly]") {
  reassembler r({});
  auto c = chunks(1000, 4);
  for (std::size_t i = 0; i < 3; ++i) {
    auto o = r.offer(alice, frag(c, 10, i), t0);
    CHECK(o.losses.empty());
    CHECK_FALSE(o.message);
    CHECK(r.bytes() == 1000);
    CHECK(r.partials() == 1);
  }
  auto o = r.offer(alice, frag(c, 10, 3), t0);
  REQUIRE(o.message);
  CHECK(o.message->bytes == joined(c));
  CHECK(o.message->first_seq == 10);
  CHECK(o.message->topic == "t.x");
  CHECK(o.message->ctype == "application/octet-stream");
  CHECK(o.message->ts == 42);
  CHECK(r.bytes() == 0);
  CHECK(r.partials() == 0);
  CHECK(r.idle());
}

TEST_CASE("reassembly: two senders interleaved stay apart", "[reassembly]") {
  reassembler r({});
  auto a = chunks(300, 3), b = chunks(200, 2);
  CHECK_FALSE(r.offer(alice, frag(a, 1, 0), t0).message);
  CHECK_FALSE(r.offer(bob, frag(b, 7, 0), t0).message);
  CHECK_FALSE(r.offer(alice, frag(a, 1, 1), t0).message);
  auto ob = r.offer(bob, frag(b, 7, 1), t0);
  REQUIRE(ob.message);
  CHECK(ob.message->bytes == joined(b));
  auto oa = r.offer(alice, frag(a, 1, 2), t0);
  REQUIRE(oa.message);
  CHECK(oa.message->bytes == joined(a));
}

TEST_CASE("reassembly: a loss inside a message reports the whole message once", "[reassembly]") {
  reassembler r({});
  auto c = chunks(500, 5);  // seqs 20..24
  r.offer(alice, frag(c, 20, 0), t0);
  r.offer(alice, frag(c, 20, 1), t0);
  CHECK(same(r.on_loss(alice, 22, 22), {{20, 24}}));
  CHECK(r.bytes() == 0);
  // Its later fragments, and the stream's later losses inside it, are swallowed.
  auto o = r.offer(alice, frag(c, 20, 3), t0);
  CHECK(o.losses.empty());
  CHECK_FALSE(o.message);
  CHECK(r.on_loss(alice, 24, 24).empty());
  // A loss running past it is reported from where the message ended.
  CHECK(same(r.on_loss(alice, 24, 26), {{25, 26}}));
  // The next message goes through.
  auto d = chunks(20, 2);
  r.offer(alice, frag(d, 27, 0), t0);
  CHECK(r.offer(alice, frag(d, 27, 1), t0).message);
  CHECK(r.idle());
}

TEST_CASE("reassembly: a loss running past a partial message is merged into one report", "[reassembly]") {
  reassembler r({});
  auto c = chunks(300, 3);  // seqs 5..7
  r.offer(alice, frag(c, 5, 0), t0);
  CHECK(same(r.on_loss(alice, 6, 9), {{5, 9}}));
}

TEST_CASE("reassembly: a lost first fragment makes the rest of the message lost", "[reassembly]") {
  reassembler r({});
  auto c = chunks(400, 4);  // seqs 3..6
  CHECK(same(r.on_loss(alice, 3, 3), {{3, 3}}));
  auto o = r.offer(alice, frag(c, 3, 1), t0);
  CHECK(same(o.losses, {{4, 6}}));
  CHECK(r.offer(alice, frag(c, 3, 2), t0).losses.empty());
  CHECK(r.offer(alice, frag(c, 3, 3), t0).losses.empty());
  CHECK(r.other(alice, 7).losses.empty());
  CHECK(r.idle());
}

TEST_CASE("reassembly: joining in the middle of a message is not a loss", "[reassembly]") {
  reassembler r({});
  auto c = chunks(400, 4);
  auto o = r.offer(alice, frag(c, 3, 2), t0);
  CHECK(o.losses.empty());
  CHECK_FALSE(o.message);
  CHECK(r.offer(alice, frag(c, 3, 3), t0).losses.empty());
  CHECK(r.bytes() == 0);
  auto d = chunks(20, 2);
  r.offer(alice, frag(d, 7, 0), t0);
  CHECK(r.offer(alice, frag(d, 7, 1), t0).message);
}

TEST_CASE("reassembly: a fragment that does not follow on ends the partial message", "[reassembly]") {
  reassembler r({});
  auto c = chunks(400, 4), d = chunks(200, 2);
  r.offer(alice, frag(c, 3, 0), t0);
  r.offer(alice, frag(c, 3, 1), t0);
  // A new message starts at seq 5 where fragment 2 should have been.
  auto o = r.offer(alice, frag(d, 5, 0), t0);
  CHECK(same(o.losses, {{3, 4}}));
  CHECK(r.offer(alice, frag(d, 5, 1), t0).message);
  // A whole message in the middle of a partial one, likewise.
  r.offer(alice, frag(c, 10, 0), t0);
  auto p = r.other(alice, 11);
  CHECK(same(p.losses, {{10, 10}}));
  CHECK_FALSE(p.swallow);
  // A fragment of another topic at the right place is not the same message.
  r.offer(alice, frag(d, 20, 0), t0);
  CHECK(same(r.offer(alice, frag(d, 20, 1, "t.other"), t0).losses, {{20, 20}}));
}

TEST_CASE("reassembly: a partial message without progress times out and is freed", "[reassembly]") {
  reassembler r({std::size_t{16} << 20, std::size_t{64} << 20, 5s});
  auto c = chunks(3000, 3);
  r.offer(alice, frag(c, 1, 0), t0);
  r.offer(alice, frag(c, 1, 1), t0 + 3s);
  CHECK(r.next_deadline() == t0 + 8s);
  CHECK(r.expire(t0 + 7s).empty());
  auto e = r.expire(t0 + 8s);
  REQUIRE(e.size() == 1);
  CHECK(e[0].first == alice);
  CHECK(e[0].second.first == 1);
  CHECK(e[0].second.last == 3);
  CHECK(r.bytes() == 0);
  CHECK(r.partials() == 0);
  CHECK(r.next_deadline() == rel_clock::time_point::max());
  // The last fragment arriving after all is swallowed, not a second report.
  auto o = r.offer(alice, frag(c, 1, 2), t0 + 9s);
  CHECK(o.losses.empty());
  CHECK_FALSE(o.message);
}

TEST_CASE("reassembly: a sender gone mid-message loses it", "[reassembly]") {
  reassembler r({});
  auto c = chunks(300, 3);
  r.offer(alice, frag(c, 8, 0), t0);
  CHECK(same(r.on_gone(alice), {{8, 10}}));
  CHECK(r.idle());
  CHECK(r.bytes() == 0);
  CHECK(r.on_gone(bob).empty());
}

TEST_CASE("reassembly: size limits, per message and all together", "[reassembly]") {
  reassembler r({1000, 1500, 5s});
  auto big = chunks(1001, 2);
  CHECK(same(r.offer(alice, frag(big, 1, 0), t0).losses, {{1, 2}}));
  CHECK(r.offer(alice, frag(big, 1, 1), t0).losses.empty());  // swallowed
  auto a = chunks(1000, 2), b = chunks(600, 2);
  r.offer(alice, frag(a, 3, 0), t0);
  CHECK(same(r.offer(bob, frag(b, 1, 0), t0).losses, {{1, 2}}));  // would pass 1500 bytes
  CHECK(r.bytes() == 1000);
  CHECK(r.offer(alice, frag(a, 3, 1), t0).message);
  r.offer(bob, frag(b, 3, 0), t0);
  CHECK(r.offer(bob, frag(b, 3, 1), t0).message);
}

TEST_CASE("reassembly: fragments that do not add up to the size are lost", "[reassembly]") {
  reassembler r({});
  auto c = chunks(300, 3);
  auto f2 = frag(c, 1, 2);
  r.offer(alice, frag(c, 1, 0), t0);
  r.offer(alice, frag(c, 1, 1), t0);
  f2.body = "x";
  CHECK(same(r.offer(alice, f2, t0).losses, {{1, 3}}));
  CHECK(r.bytes() == 0);
}
