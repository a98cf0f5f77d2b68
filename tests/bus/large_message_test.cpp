// bus/large_message_test.cpp: messages larger than a datagram between in-process buses on a
// private bus (real sockets): whole under 10% injected loss at sizes around every fragment
// boundary, refused one byte over the limit, and a half-received message freed with a loss.
#include "support/bus_address.hpp"
#include "wire/encode.hpp"
#include "wire/envelope.hpp"

#include <peerbus/bus.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/multicast.hpp>
#include <asio/ip/udp.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

using namespace peerbus;
using namespace peerbus::detail::wire;
using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t largest = std::size_t{4} << 20;  // ASan is ~3x slower: keep the suite fast
#else
constexpr std::size_t largest = std::size_t{16} << 20;
#endif

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// The sizes where the sender's framing changes: the largest message that fits one datagram,
// and the multiples of the fragment chunk, computed from the headers the sender writes.
std::vector<std::size_t> boundary_sizes(const std::string& name, const std::string& topic,
                                        const std::string& ctype) {
  std::string single;
  frame_writer(single, frame_type::msg, 1).str("name", name).uint("seq", 1).int64("ts", 1)
      .str("topic", topic).str("ctype", ctype).finish();
  // A 16-digit ts (any time since 2001) and a one-digit seq (the first messages of the test).
  const std::size_t one = max_datagram - (single.size() + 15) - body_overhead(max_datagram);
  std::string frag;
  frame_writer(frag, frame_type::msg, 1).str("name", name).uint("seq", UINT64_MAX).int64("ts", 1)
      .str("topic", topic).str("ctype", ctype).uint("frag", max_fragments)
      .uint("nfrag", max_fragments).uint("size", 100000).finish();  // 6 digits, as 2..3 chunks
  const std::size_t chunk = max_datagram - (frag.size() + 15) - body_overhead(max_datagram);
  return {1024, one - 1, one, one + 1, 2 * chunk - 1, 2 * chunk, 2 * chunk + 1, 3 * chunk + 1,
          std::size_t{1} << 20, largest};
}

// A bus on `url` with quick heartbeats, dropping `drop_rx` of what it hears.
options peer(const std::string& url, const std::string& name, double drop_rx = 0,
             std::uint64_t seed = 1) {
  options o;
  o.url = url;
  o.name = name;
  o.heartbeat_interval = 100ms;
  o.drop_rx = drop_rx;
  o.fault_seed = seed;
  return o;
}

// Sends hand-made frames to the bus's group from a raw socket (a peer that stops mid-message).
struct fake_sender {
  asio::io_context ctx;
  asio::ip::udp::socket tx{ctx, asio::ip::udp::v4()};
  asio::ip::udp::endpoint group;
  explicit fake_sender(const bus_url& u) {
    group = {asio::ip::make_address_v4(u.group), u.port};
    tx.set_option(asio::ip::multicast::outbound_interface(asio::ip::make_address_v4("127.0.0.1")));
    tx.set_option(asio::ip::multicast::hops(0));
  }
  void send(const std::string& d) { tx.send_to(asio::buffer(d), group); }
};

}  // namespace

TEST_CASE("bus: messages of 1 KiB to 16 MiB arrive whole under 10% injected loss",
          "[net][fragments]") {
  const auto url = private_bus_url();
  bus sender(peer(url, "big-sender"));
  bus receiver(peer(url, "big-receiver", 0.1, 7));

  std::mutex mu;
  std::map<std::string, std::string> got;  // topic -> bytes
  std::map<std::string, std::string> ctypes;
  std::vector<loss_event> losses;
  auto sub = receiver.subscribe("big.>", [&](const message& m) {
    std::lock_guard<std::mutex> lock(mu);
    got[std::string(m.topic())] = std::string(m.bytes());
    ctypes[std::string(m.topic())] = std::string(m.content_type());
  });
  auto on_loss = receiver.on_loss([&](const loss_event& e) {
    std::lock_guard<std::mutex> lock(mu);
    losses.push_back(e);
  });
  REQUIRE(receiver.wait_for_peer("big-sender", 10s));
  REQUIRE(sender.wait_for_subscribers("big.x", 1, 10s));

  const auto sizes = boundary_sizes("big-sender", "big.b.00", "application/x-test");
  std::map<std::string, std::string> sent;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::string topic = "big.b." + std::string(i < 10 ? "0" : "") + std::to_string(i);
    sent[topic] = random_bytes(sizes[i], i);
    INFO("size " << sizes[i]);
    REQUIRE(!sender.publish_bytes(topic, sent[topic], "application/x-test"));
  }
  // Large JSON travels the same way, transparently.
  const std::string json = "\"" + std::string(std::size_t{1} << 20, 'j') + "\"";
  sent["big.json"] = json;
  REQUIRE(!sender.publish_raw("big.json", json));

  const bool complete = wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return got.size() == sent.size();
      },
      30s);
  std::lock_guard<std::mutex> lock(mu);
  CHECK(losses.empty());
  REQUIRE(complete);
  for (const auto& [topic, bytes] : sent) {
    INFO(topic << ": " << bytes.size() << " bytes sent, " << got[topic].size() << " received");
    CHECK(got[topic] == bytes);
  }
  CHECK(ctypes["big.json"] == "application/json");
  CHECK(ctypes["big.b.00"] == "application/x-test");
  const auto st = receiver.stats();
  CHECK(st.drops(drop_reason::injected) > 0);  // the loss was real
  CHECK(st.reassembled >= sizes.size() - 3);   // all but the three single-datagram sizes
  CHECK(st.reassembly_bytes == 0);
  CHECK(st.reassembly_partials == 0);
}

TEST_CASE("bus: a message one byte over max_message_size is refused with payload_too_large",
          "[net][fragments]") {
  options o;
  o.url = private_bus_url();
  o.max_message_size = std::size_t{1} << 20;
  bus b(o);
  const std::string limit(std::size_t{1} << 20, 'x');
  CHECK(!b.publish_bytes("limit.t", limit));
  auto ec = b.publish_bytes("limit.t", limit + "x");
  CHECK(ec == errc::payload_too_large);
  CHECK_THAT(ec.message(), Catch::Contains("max_message_size"));
  const std::string json = "\"" + std::string((std::size_t{1} << 20) - 2, 'j') + "\"";
  CHECK(!b.publish_raw("limit.t", json));
  CHECK(b.publish_raw("limit.t", json + " ") == errc::payload_too_large);
  CHECK(b.publish_bytes("limit.t", "x", "") == errc::bad_content_type);
  CHECK(b.publish_bytes("limit.t", "{", "application/json") == errc::invalid_json);

  options d;
  d.url = private_bus_url();
  bus by_default(d);
  CHECK(by_default.publish_bytes("limit.t", std::string((std::size_t{16} << 20) + 1, 'x')) ==
        errc::payload_too_large);
  o.max_message_size = 100;
  CHECK_THROWS_AS(bus(o), config_error);
}

TEST_CASE("bus: a half-received message is freed after the reassembly timeout with a loss event",
          "[net][fragments]") {
  const auto url = private_bus_url();
  options ro;
  ro.url = url;
  ro.name = "reasm-receiver";
  ro.reassembly_timeout = 300ms;
  bus receiver(ro);
  std::mutex mu;
  std::vector<loss_event> losses;
  int delivered = 0;
  auto sub = receiver.subscribe("half.>", [&](const message&) {
    std::lock_guard<std::mutex> lock(mu);
    ++delivered;
  });
  auto on_loss = receiver.on_loss([&](const loss_event& e) {
    std::lock_guard<std::mutex> lock(mu);
    losses.push_back(e);
  });

  constexpr std::uint64_t fake = 0x0f0e0d0c0b0a0908;
  fake_sender tx(bus_url::parse(url));
  std::string hb;
  frame_writer(hb, frame_type::hb, fake).str("name", "quitter").uint("seq", 0).uint("lo", 1)
      .int64("start", 1).uint("ivl", 1000).finish();
  tx.send(hb);
  REQUIRE(receiver.wait_for_peer("quitter", 5s));
  // Two of four fragments of a 4000-byte message, then nothing.
  for (std::uint64_t i = 0; i < 2; ++i) {
    std::string f;
    frame_writer(f, frame_type::msg, fake).str("name", "quitter").uint("seq", i + 1)
        .str("topic", "half.t").str("ctype", "application/octet-stream").uint("frag", i)
        .uint("nfrag", 4).uint("size", 4000).finish();
    append_body(f, std::string(1000, 'h'));
    tx.send(f);
  }
  REQUIRE(wait_until([&] { return receiver.stats().reassembly_partials == 1; }, 5s));
  CHECK(receiver.stats().reassembly_bytes == 4000);
  REQUIRE(wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return !losses.empty();
      },
      5s));
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(losses.size() == 1);
  CHECK(losses[0].first == 1);
  CHECK(losses[0].last == 4);
  CHECK(losses[0].sender_name == "quitter");
  CHECK(delivered == 0);
  const auto st = receiver.stats();
  CHECK(st.reassembly_bytes == 0);
  CHECK(st.reassembly_partials == 0);
}

TEST_CASE("bus: with mtu=1500 every datagram fits an Ethernet frame and large messages arrive",
          "[net][fragments]") {
  const auto url = private_bus_url() + "&mtu=1500";
  bus sender(peer(url, "lan-sender"));
  CHECK(sender.url().str().find("mtu=1500") != std::string::npos);
  bus receiver(peer(url, "lan-receiver", 0.1, 3));
  std::mutex mu;
  std::size_t largest_heard = 0, datagrams = 0;
  std::string got;
  auto tap = receiver.on_datagram([&](const datagram_view& d) {
    std::lock_guard<std::mutex> lock(mu);
    largest_heard = std::max(largest_heard, d.bytes.size());
    ++datagrams;
  });
  auto sub = receiver.subscribe("lan.>", [&](const message& m) {
    std::lock_guard<std::mutex> lock(mu);
    got = std::string(m.bytes());
  });
  REQUIRE(receiver.wait_for_peer("lan-sender", 10s));
  REQUIRE(sender.wait_for_subscribers("lan.x", 1, 10s));
  const std::string bytes = random_bytes(200000, 9);
  REQUIRE(!sender.publish_bytes("lan.x", bytes));
  REQUIRE(wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return !got.empty();
      },
      20s));
  std::lock_guard<std::mutex> lock(mu);
  CHECK(got == bytes);
  CHECK(datagrams > 200000 / 1472);
  CHECK(largest_heard <= 1500 - 28);
}

TEST_CASE("bus: a sender that says goodbye mid-message has the message reported lost at once",
          "[net][fragments]") {
  const auto url = private_bus_url();
  options ro;
  ro.url = url;
  ro.name = "bye-receiver";  // default reassembly timeout (5 s): the goodbye must not wait for it
  bus receiver(ro);
  std::mutex mu;
  std::vector<loss_event> losses;
  auto sub = receiver.subscribe("gone.>", [](const message&) {});
  auto on_loss = receiver.on_loss([&](const loss_event& e) {
    std::lock_guard<std::mutex> lock(mu);
    losses.push_back(e);
  });
  constexpr std::uint64_t fake = 0x0a0b0c0d0e0f1011;
  fake_sender tx(bus_url::parse(url));
  std::string f;
  frame_writer(f, frame_type::hb, fake).str("name", "leaver").uint("seq", 0).uint("lo", 1)
      .int64("start", 1).uint("ivl", 1000).finish();
  tx.send(f);
  REQUIRE(receiver.wait_for_peer("leaver", 5s));
  for (std::uint64_t i = 0; i < 3; ++i) {
    f.clear();
    frame_writer(f, frame_type::msg, fake).str("name", "leaver").uint("seq", i + 1)
        .str("topic", "gone.t").str("ctype", "application/octet-stream").uint("frag", i)
        .uint("nfrag", 5).uint("size", 500).finish();
    append_body(f, std::string(100, 'g'));
    tx.send(f);
  }
  REQUIRE(wait_until([&] { return receiver.stats().reassembly_partials == 1; }, 5s));
  const auto said_bye = std::chrono::steady_clock::now();
  f.clear();
  frame_writer(f, frame_type::bye, fake).str("name", "leaver").uint("seq", 3).finish();
  tx.send(f);
  REQUIRE(wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return !losses.empty();
      },
      4s));
  CHECK(std::chrono::steady_clock::now() - said_bye < 2s);
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(losses.size() == 1);
  CHECK(losses[0].first == 1);
  CHECK(losses[0].last == 5);
  CHECK(receiver.stats().reassembly_bytes == 0);
}
