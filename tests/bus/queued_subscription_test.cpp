// bus/queued_subscription_test.cpp: queued subscriptions on two in-process buses (real sockets,
// private bus): a slow queued handler does not hold up the others, its drops are counted and
// reported as loss events, block loses nothing, and ending a subscription or the bus while a
// handler runs or the strand waits neither deadlocks nor calls the handler again.
#include "support/bus_address.hpp"

#include <peerbus/bus.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace peerbus;
using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

options named(const std::string& url, const char* name) {
  options o;
  o.url = url;
  o.name = name;
  o.heartbeat_interval = 100ms;
  return o;
}

subscribe_options queued(std::size_t limit, overflow_policy p) {
  subscribe_options o;
  o.queue_limit = limit;
  o.overflow = p;
  return o;
}

// Two buses on one private bus.
struct pair_of_buses {
  std::string url = private_bus_url();
  bus receiver{named(url, "q-receiver")};
  bus sender{named(url, "q-sender")};

  // The sender knows the receiver subscribes to `topic`, and the receiver knows the sender (so
  // it expects the sender's messages from seq 1).
  void meet(const char* topic) {
    REQUIRE(sender.wait_for_subscribers(topic, 1, 10s));
    REQUIRE(receiver.wait_for_peer("q-sender", 10s));
  }
};

}  // namespace

TEST_CASE("queued subscription: a slow handler drops with its policy, reports each drop as a "
          "loss, and does not hold up the bus",
          "[net][queue]") {
  const auto policy = GENERATE(overflow_policy::drop_oldest, overflow_policy::drop_newest);
  INFO("policy " << to_string(policy));
  pair_of_buses b;
  constexpr std::uint64_t n = 2000;
  constexpr std::size_t limit = 16;
  std::mutex mu;
  std::vector<std::uint64_t> slow_seen;
  std::vector<loss_event> losses;
  std::atomic<std::uint64_t> fast_seen{0};
  std::atomic<bool> slow_on_bus_thread{false};
  std::atomic<std::thread::id> bus_thread{};
  auto fast = b.receiver.subscribe("q.>", [&](const message&) {
    bus_thread = std::this_thread::get_id();
    ++fast_seen;
  });
  auto slow = b.receiver.subscribe(
      "q.t",
      [&](const message& m) {
        if (std::this_thread::get_id() == bus_thread.load()) slow_on_bus_thread = true;
        std::this_thread::sleep_for(1ms);
        std::lock_guard<std::mutex> lock(mu);
        slow_seen.push_back(m.seq());
      },
      queued(limit, policy));
  auto on_loss = b.receiver.on_loss([&](const loss_event& e) {
    std::lock_guard<std::mutex> lock(mu);
    losses.push_back(e);
  });
  b.meet("q.t");

  for (std::uint64_t i = 1; i <= n; ++i) REQUIRE_FALSE(b.sender.publish("q.t", i));
  // The unqueued handler sees everything long before the slow one could have.
  REQUIRE(wait_until([&] { return fast_seen.load() == n; }, 10s));
  auto accounted = [&] {
    std::lock_guard<std::mutex> lock(mu);
    std::uint64_t lost = 0;
    for (const auto& e : losses) lost += e.count();
    return slow_seen.size() + lost;
  };
  REQUIRE(wait_until([&] { return accounted() == n; }, 10s));

  const auto st = b.receiver.stats();
  std::lock_guard<std::mutex> lock(mu);
  CHECK_FALSE(slow_on_bus_thread.load());
  CHECK(st.lost == 0);  // nothing unrepaired: every loss is the queue's
  // Every seq once, as a handler call or inside a queue_overflow loss of this subscription.
  std::set<std::uint64_t> all(slow_seen.begin(), slow_seen.end());
  CHECK(all.size() == slow_seen.size());
  CHECK(std::is_sorted(slow_seen.begin(), slow_seen.end()));
  std::uint64_t dropped = 0;
  for (const auto& e : losses) {
    CHECK(e.cause == loss_cause::queue_overflow);
    CHECK(e.pattern == "q.t");
    CHECK(e.sender == b.sender.id());
    CHECK(e.sender_name == "q-sender");
    dropped += e.count();
    for (auto s = e.first; s <= e.last; ++s) CHECK(all.insert(s).second);
  }
  CHECK(all.size() == n);
  CHECK(dropped > 0);
  CHECK(losses.size() < dropped);  // consecutive drops come as one event
  if (policy == overflow_policy::drop_oldest) CHECK(slow_seen.back() == n);  // sees the newest
  else CHECK(slow_seen.front() == 1);
  CHECK(st.queue_dropped == dropped);
  REQUIRE(st.subscriptions.size() == 2);
  for (const auto& s : st.subscriptions) {
    if (s.pattern == "q.>") {
      CHECK(s.queue_limit == 0);
      CHECK(s.delivered == n);
      CHECK(s.dropped == 0);
    } else {
      CHECK(s.queue_limit == limit);
      CHECK(s.delivered == slow_seen.size());
      CHECK(s.dropped == dropped);
      CHECK(s.queued_max <= limit);
      CHECK(s.queued == 0);
    }
  }
  CHECK(st.delivered == n + slow_seen.size());
}

TEST_CASE("queued subscription: block loses nothing and the slow handler sees every message in "
          "order",
          "[net][queue]") {
  pair_of_buses b;
  constexpr std::uint64_t n = 1000;
  std::mutex mu;
  std::vector<std::uint64_t> seen;
  call_errc call_code = call_errc::ok;
  auto slow = b.receiver.subscribe(
      "q.t",
      [&](const message& m) {
        if (m.seq() == 1) {
          // The bus thread may be waiting for this very handler: a blocking call must refuse.
          call_code = b.receiver.call("q-sender", "nothing", nullptr, 1s).error.code;
        }
        std::this_thread::sleep_for(500us);
        std::lock_guard<std::mutex> lock(mu);
        seen.push_back(m.seq());
      },
      queued(4, overflow_policy::block));
  std::vector<loss_event> losses;
  auto on_loss = b.receiver.on_loss([&](const loss_event& e) {
    std::lock_guard<std::mutex> lock(mu);
    losses.push_back(e);
  });
  b.meet("q.t");
  for (std::uint64_t i = 1; i <= n; ++i) REQUIRE_FALSE(b.sender.publish("q.t", i));
  REQUIRE(wait_until([&] { std::lock_guard<std::mutex> l(mu); return seen.size() >= n; }, 20s));
  const auto st = b.receiver.stats();
  std::lock_guard<std::mutex> lock(mu);
  CHECK(call_code == call_errc::would_block);
  CHECK(losses.empty());
  REQUIRE(seen.size() == n);
  for (std::uint64_t i = 0; i < n; ++i) REQUIRE(seen[i] == i + 1);
  CHECK(st.queue_dropped == 0);
  CHECK(st.lost == 0);
  REQUIRE(st.subscriptions.size() == 1);
  CHECK(st.subscriptions[0].waits > 0);  // the bus thread did wait for room
  CHECK(st.subscriptions[0].queued_max <= 4);
  CHECK(b.sender.find_peer(b.receiver.id()));  // and its heartbeats kept it alive
}

TEST_CASE("queued subscription: a handler unsubscribes itself without deadlock and is not called "
          "again",
          "[net][queue]") {
  pair_of_buses b;
  std::atomic<int> calls{0};
  subscription sub;
  std::atomic<bool> ready{false};
  sub = b.receiver.subscribe(
      "q.t",
      [&](const message&) {
        ++calls;
        while (!ready.load()) std::this_thread::yield();
        sub.unsubscribe();
      },
      queued(100, overflow_policy::block));
  ready = true;
  REQUIRE(b.sender.wait_for_subscribers("q.t", 1, 10s));
  for (int i = 0; i < 50; ++i) REQUIRE_FALSE(b.sender.publish("q.t", i));
  REQUIRE(wait_until([&] { return b.receiver.stats().subscriptions.empty(); }, 10s));
  // A later subscription and its messages still flow (the strand is not stuck on the old queue).
  std::atomic<int> later{0};
  auto again = b.receiver.subscribe("q.u", [&](const message&) { ++later; },
                                    queued(1, overflow_policy::block));
  REQUIRE(b.sender.wait_for_subscribers("q.u", 1, 10s));
  for (int i = 0; i < 20; ++i) REQUIRE_FALSE(b.sender.publish("q.u", i));
  REQUIRE(wait_until([&] { return later.load() == 20; }, 10s));
  CHECK(calls.load() == 1);
}

TEST_CASE("queued subscription: unsubscribe and close while the bus thread waits on a full block "
          "queue return, and the handler is not called after",
          "[net][queue]") {
  const bool by_close = GENERATE(false, true);
  INFO("ended by " << (by_close ? "close" : "unsubscribe"));
  const auto url = private_bus_url();
  auto receiver = std::make_unique<bus>(named(url, "q-receiver"));
  bus sender(named(url, "q-sender"));
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> calls{0};
  auto sub = receiver->subscribe(
      "q.t",
      [&](const message&) {
        ++calls;
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, 10s, [&] { return open; });  // held until the test opens the gate
      },
      queued(1, overflow_policy::block));
  std::atomic<int> peer_events{0};
  REQUIRE(sender.wait_for_subscribers("q.t", 1, 10s));
  for (int i = 0; i < 10; ++i) REQUIRE_FALSE(sender.publish("q.t", i));
  // One message in the handler, one queued, the bus thread waiting with the third.
  REQUIRE(wait_until(
      [&] {
        auto s = receiver->stats().subscriptions;
        return calls.load() == 1 && !s.empty() && s[0].waits > 0;
      },
      10s));
  std::atomic<bool> done{false};
  std::thread ender([&] {
    if (by_close) receiver->close();
    else sub.unsubscribe();
    done = true;
  });
  // It waits for the running call (the gate is shut) but for nothing else.
  CHECK_FALSE(wait_until([&] { return done.load(); }, 100ms));
  {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
  }
  cv.notify_all();
  REQUIRE(wait_until([&] { return done.load(); }, 10s));
  ender.join();
  CHECK(calls.load() == 1);
  if (!by_close) {
    // The bus goes on: its strand is not stuck on the queue it was waiting for.
    auto other = receiver->subscribe("q.u", [&](const message&) { ++peer_events; });
    REQUIRE(sender.wait_for_subscribers("q.u", 1, 10s));
    REQUIRE_FALSE(sender.publish("q.u", 1));
    REQUIRE(wait_until([&] { return peer_events.load() == 1; }, 10s));
  }
  receiver.reset();
  CHECK(calls.load() == 1);
}

TEST_CASE("queued subscription: bad queue settings are refused with a message", "[net][queue]") {
  bus b(named(private_bus_url(), "q-config"));
  subscribe_options o = queued(10, overflow_policy::drop_newest);
  o.queue_bytes = 0;
  CHECK_THROWS_WITH(b.subscribe("q.t", [](const message&) {}, o),
                    Catch::Contains("queue_bytes is 0"));
  CHECK(std::string(to_string(overflow_policy::block)) == "block");
  CHECK(std::string(to_string(loss_cause::queue_overflow)) == "queue_overflow");
}
