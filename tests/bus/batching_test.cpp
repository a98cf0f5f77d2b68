// tests/bus/batching_test.cpp: the send path's batching between in-process buses on a private
// bus (real sockets): a lone message leaves at once, a burst leaves several to a datagram and
// arrives whole and in order, heartbeats, adverts and goodbyes never claim a seq still in the
// open batch, and a bus's own datagrams are set aside unread unless include_self (or a tap)
// wants them.
//
// The sender runs on an io_context of the test's (bus(io_context&)) that the test can hold: while
// held, the bus's executor runs nothing (no end of burst, no heartbeat), so what publish alone
// sends is counted exactly.
#include "support/bus_address.hpp"
#include "support/held_context.hpp"
#include "support/sanitizer.hpp"

#include <peerbus/bus.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/multicast.hpp>
#include <asio/ip/udp.hpp>
#include <asio/post.hpp>

#include <catch2/catch.hpp>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace peerbus;
using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t burst_n = sanitized ? 2000 : 5000;

options peer(const std::string& url, const std::string& name) {
  options o;
  o.url = url;
  o.name = name;
  o.heartbeat_interval = 100ms;
  return o;
}

// One frame as a tap saw it.
struct seen_frame {
  std::string type;
  std::uint64_t seq = 0;
};

// Every datagram from one sender that a bus hears, frame by frame, in arrival order.
struct wire_log {
  std::mutex m;
  std::vector<std::vector<seen_frame>> datagrams;

  std::vector<std::vector<seen_frame>> snapshot() {
    std::lock_guard<std::mutex> lock(m);
    return datagrams;
  }
  // The frames of the datagram that carried message `seq`, or none.
  std::vector<seen_frame> carrying(std::uint64_t seq) {
    std::lock_guard<std::mutex> lock(m);
    for (const auto& d : datagrams)
      for (const auto& f : d)
        if (f.type == "msg" && f.seq == seq) return d;
    return {};
  }
  bool heard(const std::string& type, std::uint64_t seq) {
    std::lock_guard<std::mutex> lock(m);
    for (const auto& d : datagrams)
      for (const auto& f : d)
        if (f.type == type && f.seq == seq) return true;
    return false;
  }
};

subscription watch(bus& on, peer_id from, const std::shared_ptr<wire_log>& log) {
  return on.on_datagram([log, from](const datagram_view& d) {
    std::vector<seen_frame> frames;
    for (const auto& f : d.frames)
      if (f.ok && f.from == from) frames.push_back({std::string(f.type), f.seq});
    if (frames.empty()) return;
    std::lock_guard<std::mutex> lock(log->m);
    log->datagrams.push_back(std::move(frames));
  });
}

// The messages a subscription received: their seqs and payloads (publish_raw of a number).
struct inbox {
  std::mutex m;
  std::vector<std::uint64_t> seqs, values;

  subscription attach(bus& b, const std::string& pattern, bool include_self = false) {
    subscribe_options so;
    so.include_self = include_self;
    return b.subscribe(
        pattern,
        [this](const message& msg) {
          std::lock_guard<std::mutex> lock(m);
          seqs.push_back(msg.seq());
          values.push_back(std::stoull(std::string(msg.data_json())));
        },
        so);
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(m);
    return seqs.size();
  }
  bool wait_count(std::size_t n, std::chrono::milliseconds timeout) {
    return wait_until([&] { return size() >= n; }, timeout);
  }
  // Messages [from, from + n) carried values v0, v0+1, ... and seqs s0, s0+1, ...: whole, in
  // order, no duplicates.
  void check_run(std::size_t from, std::size_t n, std::uint64_t s0, std::uint64_t v0) {
    std::lock_guard<std::mutex> lock(m);
    REQUIRE(seqs.size() == from + n);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (seqs[from + i] != s0 + i || values[from + i] != v0 + i) ++bad;
    INFO("first: seq " << seqs[from] << " value " << values[from]);
    CHECK(bad == 0);
  }
};

// Publishes values v0 .. v0+n-1 as the JSON numbers they are.
void publish_run(bus& b, const std::string& topic, std::uint64_t v0, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) REQUIRE(!b.publish_raw(topic, std::to_string(v0 + i)));
}

// Sends datagrams to the bus's group, in this order, from one socket of its own (a forger).
void send_raw(const std::string& url, const std::vector<std::string>& datagrams) {
  const auto u = bus_url::parse(url);
  asio::io_context ctx;
  asio::ip::udp::socket tx(ctx, asio::ip::udp::v4());
  tx.set_option(asio::ip::multicast::outbound_interface(asio::ip::make_address_v4("127.0.0.1")));
  tx.set_option(asio::ip::multicast::hops(0));
  for (const auto& d : datagrams)
    tx.send_to(asio::buffer(d), {asio::ip::make_address_v4(u.group), u.port});
}

}  // namespace

TEST_CASE("batching: a lone message from an idle sender leaves at once in a datagram of its own",
          "[net][batching]") {
  const auto url = private_bus_url();
  held_context sender_ctx;
  bus sender(sender_ctx.ctx, peer(url, "lone-sender"));
  bus receiver(peer(url, "lone-receiver"));
  inbox got;
  auto sub = got.attach(receiver, "lone.>");
  auto log = std::make_shared<wire_log>();
  auto tap = watch(receiver, sender.id(), log);
  REQUIRE(receiver.wait_for_peer("lone-sender", 10s));
  REQUIRE(sender.wait_for_subscribers("lone.t", 1, 10s));

  for (std::uint64_t seq = 1; seq <= 2; ++seq) {
    INFO("message " << seq);
    // The sender's bus thread runs nothing now: whatever leaves, publish sent by itself.
    sender_ctx.hold();
    const auto before = sender.stats();
    REQUIRE(!sender.publish_raw("lone.t", std::to_string(seq)));
    const auto after = sender.stats();
    CHECK(after.datagrams_sent == before.datagrams_sent + 1);
    CHECK(after.batched_frames == before.batched_frames);
    // Delivered while the sender's thread is still held: it did not wait for the burst's end.
    CHECK(got.wait_count(seq, 10s));
    sender_ctx.release();
    // Once the tail advert for it is heard the burst is over: the next message is alone again.
    // (A heartbeat's claim says as much: the end of the burst was queued before it.)
    REQUIRE(wait_until([&] { return log->heard("adv", seq) || log->heard("hb", seq); }, 10s));
    const auto frames = log->carrying(seq);
    CHECK(frames.size() == 1);
  }
  got.check_run(0, 2, 1, 1);
  CHECK(sender.stats().batched_frames == 0);
  CHECK(receiver.stats().nacks_sent == 0);
}

TEST_CASE("batching: a burst leaves several messages to a datagram and arrives whole and in order",
          "[net][batching]") {
  const auto url = private_bus_url();
  held_context sender_ctx;
  auto so = peer(url, "burst-sender");
  // No heartbeat or tail advert comes along to flush a batch: only a full batch or the end of
  // the burst (end_burst) sends one.
  so.heartbeat_interval = 20s;
  so.tail_advert_delay = 60s;
  bus sender(sender_ctx.ctx, so);
  bus receiver(peer(url, "burst-receiver"));
  inbox got;
  auto sub = got.attach(receiver, "burst.>");
  REQUIRE(receiver.wait_for_peer("burst-sender", 10s));
  REQUIRE(sender.wait_for_subscribers("burst.t", 1, 10s));
  const std::uint64_t n = burst_n;

  // Held: the first message leaves alone, the rest in full batches until the burst ends.
  sender_ctx.hold();
  const auto s0 = sender.stats();
  publish_run(sender, "burst.t", 0, n);
  const auto held = sender.stats();
  const auto datagrams_held = held.datagrams_sent - s0.datagrams_sent;
  INFO(n << " messages: " << datagrams_held << " datagrams while held");
  CHECK(datagrams_held >= 2);      // the lone first message and at least one full batch
  CHECK(datagrams_held <= n / 50);  // ~120 bytes a message, ~65,000 bytes a datagram
  CHECK(held.batched_frames - s0.batched_frames < n - 1);  // the open batch has not left yet
  sender_ctx.release();
  REQUIRE(got.wait_count(n, 10s));  // well before a heartbeat (20 s) could flush it
  got.check_run(0, n, 1, 0);
  const auto s1 = sender.stats();
  CHECK(s1.batched_frames - s0.batched_frames == n - 1);  // all but the first, in batches
  CHECK(s1.published - s0.published == n);

  // Not held: the bus thread ends bursts whenever it gets to it; still batched, whole, in order.
  publish_run(sender, "burst.t", n, n);
  REQUIRE(got.wait_count(2 * n, 10s));
  got.check_run(n, n, n + 1, n);
  const auto s2 = sender.stats();
  WARN("unheld burst of " << n << ": " << s2.batched_frames - s1.batched_frames
                          << " batched frames, " << s2.datagrams_sent - s1.datagrams_sent
                          << " datagrams sent (heartbeats and adverts included)");
  CHECK(s2.batched_frames > s1.batched_frames);

  const auto r = receiver.stats();
  CHECK(r.rx_overflows == 0);
  CHECK(r.nacks_sent == 0);
  CHECK(r.lost == 0);
  CHECK(r.duplicates == 0);
}

TEST_CASE("batching: heartbeats and adverts never claim a seq that is still in the open batch",
          "[net][batching]") {
  const auto url = private_bus_url();
  held_context sender_ctx;
  auto so = peer(url, "claim-sender");
  so.heartbeat_interval = 10ms;  // many heartbeats among the bursts below
  bus sender(sender_ctx.ctx, so);
  bus receiver(peer(url, "claim-receiver"));
  inbox got;
  auto sub = got.attach(receiver, "claim.>");
  auto log = std::make_shared<wire_log>();
  auto tap = watch(receiver, sender.id(), log);
  REQUIRE(receiver.wait_for_peer("claim-sender", 10s));
  REQUIRE(sender.wait_for_subscribers("claim.t", 1, 10s));
  const std::uint64_t n = burst_n;

  // A heartbeat queued on the strand before the burst's end: when the strand runs again it
  // goes first, while messages 2..n still wait in the open batch. It must send them first.
  sender_ctx.hold();
  auto other = sender.subscribe("claim.other", [](const message&) {});  // queues a heartbeat
  publish_run(sender, "claim.t", 0, n);
  sender_ctx.release();
  REQUIRE(got.wait_count(n, 20s));

  // Then bursts among heartbeats every 10 ms and tail adverts, unheld.
  const std::uint64_t bursts = 20, each = n / 20;
  for (std::uint64_t b = 0; b < bursts; ++b) {
    publish_run(sender, "claim.t", n + b * each, each);
    // The next burst once this one is claimed (a heartbeat or its tail advert).
    const auto last = n + (b + 1) * each;
    REQUIRE(wait_until([&] { return log->heard("adv", last) || log->heard("hb", last); }, 10s));
  }
  REQUIRE(got.wait_count(n + bursts * each, 20s));

  // A last burst, and close() from this thread while held: the advert that starts its linger and
  // the goodbye are sent by close() itself, with the burst still in the open batch.
  sender_ctx.hold();
  publish_run(sender, "claim.t", n + bursts * each, each);
  sender.close();
  sender_ctx.release();
  const std::uint64_t total = n + (bursts + 1) * each;
  REQUIRE(got.wait_count(total, 20s));
  got.check_run(0, total, 1, 0);
  REQUIRE(wait_until([&] { return log->heard("bye", total); }, 10s));
  CHECK(log->heard("adv", total));

  // On loopback one sender's datagrams arrive in the order sent: every claim (hb, adv, bye: "I
  // have sent up to seq") must come after every message up to it.
  std::vector<bool> have(total + 1, false);
  std::uint64_t contiguous = 0, claims = 0, early = 0, first_early = 0;
  bool heartbeat_claimed_burst = false;
  for (const auto& d : log->snapshot()) {
    for (const auto& f : d) {
      if (f.type == "msg" && f.seq <= total) {
        have[f.seq] = true;
        while (contiguous < total && have[contiguous + 1]) ++contiguous;
      } else if (f.type == "hb" || f.type == "adv" || f.type == "bye") {
        ++claims;
        if (f.seq > contiguous) {
          if (early++ == 0) first_early = f.seq;
        }
        if (f.type == "hb" && f.seq == n && contiguous >= n) heartbeat_claimed_burst = true;
      }
    }
  }
  INFO(claims << " claims heard; the first early one claimed " << first_early);
  CHECK(early == 0);
  CHECK(heartbeat_claimed_burst);  // the queued heartbeat did claim the held burst
  CHECK(claims > bursts);  // one per burst at least, and the heartbeats
  const auto r = receiver.stats();
  CHECK(r.rx_overflows == 0);
  CHECK(r.nacks_sent == 0);  // no receiver ever saw a claimed seq missing long enough to ask
  CHECK(r.lost == 0);
  CHECK(sender.stats().batched_frames > 0);
}

TEST_CASE("batching: own datagrams are set aside unread unless include_self or a tap wants them",
          "[net][batching]") {
  const auto url = private_bus_url();
  // A passive listener (it sends nothing: b still hears only its own) that tells when every
  // frame of a run has left b, the last open batch included.
  options lo = peer(url, "listener");
  lo.passive = true;
  bus listener(lo);
  auto heard = [&](std::uint64_t n) {
    for (const auto& st : listener.stats().streams)
      if (st.name == "self-bus" && st.delivered >= n) return true;
    return false;
  };
  held_context ctx;
  bus b(ctx.ctx, peer(url, "self-bus"));  // alone on its bus: all it hears is its own
  inbox plain, mine;
  auto plain_sub = plain.attach(b, "self.>");
  const std::string own_hex = b.id().str();
  REQUIRE(own_hex.size() == 16);
  // Malformed after the sender id: decoding it would count a malformed drop.
  const std::string forged_own = R"({"v":1,"type":"msg","from":")" + own_hex + R"(","seq":})";
  // Another sender's datagram of a protocol version we do not speak: once it is counted, the
  // forged one sent just before it on the same socket has been handled.
  const std::string marker = R"({"v":9,"type":"msg","from":"0f0e0d0c0b0a0908","seq":1})";
  // Nothing wants them: every datagram it sends comes back and is set aside. All of them have
  // left (a busy sender's last batch may wait for end_burst's recheck: arriving after the
  // include_self subscription below, it would be delivered there) and come back.
  publish_run(b, "self.t", 0, 100);
  REQUIRE(wait_until(
      [&] {
        const auto s = b.stats();
        return heard(100) && s.own_datagrams >= s.datagrams_sent && s.published == 100;
      },
      10s));
  // Everything it heard was its own (own_datagrams is read after datagrams_received).
  CHECK(wait_until(
      [&] {
        const auto t = b.stats();
        return t.own_datagrams >= t.datagrams_received;
      },
      10s));
  auto s = b.stats();
  CHECK(s.delivered == 0);
  CHECK(plain.size() == 0);
  CHECK(s.streams.empty());
  CHECK(s.dropped_total() == 0);
  // Set aside before decoding: a malformed datagram under our id costs no malformed drop.
  send_raw(url, {forged_own, marker});
  REQUIRE(wait_until([&] { return b.stats().drops(drop_reason::wrong_version) == 1; }, 10s));
  CHECK(b.stats().own_datagrams > s.own_datagrams);
  CHECK(b.stats().drops(drop_reason::malformed) == 0);

  // include_self: they are decoded and delivered, also when they left batched.
  {
    auto mine_sub = mine.attach(b, "self.>", true);
    const auto s0 = b.stats();
    ctx.hold();
    publish_run(b, "self.t", 100, burst_n);
    ctx.release();
    REQUIRE(mine.wait_count(burst_n, 20s));
    mine.check_run(0, burst_n, 101, 100);
    send_raw(url, {forged_own, marker});  // now decoded: a malformed drop
    REQUIRE(wait_until([&] { return b.stats().drops(drop_reason::wrong_version) == 2; }, 10s));
    CHECK(b.stats().drops(drop_reason::malformed) == 1);
    const auto s1 = b.stats();
    CHECK(s1.batched_frames - s0.batched_frames == burst_n - 1);
    CHECK(s1.own_datagrams == s0.own_datagrams);  // none set aside while it is subscribed
    CHECK(plain.size() == 0);  // the plain subscription still gets none of its own
  }

  // Unsubscribed: set aside again, everything sent from now on.
  const auto s2 = b.stats();
  publish_run(b, "self.t", 100 + burst_n, 10);
  REQUIRE(wait_until(
      [&] {
        const auto t = b.stats();
        return t.published == s2.published + 10 &&
               t.own_datagrams - s2.own_datagrams >= t.datagrams_sent - s2.datagrams_sent;
      },
      10s));
  CHECK(b.stats().delivered == burst_n);

  // A tap sees everything, its own datagrams included: none is set aside while it is installed.
  {
    auto log = std::make_shared<wire_log>();
    auto tap = watch(b, b.id(), log);
    const auto s3 = b.stats();
    REQUIRE(!b.publish_raw("self.t", "1"));
    const auto seq = s3.published + 1;
    REQUIRE(wait_until([&] { return log->heard("msg", seq); }, 10s));
    CHECK(b.stats().own_datagrams == s3.own_datagrams);
  }
  CHECK(mine.size() == burst_n);
  CHECK(plain.size() == 0);
  CHECK(b.stats().delivered == burst_n);
}
