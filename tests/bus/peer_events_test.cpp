// bus/peer_events_test.cpp: what a peer-event handler hears however late it is registered: the
// peers already live as `joined` first, then each change, nothing missed or doubled between.
#include "support/bus_address.hpp"

#include <peerbus/bus.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace peerbus;
using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

options named(const std::string& url, std::string name) {
  options o;
  o.url = url;
  o.name = std::move(name);
  o.heartbeat_interval = 50ms;  // many heartbeats (each a chance to double a join) per second
  return o;
}

// Every event a handler heard, in order.
struct recorder {
  mutable std::mutex m;
  std::vector<peer_event> events;
  peer_handler handler() {
    return [this](const peer_event& e) {
      std::lock_guard<std::mutex> lock(m);
      events.push_back(e);
    };
  }
  std::size_t count(peer_event_kind kind, peer_id id) const {
    std::lock_guard<std::mutex> lock(m);
    std::size_t n = 0;
    for (const auto& e : events) n += e.kind == kind && e.peer.id == id;
    return n;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(m);
    return events.size();
  }
};

}  // namespace

TEST_CASE("peer events: a handler registered after peers joined hears them joined, then leaving",
          "[net]") {
  const auto url = private_bus_url();
  bus watcher(named(url, "pe-watcher"));
  auto a = std::make_unique<bus>(named(url, "pe-a"));
  bus b(named(url, "pe-b"));
  REQUIRE(wait_until([&] { return watcher.peers().size() == 2; }, 5s));

  recorder rec;
  auto sub = watcher.on_peer_event(rec.handler());
  REQUIRE(wait_until([&] { return rec.size() >= 2; }, 5s));
  const peer_id a_id = a->id();
  a->close();
  REQUIRE(wait_until([&] { return rec.count(peer_event_kind::left, a_id) == 1; }, 5s));

  CHECK(rec.count(peer_event_kind::joined, a_id) == 1);
  CHECK(rec.count(peer_event_kind::joined, b.id()) == 1);
  std::lock_guard<std::mutex> lock(rec.m);
  REQUIRE(rec.events.size() == 3);  // joined a and b (either order), then left a
  CHECK(rec.events[2].kind == peer_event_kind::left);
  for (const auto& e : rec.events)
    if (e.kind == peer_event_kind::joined) CHECK(e.peer.name == (e.peer.id == a_id ? "pe-a" : "pe-b"));
}

TEST_CASE("peer events: a handler registered while peers are joining hears each joined exactly once",
          "[net]") {
  // The race the replay closes: joins heard just before, during and after the registration.
  const auto url = private_bus_url();
  bus watcher(named(url, "pe-watcher"));
  constexpr int n = 8;
  std::vector<std::unique_ptr<bus>> peers;
  std::mutex peers_mu;
  std::thread starter([&] {
    for (int i = 0; i < n; ++i) {
      auto p = std::make_unique<bus>(named(url, "pe-" + std::to_string(i)));
      std::lock_guard<std::mutex> lock(peers_mu);
      peers.push_back(std::move(p));
    }
  });
  // Register once the first joins are being heard, while the rest are still coming.
  wait_until([&] { return !watcher.peers().empty(); }, 5s);
  recorder rec;
  auto sub = watcher.on_peer_event(rec.handler());
  starter.join();

  std::vector<peer_id> ids;
  for (const auto& p : peers) ids.push_back(p->id());
  const auto all_joined = [&] {
    for (const auto& id : ids)
      if (rec.count(peer_event_kind::joined, id) == 0) return false;
    return true;
  };
  INFO(rec.size() << " events");
  REQUIRE(wait_until(all_joined, 5s));
  // A few more heartbeats from everyone: a doubled join would show now.
  const auto until = watcher.stats().datagrams_received + 3 * n;
  REQUIRE(wait_until([&] { return watcher.stats().datagrams_received >= until; }, 5s));
  for (const auto& id : ids) CHECK(rec.count(peer_event_kind::joined, id) == 1);
  CHECK(rec.size() == static_cast<std::size_t>(n));
}

TEST_CASE("peer events: a handler unsubscribed before its replay ran is never called", "[net]") {
  const auto url = private_bus_url();
  bus watcher(named(url, "pe-watcher"));
  bus other(named(url, "pe-other"));
  REQUIRE(wait_until([&] { return watcher.peers().size() == 1; }, 5s));

  // Registered and dropped inside a handler on the bus thread, where the replay (queued behind
  // the running handler) cannot have started yet.
  std::atomic<int> late_calls{0};
  std::atomic<bool> done{false};
  recorder rec;
  auto first = watcher.on_peer_event([&](const peer_event& e) {
    rec.handler()(e);
    if (done.exchange(true)) return;
    auto late = watcher.on_peer_event([&](const peer_event&) { ++late_calls; });
    late.unsubscribe();
  });
  REQUIRE(wait_until([&] { return done.load(); }, 5s));
  // A second handler registered now proves the replays queued after the dropped one have run.
  recorder after;
  auto second = watcher.on_peer_event(after.handler());
  REQUIRE(wait_until([&] { return after.size() == 1; }, 5s));
  CHECK(late_calls.load() == 0);
  CHECK(rec.count(peer_event_kind::joined, other.id()) == 1);
}
