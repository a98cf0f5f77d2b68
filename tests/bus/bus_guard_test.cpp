// bus/bus_guard_test.cpp: what a user's code cannot break: a payload with raw line feeds, and
// handlers that throw.
#include "support/bus_address.hpp"

#include <peerbus/bus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

using namespace peerbus;
using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

options named(const std::string& url, const char* name, std::vector<std::string>* log = nullptr,
              std::mutex* log_mu = nullptr) {
  options o;
  o.url = url;
  o.name = name;
  if (log)
    o.log = [log, log_mu](log_level, std::string_view text) {
      std::lock_guard<std::mutex> lock(*log_mu);
      log->emplace_back(text);
    };
  return o;
}

}  // namespace

TEST_CASE("bus: pretty-printed JSON with raw line feeds arrives whole", "[net]") {
  const auto url = private_bus_url();
  bus receiver(named(url, "lf-receiver"));
  std::mutex m;
  std::vector<std::string> got;
  auto sub = receiver.subscribe("lf.t", [&](const message& msg) {
    std::lock_guard<std::mutex> lock(m);
    got.emplace_back(msg.data_json());
  });
  bus sender(named(url, "lf-sender"));
  REQUIRE(sender.wait_for_subscribers("lf.t", 1, 5s));
  REQUIRE_FALSE(sender.publish_raw("lf.t", "{\n  \"a\": [1,\n 2],\n  \"s\": \"x\\ny\"\n}\n"));
  REQUIRE(wait_until([&] { std::lock_guard<std::mutex> lock(m); return got.size() == 1; }, 5s));
  std::lock_guard<std::mutex> lock(m);
  CHECK(nlohmann::json::parse(got[0]) == nlohmann::json{{"a", {1, 2}}, {"s", "x\ny"}});
  CHECK(receiver.stats().dropped_total() == 0);
}

TEST_CASE("bus: handlers that throw are reported through the log hook and the bus goes on",
          "[net]") {
  const auto url = private_bus_url();
  std::mutex log_mu;
  std::vector<std::string> log;
  bus receiver(named(url, "throw-receiver", &log, &log_mu));
  std::atomic<int> delivered{0};
  auto bad_sub = receiver.subscribe("th.t", [](const message&) { throw std::runtime_error("boom"); });
  auto bad_peer = receiver.on_peer_event([](const peer_event&) { throw 42; });
  auto bad_tap = receiver.on_datagram([](const datagram_view&) { throw std::logic_error("tap"); });
  auto good = receiver.subscribe("th.t", [&](const message&) { ++delivered; });
  bus sender(named(url, "throw-sender"));
  REQUIRE(sender.wait_for_subscribers("th.t", 1, 5s));
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(sender.publish("th.t", i));
  REQUIRE(wait_until([&] { return delivered.load() == 3; }, 5s));
  std::lock_guard<std::mutex> lock(log_mu);
  auto mentions = [&](const std::string& part) {
    for (const auto& l : log)
      if (l.find(part) != std::string::npos) return true;
    return false;
  };
  CHECK(mentions("handler for th.t threw: boom"));
  CHECK(mentions("peer event handler threw"));
  CHECK(mentions("datagram tap threw: tap"));
}
