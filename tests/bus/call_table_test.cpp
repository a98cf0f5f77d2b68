// bus/call_table_test.cpp: correlation, deadlines and peer loss of pending calls, on a fake clock.
#include "bus/call_table.hpp"

#include <catch2/catch.hpp>

using namespace peerbus;
using namespace peerbus::detail;
using namespace std::chrono_literals;

namespace {

using tp = call_table::clock::time_point;
const tp t0 = tp(std::chrono::seconds(1000));

struct sink {
  std::vector<std::vector<call_result>> got;
  call_table::completion fn() {
    return [this](std::vector<call_result> r) { got.push_back(std::move(r)); };
  }
};

void run(std::vector<call_table::finished> f) {
  for (auto& x : f) x.run();
}

call_result value(int v) {
  call_result r;
  r.value = v;
  return r;
}

}  // namespace

TEST_CASE("call_table: a reply is matched by peer and cid", "[bus]") {
  call_table t;
  sink s;
  auto a = t.add({{7, "a@0000"}}, t0, t0 + 1s, s.fn());
  auto b = t.add({{8, "b@0000"}}, t0, t0 + 1s, s.fn());
  CHECK(a != b);
  run(t.on_reply(8, a, value(1), t0 + 1ms));        // wrong peer for cid a
  run(t.on_reply(7, a + 100, value(1), t0 + 1ms));  // unknown cid
  CHECK(s.got.empty());
  run(t.on_reply(7, a, value(42), t0 + 3ms));
  REQUIRE(s.got.size() == 1);
  CHECK(s.got[0][0].ok());
  CHECK(s.got[0][0].value == 42);
  CHECK(s.got[0][0].peer == peer_id{7});
  CHECK(s.got[0][0].elapsed == 3ms);
  run(t.on_reply(7, a, value(43), t0 + 4ms));  // duplicate: ignored
  CHECK(s.got.size() == 1);
  CHECK(t.size() == 1);
}

TEST_CASE("call_table: the deadline times out what did not answer and says how long", "[bus]") {
  call_table t;
  sink s;
  t.add({{1, "p1"}, {2, "p2"}, {3, "p3"}}, t0, t0 + 2s, s.fn());
  CHECK(t.next_deadline() == t0 + 2s);
  run(t.on_reply(2, 1, value(2), t0 + 10ms));
  run(t.expire(t0 + 1999ms));
  CHECK(s.got.empty());
  run(t.expire(t0 + 2s));
  REQUIRE(s.got.size() == 1);
  auto& r = s.got[0];
  REQUIRE(r.size() == 3);
  CHECK(r[0].error.code == call_errc::timeout);
  CHECK(r[0].error.message == "no reply from p1 within 2000 ms");
  CHECK(r[1].ok());
  CHECK(r[2].error.code == call_errc::timeout);
  CHECK(t.size() == 0);
  CHECK(t.next_deadline() == tp::max());
}

TEST_CASE("call_table: a peer that leaves fails its calls at once", "[bus]") {
  call_table t;
  sink s;
  t.add({{1, "p1"}}, t0, t0 + 5s, s.fn());
  t.add({{1, "p1"}, {2, "p2"}}, t0, t0 + 5s, s.fn());
  run(t.on_peer_gone(1, true, t0 + 1ms));
  REQUIRE(s.got.size() == 1);
  CHECK(s.got[0][0].error.code == call_errc::peer_gone);
  CHECK(s.got[0][0].error.message.find("expired") != std::string::npos);
  run(t.on_peer_gone(2, false, t0 + 2ms));
  REQUIRE(s.got.size() == 2);
  CHECK(s.got[1][1].error.message.find("left") != std::string::npos);
  run(t.fail_all(call_errc::closed, "closed", t0));
  CHECK(s.got.size() == 2);
}

TEST_CASE("call_table: fail_all completes everything", "[bus]") {
  call_table t;
  sink s;
  t.add({{1, "p1"}}, t0, t0 + 5s, s.fn());
  t.add({{2, "p2"}}, t0, t0 + 1s, s.fn());
  CHECK(t.next_deadline() == t0 + 1s);
  run(t.fail_all(call_errc::closed, "bye", t0));
  REQUIRE(s.got.size() == 2);
  CHECK(s.got[1][0].error.code == call_errc::closed);
  CHECK(t.size() == 0);
}

TEST_CASE("call_table: remove says whether the call was still pending", "[bus]") {
  call_table t;
  sink s;
  auto cid = t.add({{1, "p1"}}, t0, t0 + 5s, s.fn());
  run(t.fail_all(call_errc::closed, "bye", t0));
  CHECK_FALSE(t.remove(cid));
  auto cid2 = t.add({{1, "p1"}}, t0, t0 + 5s, s.fn());
  CHECK(t.remove(cid2));
  CHECK(s.got.size() == 1);
}
