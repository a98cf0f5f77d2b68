// tests/bus/congestion_test.cpp: flow control's early signal between in-process buses on a
// private bus (real sockets): a receiver that finds its socket's queue more than three quarters full tells
// the senders it heard lately at once, in a NACK that asks for nothing and carries "cong", and
// such a sender slows down; every message still arrives (docs/protocol.md 8.8).
//
// The receiver runs on an io_context the test holds while the sender publishes, so its queue
// fills for certain, whatever the machine's speed.
#include "support/bus_address.hpp"
#include "support/held_context.hpp"

#include <peerbus/bus.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <string>

using namespace peerbus;
using namespace peerbus::test;
using namespace std::chrono_literals;

TEST_CASE("congestion: a receiver whose queue fills past three quarters tells its sender at once, and the "
          "sender slows down",
          "[bus][flow]") {
  const auto url = private_bus_url();
  held_context receiver_ctx;
  options ro;
  // 256 KiB asked (Linux doubles it): a few hundred datagrams of mtu 1500 fill it past three quarters.
  ro.url = url + "&rcvbuf=262144";
  ro.name = "slow-reader";
  bus receiver(receiver_ctx.ctx, ro);
  std::atomic<std::uint64_t> got{0};
  auto sub = receiver.subscribe("flow.t", [&](const message&) { got.fetch_add(1); });

  options so;
  so.url = url + "&mtu=1500";  // one message per datagram: the queue fills datagram by datagram
  so.name = "sender";
  // Without flow control: with it, the sender would wait at the receiver's window (rwin, 8.9)
  // instead of filling its queue, which is what this test is about.
  so.flow_control = false;
  bus sender(so);
  REQUIRE(sender.wait_for_subscribers("flow.t", 1, 10s));
  // Some messages first, so the receiver knows this sender as established (announced, 16 frames
  // or more: notices never go to a forged id's one frame) and heard within the last second...
  constexpr int first = 20;
  for (int i = 0; i < first; ++i) REQUIRE_FALSE(sender.publish_raw("flow.t", "0"));
  REQUIRE(wait_until([&] { return got.load() == first; }, 10s));

  // ...then its socket is left unread while the sender publishes more than fill it by half.
  receiver_ctx.hold();
  constexpr int n = 600;
  const std::string payload = "\"" + std::string(1200, 'x') + "\"";
  for (int i = 0; i < n; ++i) REQUIRE_FALSE(sender.publish_raw("flow.t", payload));
  receiver_ctx.release();

  REQUIRE(wait_until([&] { return got.load() == n + first; }, 30s));
  const auto rs = receiver.stats();
  INFO("receiver: backlogs " << rs.rx_backlogs << ", overflows " << rs.rx_overflows
                             << ", notices " << rs.congestion_notices << ", lost " << rs.lost);
  CHECK(rs.rx_backlogs >= 1);          // it found its queue more than 3/4 full...
  CHECK(rs.congestion_notices >= 1);   // ...told the sender it had heard...
  REQUIRE(wait_until([&] { return sender.stats().rate_cuts >= 1; }, 10s));  // ...which slowed
  CHECK(rs.lost == 0);                 // and whatever overflowed was repaired
}
