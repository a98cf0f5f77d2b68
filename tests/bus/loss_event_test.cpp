// bus/loss_event_test.cpp: two in-process buses on a private bus (real sockets): a message that
// left the sender's retransmit window before the receiver got it comes out as a loss event
// (on_loss and stats().lost), and delivery goes on in order after it.
#include <catch2/catch.hpp>
#include <cstdint>
#include <mutex>
#include <peerbus/bus.hpp>
#include <string>
#include <vector>

#include "support/bus_address.hpp"

using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

// What the receiver's handlers saw, in the order they ran (both run on its bus's executor).
struct record {
  bool loss = false;
  std::uint64_t first = 0, last = 0;  // a message: first == last == its seq
};

}  // namespace

TEST_CASE("bus: a message evicted from the sender's window is reported lost and delivery goes on",
          "[net][reliability]") {
  const auto url = private_bus_url();
  constexpr std::uint64_t n = 2000;

  peerbus::options so;
  so.url = url;
  so.name = "window-sender";
  so.heartbeat_interval = 100ms;
  so.window_messages = 1;  // holds only its newest message: a NACK for an older one comes too late
  so.flow_control = false;  // ...because the sender does not wait for the receiver to have it
  // Paced, so the receiver NACKs its gaps while the sender is still publishing: a burst sent in
  // a few batched datagrams would be followed by an advert whose "lo" declares the gaps lost
  // before any NACK, and the sender would never answer one for a message it no longer holds.
  so.max_rate = 10000;
  peerbus::bus sender(so);

  peerbus::options ro;
  ro.url = url;
  ro.name = "lossy-receiver";
  ro.heartbeat_interval = 100ms;
  ro.drop_rx = 0.2;  // the receiver misses a fifth of what it would hear, repairs included
  ro.fault_seed = 42;
  peerbus::bus receiver(ro);

  std::mutex m;
  std::vector<record> seen;
  std::vector<peerbus::loss_event> losses;
  std::uint64_t accounted = 0;  // seqs delivered or reported lost
  auto sub = receiver.subscribe("win.>", [&](const peerbus::message& msg) {
    std::lock_guard<std::mutex> lock(m);
    seen.push_back({false, msg.seq(), msg.seq()});
    ++accounted;
  });
  auto on_loss = receiver.on_loss([&](const peerbus::loss_event& e) {
    std::lock_guard<std::mutex> lock(m);
    seen.push_back({true, e.first, e.last});
    losses.push_back(e);
    accounted += e.count();
  });

  // The receiver must know the sender before its first message, else it starts at the first one
  // it hears (a late join) and the test could not tell what it missed.
  REQUIRE(receiver.wait_for_peer("window-sender", 10s));
  REQUIRE(sender.wait_for_subscribers("win.data", 1, 10s));

  for (std::uint64_t i = 0; i < n; ++i) REQUIRE(!sender.publish("win.data", {{"i", i}}));
  // The sender stays on the bus until every seq is accounted for: the last one it still holds,
  // so it is repaired if dropped; the others come as messages or inside a loss.
  const bool complete = wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(m);
        return accounted >= n;
      },
      30s);

  std::lock_guard<std::mutex> lock(m);
  INFO("accounted " << accounted << " of " << n << ", " << losses.size() << " loss events");
  REQUIRE(complete);
  CHECK(accounted == n);

  // Every seq 1..n exactly once, in order, as a message or inside a loss.
  std::uint64_t expect = 1, delivered = 0, lost = 0;
  std::size_t first_loss = seen.size(), delivered_after_first_loss = 0;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    const record& r = seen[i];
    if (r.first != expect || r.first > r.last)
      FAIL("record " << i << ": " << (r.loss ? "loss " : "message ") << r.first << ".." << r.last
                     << ", expected seq " << expect);
    expect = r.last + 1;
    if (r.loss) {
      lost += r.last - r.first + 1;
      first_loss = std::min(first_loss, i);
    } else {
      ++delivered;
      if (i > first_loss) ++delivered_after_first_loss;
    }
  }
  CHECK(expect == n + 1);
  CHECK(delivered + lost == n);
  // About a fifth was dropped, and the window of one lets almost none of it be repaired.
  CHECK(lost > 0);
  CHECK(delivered > n / 2);
  CHECK(delivered_after_first_loss > 0);  // delivery went on after the hole
  CHECK(!seen.back().loss);               // the newest message is always held: repaired
  CHECK(seen.back().first == n);

  for (const auto& e : losses) {
    CHECK(e.sender == sender.id());
    CHECK(e.sender_name == "window-sender");
    CHECK(e.count() == e.last - e.first + 1);
  }

  // The counters say the same: the receiver's total and its per-sender entry, and the sender
  // answered NACKs for messages it no longer held.
  const auto rs = receiver.stats();
  CHECK(rs.lost == lost);
  CHECK(rs.delivered == delivered);
  CHECK(rs.drops(peerbus::drop_reason::injected) > 0);
  bool found = false;
  for (const auto& st : rs.streams) {
    if (st.id != sender.id()) continue;
    found = true;
    CHECK(st.name == "window-sender");
    CHECK(st.lost == lost);
    CHECK(st.delivered == delivered);
    CHECK(st.gaps > 0);
    CHECK(st.nacks_sent > 0);
    CHECK(st.highest_seq == n);
  }
  CHECK(found);
  const auto ss = sender.stats();
  CHECK(ss.published == n);
  CHECK(ss.nacks_received > 0);
  CHECK(ss.repairs_unavailable > 0);
}

TEST_CASE("bus: with flow control a one-message window loses nothing: the sender waits until the "
          "receiver has each message",
          "[net][reliability][flow]") {
  const auto url = private_bus_url();
  constexpr std::uint64_t n = 500;

  peerbus::options so;
  so.url = url;
  so.name = "window-sender";
  so.heartbeat_interval = 100ms;
  so.window_messages = 1;  // as above, but flow control (the default) is on
  peerbus::bus sender(so);

  peerbus::options ro;
  ro.url = url;
  ro.name = "lossy-receiver";
  ro.heartbeat_interval = 100ms;
  ro.drop_rx = 0.2;  // a fifth of what it would hear, repairs and asks included
  ro.fault_seed = 42;
  peerbus::bus receiver(ro);

  std::mutex m;
  std::vector<std::uint64_t> seqs;
  std::uint64_t lost = 0;
  auto sub = receiver.subscribe("win.>", [&](const peerbus::message& msg) {
    std::lock_guard<std::mutex> lock(m);
    seqs.push_back(msg.seq());
  });
  auto on_loss = receiver.on_loss([&](const peerbus::loss_event& e) {
    std::lock_guard<std::mutex> lock(m);
    lost += e.count();
  });
  REQUIRE(receiver.wait_for_peer("window-sender", 10s));
  REQUIRE(sender.wait_for_subscribers("win.data", 1, 10s));
  // The sender must know the receiver reports its progress (its heartbeat says so).
  REQUIRE(wait_until([&] { return sender.stats().flow_receivers == 1; }, 10s));

  for (std::uint64_t i = 0; i < n; ++i) REQUIRE(!sender.publish("win.data", {{"i", i}}));
  const bool complete = wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(m);
        return seqs.size() + lost >= n;
      },
      30s);
  std::lock_guard<std::mutex> lock(m);
  INFO(seqs.size() << " delivered, " << lost << " lost");
  REQUIRE(complete);
  CHECK(lost == 0);
  REQUIRE(seqs.size() == n);
  for (std::uint64_t i = 0; i < n; ++i) REQUIRE(seqs[i] == i + 1);
  const auto ss = sender.stats();
  CHECK(ss.repairs_unavailable == 0);
  CHECK(ss.flow_waits > 0);      // it waited for the receiver...
  CHECK(ss.flow_reports > 0);    // ...which told it how far it had got
  CHECK(ss.flow_stalls == 0);
  CHECK(receiver.stats().drops(peerbus::drop_reason::injected) > 0);
}
