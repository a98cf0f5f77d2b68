// net/hostile_input_test.cpp: an open bus keeps delivering while a hostile sender on the same
// group fires every kind of bad datagram at it (issue 8's list), and what it costs stays bounded.
#include "support/bus_address.hpp"
#include "wire/encode.hpp"

#include <peerbus/bus.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/multicast.hpp>
#include <asio/ip/udp.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace peerbus;
using namespace peerbus::detail::wire;
using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

// Everything on issue 8's list, as datagrams; `victim` is the real publisher's id.
std::vector<std::string> hostile_datagrams(std::uint64_t victim, std::uint64_t sub_id) {
  std::vector<std::string> out;
  std::mt19937_64 rng(8);
  for (int i = 0; i < 300; ++i) {  // random bytes
    std::string d(1 + rng() % 1400, '\0');
    for (auto& c : d) c = static_cast<char>(rng());
    out.push_back(d);
  }
  out.push_back(R"({"v":1,"type":"msg","from":"0123456789abcdef","name":"x","seq":1,"topic":"h)");
  out.push_back(std::string(5000, '[') + std::string(5000, ']'));
  out.push_back(R"({"v":1,"type":"msg","from":"0123456789abcdef","name":"x","seq":1,"ts":1,"topic":"h.t","data":)" +
                std::string(20000, '9') + "}");
  out.push_back(R"({"v":1,"type":"msg","from":"0123456789abcdef","name":"x","seq":1,"ts":1,"topic":"h.t","data":")" +
                std::string(60000, 'a') + "\"}");
  out.push_back(R"({"v":1,"type":"msg","from":"0123456789abcdef","name":"x","seq":1e400,"ts":1,"topic":"h.t","data":1})");
  out.push_back(R"({"v":1,"type":"msg","from":"0123456789abcdef","name":"x","seq":1,"ts":1,"topic":")" +
                std::string(300, 't') + R"(","data":1})");
  std::string f;
  // A forged heartbeat moving the real publisher on by 2^60.
  frame_writer(f, frame_type::hb, victim).str("name", "victim").uint("seq", std::uint64_t{1} << 60)
      .uint("lo", 1).int64("ts", 1).text("host", "h").int64("pid", 1).int64("start", 1)
      .uint("ivl", 1000).finish();
  out.push_back(f);
  // A NACK for a billion messages, addressed to the publisher.
  f.clear();
  frame_writer(f, frame_type::nack, 0x1111111111111111).str("name", "evil").uint("seq", 0)
      .int64("ts", 1).id("to", victim).raw("ranges", "[[1,1000000000]]").finish();
  out.push_back(f);
  // A goodbye for the subscriber, sent in its name (others would see it leave).
  f.clear();
  frame_writer(f, frame_type::bye, sub_id).str("name", "victim-sub").uint("seq", 0).int64("ts", 1)
      .finish();
  out.push_back(f);
  // A flood of new sender ids, each announcing and sending one message at a huge seq.
  for (std::uint64_t i = 0; i < 5000; ++i) {
    f.clear();
    const std::uint64_t id = 0x2000000000000000 + i;
    frame_writer(f, frame_type::hb, id).str("name", "flood").uint("seq", 0).int64("ts", 1)
        .text("host", "h").int64("pid", 1).int64("start", 1).uint("ivl", 1000).finish();
    f += '\n';
    frame_writer(f, frame_type::msg, id).str("name", "flood").uint("seq", 1000000).int64("ts", 1)
        .str("topic", "hostile.t").raw("data", "1").finish();
    out.push_back(f);
  }
  return out;
}

}  // namespace

TEST_CASE("hostile input: an open bus delivers 10000 messages while every kind of bad datagram "
          "is fired at it",
          "[net][hostile]") {
  const std::string url = private_bus_url();
  options so;
  so.url = url;
  so.name = "victim-sub";
  bus sub_bus(so);
  std::mutex m;
  std::vector<std::uint64_t> seqs;
  auto sub = sub_bus.subscribe("hostile.t", [&](const message& msg) {
    if (msg.sender_name() != "victim") return;
    std::lock_guard<std::mutex> lock(m);
    seqs.push_back(msg.seq());
  });
  options po;
  po.url = url;
  po.name = "victim";
  bus pub_bus(po);
  std::vector<loss_event> victim_losses;
  auto losses = sub_bus.on_loss([&](const loss_event& e) {
    if (e.sender_name != "victim") return;
    std::lock_guard<std::mutex> lock(m);
    victim_losses.push_back(e);
  });
  REQUIRE(pub_bus.wait_for_subscribers("hostile.t", 1, 5s));
  const long rss_before = rss_kib();

  // The attacker: a plain socket on the group, firing while the publisher publishes.
  const auto datagrams = hostile_datagrams(pub_bus.id().value, sub_bus.id().value);
  std::atomic<bool> fired{false};
  std::thread attacker([&] {
    asio::io_context ctx;
    asio::ip::udp::socket s(ctx, asio::ip::udp::v4());
    s.set_option(asio::ip::multicast::outbound_interface(asio::ip::make_address_v4("127.0.0.1")));
    s.set_option(asio::ip::multicast::hops(0));
    const asio::ip::udp::endpoint to(asio::ip::make_address_v4(sub_bus.url().group),
                                     sub_bus.url().port);
    for (int round = 0; round < 2; ++round)
      for (const auto& d : datagrams) {
        asio::error_code ec;
        s.send_to(asio::buffer(d), to, 0, ec);
      }
    fired = true;
  });
  constexpr std::uint64_t n = 10000;
  for (std::uint64_t i = 1; i <= n; ++i) {
    REQUIRE_FALSE(pub_bus.publish("hostile.t", i));
    if (i % 500 == 0) std::this_thread::sleep_for(5ms);  // about 100,000/s: paced, not flow-controlled
  }
  attacker.join();
  REQUIRE(fired);
  const bool all = wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(m);
        return seqs.size() >= n;
      },
      30s);
  const auto st = sub_bus.stats();
  std::lock_guard<std::mutex> lock(m);
  INFO("delivered " << seqs.size() << ", lost " << st.lost << ", dropped " << st.dropped_total());
  REQUIRE(all);
  CHECK(seqs.size() == n);
  for (std::uint64_t i = 0; i < seqs.size(); ++i) REQUIRE(seqs[i] == i + 1);
  CHECK(victim_losses.empty());  // the real publisher lost nothing
  // Every bad datagram was counted by its reason: random bytes, truncated and nested JSON and
  // huge numbers as malformed, a 300-byte topic as oversized, the 2^60 jump as implausible, the
  // flood beyond 4096 live peers as peer_table_full. (A 60 kB string payload is a valid message.)
  CHECK(st.drops(drop_reason::malformed) > 0);
  CHECK(st.drops(drop_reason::oversized) > 0);
  CHECK(st.drops(drop_reason::implausible) > 0);
  CHECK(st.drops(drop_reason::peer_table_full) > 0);
  CHECK(sub_bus.peers().size() <= 4096 + 1);
  // Memory: the flood's ids and their phantom gaps cost a bounded amount. Not asserted, only
  // shown: the subscriber NACKs each forged sender's phantom gap like a real one (tens of
  // thousands of NACK ranges in a few seconds), an open bus's known weakness (docs/security.md).
  const long grown = rss_kib() - rss_before;
  const auto ps = pub_bus.stats();
  WARN("hostile input: subscriber RSS grew by " << grown << " KiB; drops " << st.dropped_total()
       << "; NACKs sent by the subscriber " << st.nacks_sent << "; phantom losses counted "
       << st.lost << "; publisher: NACK ranges received " << ps.nacks_received
       << ", repairs sent " << ps.repairs_sent);
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed memory in quarantine (256 MiB by default) and adds shadow memory: its RSS
  // says nothing about the bus's bounds, so the figure is only reported there.
#else
  CHECK(grown < 256 * 1024);
#endif
}
