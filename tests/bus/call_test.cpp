// bus/call_test.cpp: calls between in-process buses: round trips, deferred replies, every error
// a caller can meet, pattern calls, and 1,000 sequential calls' latency.
#include "support/bus_address.hpp"

#include <peerbus/bus.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace peerbus;
using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

options named(const std::string& url, const std::string& name) {
  options o;
  o.url = url;
  o.name = name;
  return o;
}

auto echo = [](const call_request& rq, responder r) { r.reply(rq.params()); };

// Responders a handler kept and never answered, released at the end of the test.
struct stash {
  std::mutex m;
  std::vector<responder> kept;
  call_handler handler() {
    return [this](const call_request&, responder r) {
      std::lock_guard<std::mutex> lock(m);
      kept.push_back(std::move(r));
    };
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(m);
    return kept.size();
  }
};

}  // namespace

TEST_CASE("call: a round trip by name and by id, params and result as JSON", "[net]") {
  const auto url = private_bus_url();
  bus server(named(url, "call-server"));
  auto h = server.handle("echo", echo);
  bus client(named(url, "call-client"));
  REQUIRE(client.wait_for_peer("call-server", 5s));
  auto r = client.call("call-server", "echo", {{"a", 1}, {"s", "x"}}, 5s);
  INFO(r.error.message);
  REQUIRE(r.ok());
  CHECK(r.value == nlohmann::json{{"a", 1}, {"s", "x"}});
  CHECK(r.peer == server.id());
  auto r2 = client.call(server.id().str(), "echo", 7, 5s);
  REQUIRE(r2.ok());
  CHECK(r2.value == 7);
  auto f = client.call_async("call-server", "echo", "async", 5s);
  REQUIRE(f.wait_for(5s) == std::future_status::ready);
  CHECK(f.get().value == "async");
}

TEST_CASE("call: a deferred reply from another thread", "[net]") {
  const auto url = private_bus_url();
  bus server(named(url, "defer-server"));
  std::vector<std::thread> workers;
  std::mutex m;
  std::string seen_caller;
  auto h = server.handle("later", [&](const call_request& rq, responder r) {
    std::lock_guard<std::mutex> lock(m);
    seen_caller = rq.caller_name;
    workers.emplace_back([rq, r]() mutable {
      std::this_thread::sleep_for(20ms);  // the work the reply waits for
      r.reply({{"n", rq.params().at("n").get<int>() * 2}});
    });
  });
  bus client(named(url, "defer-client"));
  REQUIRE(client.wait_for_peer("defer-server", 5s));
  auto r = client.call("defer-server", "later", {{"n", 21}}, 5s);
  INFO(r.error.message);
  REQUIRE(r.ok());
  CHECK(r.value.at("n") == 42);
  std::lock_guard<std::mutex> lock(m);
  CHECK(seen_caller == "defer-client");
  for (auto& w : workers) w.join();
}

TEST_CASE("call: no live peer by that name fails at once, without waiting", "[net]") {
  const auto url = private_bus_url();
  bus client(named(url, "lonely-client"));
  auto start = std::chrono::steady_clock::now();
  auto r = client.call("nobody-here", "x", nullptr, 60s);
  CHECK(r.error.code == call_errc::no_such_peer);
  CHECK(r.error.message.find("nobody-here") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < 30s);  // not the 60 s timeout
  auto r2 = client.call("0123456789abcdef", "x", nullptr, 60s);
  CHECK(r2.error.code == call_errc::no_such_peer);
  auto r3 = client.call("nobody-here", "bad method!", nullptr, 1s);
  CHECK(r3.error.code == call_errc::bad_request);
}

TEST_CASE("call: a name matching two peers is ambiguous and names both", "[net]") {
  const auto url = private_bus_url();
  bus a(named(url, "twin")), b(named(url, "twin"));
  auto ha = a.handle("echo", echo);
  auto hb = b.handle("echo", echo);
  bus client(named(url, "twin-client"));
  REQUIRE(wait_until([&] { return client.find_peers("twin").size() == 2; }, 5s));
  auto r = client.call("twin", "echo", 1, 60s);
  CHECK(r.error.code == call_errc::ambiguous);
  CHECK(r.error.candidates.size() == 2);
  CHECK(r.error.message.find(a.id().str()) != std::string::npos);
  CHECK(r.error.message.find(b.id().str()) != std::string::npos);
}

TEST_CASE("call: errors from the peer: no such method, a handler that threw, one that forgot",
          "[net]") {
  const auto url = private_bus_url();
  bus server(named(url, "err-server"));
  auto h1 = server.handle(
      "boom", [](const call_request&, responder) { throw std::runtime_error("disk on fire"); });
  auto h2 = server.handle("forget", [](const call_request&, responder) {});
  auto h3 = server.handle("refuse", [](const call_request&, responder r) {
    r.fail("not_found", "no such file");
    CHECK_FALSE(r.reply(1));  // answered already
  });
  bus client(named(url, "err-client"));
  REQUIRE(client.wait_for_peer("err-server", 5s));
  auto r = client.call("err-server", "nope", nullptr, 60s);
  CHECK(r.error.code == call_errc::no_such_method);
  CHECK(r.error.message.find("nope") != std::string::npos);
  r = client.call("err-server", "boom", nullptr, 60s);
  CHECK(r.error.code == call_errc::handler_failed);
  CHECK(r.error.message == "disk on fire");
  r = client.call("err-server", "forget", nullptr, 60s);
  CHECK(r.error.code == call_errc::unanswered);
  r = client.call("err-server", "refuse", nullptr, 60s);
  CHECK(r.error.code == call_errc::handler_failed);
  CHECK(r.error.remote_code == "not_found");
  CHECK(r.error.message == "no such file");
}

TEST_CASE("call: a peer that leaves during the call fails it as soon as presence knows", "[net]") {
  const auto url = private_bus_url();
  stash kept;
  auto server = std::make_unique<bus>(named(url, "leaving-server"));
  auto h = server->handle("hang", kept.handler());
  bus client(named(url, "leaving-client"));
  REQUIRE(client.wait_for_peer("leaving-server", 5s));
  auto f = client.call_async("leaving-server", "hang", nullptr, 60s);
  REQUIRE(wait_until([&] { return kept.size() == 1; }, 5s));
  server->close();  // says goodbye; the kept responder can no longer answer
  REQUIRE(f.wait_for(30s) == std::future_status::ready);
  auto r = f.get();
  CHECK(r.error.code == call_errc::peer_gone);
  CHECK(r.error.message.find("left") != std::string::npos);
}

TEST_CASE("call: a timeout says how long it waited", "[net]") {
  const auto url = private_bus_url();
  stash kept;
  bus server(named(url, "slow-server"));
  auto h = server.handle("hang", kept.handler());
  bus client(named(url, "slow-client"));
  REQUIRE(client.wait_for_peer("slow-server", 5s));
  auto r = client.call("slow-server", "hang", nullptr, 300ms);
  CHECK(r.error.code == call_errc::timeout);
  CHECK(r.error.message.find("300 ms") != std::string::npos);
}

TEST_CASE("call: call() on the bus's own thread refuses instead of deadlocking", "[net]") {
  const auto url = private_bus_url();
  bus server(named(url, "reentry-server"));
  std::promise<call_result> inner;
  auto h = server.handle("outer", [&](const call_request&, responder r) {
    inner.set_value(server.call("x", "y", nullptr, 1s));
    r.reply(true);
  });
  bus client(named(url, "reentry-client"));
  REQUIRE(client.wait_for_peer("reentry-server", 5s));
  REQUIRE(client.call("reentry-server", "outer", nullptr, 10s).ok());
  CHECK(inner.get_future().get().error.code == call_errc::would_block);
}

TEST_CASE("call: a pattern over five peers gathers four replies and names the silent one",
          "[net]") {
  const auto url = private_bus_url();
  stash kept;
  std::vector<std::unique_ptr<bus>> workers;
  std::vector<subscription> hs;
  for (int i = 0; i < 5; ++i) {
    workers.push_back(std::make_unique<bus>(named(url, "worker-" + std::to_string(i))));
    if (i == 3)
      hs.push_back(workers.back()->handle("ping", kept.handler()));
    else
      hs.push_back(
          workers.back()->handle("ping", [i](const call_request&, responder r) { r.reply(i); }));
  }
  bus client(named(url, "boss"));
  REQUIRE(wait_until([&] { return client.find_peers("worker-*").size() == 5; }, 5s));
  auto m = client.call_all("worker-*", "ping", nullptr, 1s);
  REQUIRE(m.results.size() == 5);
  CHECK_FALSE(m.ok());
  REQUIRE(m.missing() == std::vector<peer_id>{workers[3]->id()});
  int answered = 0;
  for (auto& r : m.results) answered += r.ok() ? 1 : 0;
  CHECK(answered == 4);
  auto single = client.call("worker-*", "ping", nullptr, 1s);
  CHECK(single.error.code == call_errc::ambiguous);
}

TEST_CASE("call: 1,000 sequential calls between two buses, round-trip p50 and p99", "[net]") {
  const auto url = private_bus_url();
  bus server(named(url, "lat-server"));
  auto h = server.handle("echo", echo);
  bus client(named(url, "lat-client"));
  REQUIRE(client.wait_for_peer("lat-server", 5s));
  std::vector<double> us;
  for (int i = 0; i < 1000; ++i) {
    auto t = std::chrono::steady_clock::now();
    auto r = client.call(server.id().str(), "echo", i, 5s);
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t).count());
    REQUIRE(r.ok());
    REQUIRE(r.value == i);
  }
  std::sort(us.begin(), us.end());
  WARN("call round trip over " << us.size() << " calls: p50 " << us[us.size() / 2] << " us, p99 "
                               << us[us.size() * 99 / 100] << " us, max " << us.back() << " us");
}

TEST_CASE("call: the completion-handler form runs on the bus's thread, or at once on failure",
          "[net]") {
  const auto url = private_bus_url();
  bus server(named(url, "cb-server"));
  auto h = server.handle("echo", echo);
  bus client(named(url, "cb-client"));
  REQUIRE(client.wait_for_peer("cb-server", 5s));
  std::promise<call_result> done;
  client.call_async("cb-server", "echo", "hi", 5s,
                    [&](call_result r) { done.set_value(std::move(r)); });
  auto f = done.get_future();
  REQUIRE(f.wait_for(5s) == std::future_status::ready);
  CHECK(f.get().value == "hi");
  bool called = false;
  client.call_async("ghost", "echo", nullptr, 5s, [&](call_result r) {
    called = r.error.code == call_errc::no_such_peer;
  });
  CHECK(called);
}

TEST_CASE("call: a closed bus fails calls with closed", "[net]") {
  const auto url = private_bus_url();
  bus client(named(url, "closed-client"));
  client.close();
  auto r = client.call("anyone", "x", nullptr, 5s);
  CHECK(r.error.code == call_errc::closed);
}
