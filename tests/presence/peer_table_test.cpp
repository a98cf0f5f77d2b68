// tests/presence/peer_table_test.cpp: the peer table under a fake clock: joins, expiry, lookups.
#include "presence/peer_table.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using peerbus::detail::announce;
using peerbus::detail::display_name;
using peerbus::detail::format_id;
using peerbus::detail::parse_id;
using peerbus::detail::peer_event_kind;
using peerbus::detail::peer_record;
using peerbus::detail::peer_table;
using peerbus::detail::presence_clock;
using peerbus::detail::presence_config;

namespace {

// The fake clock: an arbitrary origin far from zero; tests move `now` by hand.
const presence_clock::time_point t0 = presence_clock::time_point{} + 1000h;

announce make(std::uint64_t id, std::string name, std::vector<std::string> subs = {},
              std::chrono::milliseconds interval = 1000ms) {
  announce a;
  a.id = id;
  a.name = std::move(name);
  a.host = "box";
  a.pid = static_cast<std::int64_t>(id & 0xffff);
  a.start_time_us = 1700000000000000;
  a.version = 1;
  a.interval = interval;
  a.subs = std::move(subs);
  return a;
}

std::vector<std::uint64_t> ids(const std::vector<const peer_record*>& v) {
  std::vector<std::uint64_t> out;
  for (const auto* r : v) out.push_back(r->id);
  return out;
}

}  // namespace

TEST_CASE("ids: format, parse, display", "[presence]") {
  CHECK(format_id(0) == "0000000000000000");
  CHECK(format_id(0x3f9a00c2d41e7b55) == "3f9a00c2d41e7b55");
  CHECK(format_id(~std::uint64_t{0}) == "ffffffffffffffff");
  CHECK(parse_id("3f9a00c2d41e7b55") == std::uint64_t{0x3f9a00c2d41e7b55});
  CHECK(parse_id("3F9A00C2D41E7B55") == std::uint64_t{0x3f9a00c2d41e7b55});
  CHECK(parse_id("ffffffffffffffff") == ~std::uint64_t{0});
  CHECK(parse_id("0000000000000000") == std::uint64_t{0});
  for (std::uint64_t id : {std::uint64_t{1}, std::uint64_t{0xdeadbeefcafef00d}})
    CHECK(parse_id(format_id(id)) == id);
  CHECK_FALSE(parse_id(""));
  CHECK_FALSE(parse_id("3f9a00c2d41e7b5"));    // 15
  CHECK_FALSE(parse_id("3f9a00c2d41e7b550"));  // 17
  CHECK_FALSE(parse_id("3f9a00c2d41e7b5g"));
  CHECK_FALSE(parse_id("0x9a00c2d41e7b55"));
  CHECK_FALSE(parse_id(" f9a00c2d41e7b55"));
  CHECK_FALSE(parse_id("+f9a00c2d41e7b55"));
  CHECK_FALSE(parse_id(std::string_view("3f9a00c2d41e7b5\0", 16)));

  CHECK(display_name("editor", 0x3f9a00c2d41e7b55) == "editor@3f9a");
  CHECK(display_name("editor", 0x000a00c2d41e7b55) == "editor@000a");
  CHECK(display_name("", 0xabcd000000000000) == "@abcd");
  peer_record r;
  r.name = "konsole";
  r.id = 0x1234ffffffffffff;
  CHECK(r.display() == "konsole@1234");
}

TEST_CASE("peer_table: a first announce joins", "[presence]") {
  peer_table table;
  CHECK(table.empty());
  CHECK(table.next_expiry() == presence_clock::time_point::max());

  auto a = make(0x3f9a000000000001, "editor", {"file.*"});
  a.highest_seq = 42;
  a.lowest_seq = 7;
  a.subs_truncated = true;
  auto ev = table.on_announce(a, t0);
  REQUIRE(ev);
  CHECK(ev->kind == peer_event_kind::joined);
  CHECK(ev->peer.id == a.id);
  CHECK(ev->peer.name == "editor");
  CHECK(ev->peer.host == "box");
  CHECK(ev->peer.pid == a.pid);
  CHECK(ev->peer.start_time_us == a.start_time_us);
  CHECK(ev->peer.version == 1);
  CHECK(ev->peer.highest_seq == 42);
  CHECK(ev->peer.lowest_seq == 7);
  CHECK(ev->peer.interval == 1000ms);
  CHECK(ev->peer.subs == std::vector<std::string>{"file.*"});
  CHECK(ev->peer.subs_truncated);
  CHECK(ev->peer.first_seen == t0);
  CHECK(ev->peer.last_heard == t0);
  CHECK(ev->peer.expires_at == t0 + 3s);
  CHECK(ev->peer.display() == "editor@3f9a");

  CHECK(table.size() == 1);
  CHECK(table.counters().joined == 1);
  CHECK(table.next_expiry() == t0 + 3s);
  REQUIRE(table.find(a.id));
  CHECK(table.find(a.id)->name == "editor");
  CHECK(table.find(a.id + 1) == nullptr);
}

TEST_CASE("peer_table: heartbeats keep a peer alive and silence expires it exactly on time",
          "[presence]") {
  peer_table table;  // 1 s default interval, 3 misses
  const auto a = make(1, "editor");
  REQUIRE(table.on_announce(a, t0));
  auto now = t0;
  for (int i = 1; i <= 20; ++i) {
    now = t0 + i * 1s;
    CHECK_FALSE(table.on_announce(a, now));  // unchanged: no event
    CHECK(table.expire(now).empty());
  }
  const auto last = now;
  CHECK(table.find(1)->first_seen == t0);
  CHECK(table.find(1)->last_heard == last);
  CHECK(table.next_expiry() == last + 3s);

  CHECK(table.expire(last + 2s).empty());
  CHECK(table.expire(last + 3s - 1ns).empty());  // not one nanosecond early
  CHECK(table.size() == 1);
  auto gone = table.expire(last + 3s);
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].kind == peer_event_kind::expired);
  CHECK(gone[0].peer.id == 1);
  CHECK(gone[0].peer.last_heard == last);
  CHECK(table.empty());
  CHECK(table.counters().expired == 1);
  CHECK(table.next_expiry() == presence_clock::time_point::max());
  CHECK(table.expire(last + 1h).empty());  // already gone: once only
}

TEST_CASE("peer_table: expiry follows the peer's own interval and the configured misses",
          "[presence]") {
  presence_config cfg;
  cfg.expiry_misses = 5;
  cfg.default_interval = 2000ms;
  peer_table table(cfg);
  table.on_announce(make(1, "fast", {}, 200ms), t0);
  table.on_announce(make(2, "slow", {}, 3000ms), t0);
  table.on_announce(make(3, "unknown", {}, 0ms), t0);    // no interval: default
  table.on_announce(make(4, "negative", {}, -5ms), t0);  // nonsense: default
  CHECK(table.find(1)->expires_at == t0 + 1s);
  CHECK(table.find(2)->expires_at == t0 + 15s);
  CHECK(table.find(3)->expires_at == t0 + 10s);
  CHECK(table.find(4)->expires_at == t0 + 10s);
  CHECK(table.next_expiry() == t0 + 1s);

  // The interval may change; the next deadline follows the latest one.
  table.on_announce(make(2, "slow", {}, 100ms), t0 + 1s);
  CHECK(table.find(2)->expires_at == t0 + 1s + 500ms);
  CHECK(table.find(2)->interval == 100ms);

  auto gone = table.expire(t0 + 10s);
  REQUIRE(gone.size() == 4);
  // ordered by deadline, then id
  CHECK(gone[0].peer.id == 1);
  CHECK(gone[1].peer.id == 2);
  CHECK(gone[2].peer.id == 3);
  CHECK(gone[3].peer.id == 4);
}

TEST_CASE("peer_table: any datagram counts as a sign of life", "[presence]") {
  peer_table table;
  table.on_announce(make(1, "editor"), t0);
  CHECK(table.on_heard(1, t0 + 2s));
  CHECK(table.find(1)->last_heard == t0 + 2s);
  CHECK(table.find(1)->expires_at == t0 + 5s);
  CHECK(table.expire(t0 + 4s).empty());
  // A datagram never shortens a deadline.
  CHECK(table.on_heard(1, t0 + 1s));
  CHECK(table.find(1)->expires_at == t0 + 5s);

  // Unknown ids are not made known by data alone.
  CHECK_FALSE(table.on_heard(99, t0));
  CHECK(table.find(99) == nullptr);
  CHECK(table.size() == 1);

  CHECK(table.expire(t0 + 5s).size() == 1);
  CHECK_FALSE(table.on_heard(1, t0 + 6s));  // expired peers are not revived by data
}

TEST_CASE("peer_table: grace moves every deadline past a time this process was not listening",
          "[presence]") {
  peer_table table;
  table.on_announce(make(1, "editor"), t0);                 // expires at t0 + 3s
  table.on_announce(make(2, "fast", {}, 100ms), t0 + 1s);   // expires 300 ms after each sign
  const auto fast_window = table.expiry_window(100ms);
  table.grace(t0 + 10s);
  CHECK(table.find(1)->expires_at == t0 + 13s);
  CHECK(table.find(2)->expires_at == t0 + 10s + fast_window);
  CHECK(table.find(1)->last_heard == t0);  // what was heard is unchanged
  CHECK(table.expire(t0 + 10s).empty());
  // Never earlier: a grace in the past changes nothing.
  table.grace(t0);
  CHECK(table.find(1)->expires_at == t0 + 13s);
  CHECK(table.expire(t0 + 13s).size() == 2);
}

TEST_CASE("peer_table: goodbye removes at once", "[presence]") {
  peer_table table;
  table.on_announce(make(1, "editor"), t0);
  table.on_announce(make(2, "viewer"), t0);
  auto ev = table.on_goodbye(1, t0 + 500ms);
  REQUIRE(ev);
  CHECK(ev->kind == peer_event_kind::left);
  CHECK(ev->peer.id == 1);
  CHECK(ev->peer.name == "editor");
  CHECK(table.find(1) == nullptr);
  CHECK(table.size() == 1);
  CHECK(table.counters().left == 1);

  SECTION("a repeated goodbye is nothing") {
    CHECK_FALSE(table.on_goodbye(1, t0 + 600ms));
    CHECK(table.counters().left == 1);
  }
  SECTION("a goodbye from an unknown id is nothing") {
    CHECK_FALSE(table.on_goodbye(77, t0 + 600ms));
    CHECK(table.size() == 1);
    CHECK(table.counters().left == 1);
  }
  SECTION("the departed peer does not also expire") {
    auto gone = table.expire(t0 + 1h);
    REQUIRE(gone.size() == 1);
    CHECK(gone[0].peer.id == 2);
    CHECK(table.counters().expired == 1);
  }
  SECTION("a heartbeat reordered behind the goodbye does not resurrect it") {
    CHECK_FALSE(table.on_announce(make(1, "editor"), t0 + 600ms));
    CHECK(table.find(1) == nullptr);
    CHECK(table.counters().ignored_departed == 1);
    CHECK(table.counters().joined == 2);
    // Once its expiry window has passed, the id is forgotten (ids are never reused by a live
    // process, so this only matters for a bounded memory).
    CHECK(table.on_announce(make(1, "editor"), t0 + 500ms + 3s));
  }
}

TEST_CASE("peer_table: a refuted goodbye is forgotten, so the next announce is taken at once",
          "[presence]") {
  peer_table table;
  table.on_announce(make(1, "editor"), t0);
  REQUIRE(table.on_goodbye(1, t0 + 100ms));
  CHECK(table.said_goodbye(1, t0 + 200ms));
  CHECK_FALSE(table.said_goodbye(2, t0 + 200ms));
  CHECK_FALSE(table.on_announce(make(1, "editor"), t0 + 200ms));
  CHECK(table.forget_departure(1));
  CHECK_FALSE(table.forget_departure(1));
  CHECK_FALSE(table.said_goodbye(1, t0 + 300ms));
  CHECK(table.on_announce(make(1, "editor"), t0 + 300ms));
  CHECK(table.find(1) != nullptr);
}

TEST_CASE("peer_table: goodbye memory is bounded", "[presence]") {
  presence_config cfg;
  cfg.goodbye_memory = 4;
  peer_table table(cfg);
  for (std::uint64_t id = 1; id <= 10; ++id) {
    table.on_announce(make(id, "p"), t0);
    table.on_goodbye(id, t0);
  }
  // The last four are remembered; the oldest ones were overwritten.
  for (std::uint64_t id = 7; id <= 10; ++id) CHECK_FALSE(table.on_announce(make(id, "p"), t0));
  CHECK(table.on_announce(make(1, "p"), t0));

  presence_config off;
  off.goodbye_memory = 0;
  peer_table no_memory(off);
  no_memory.on_announce(make(1, "p"), t0);
  no_memory.on_goodbye(1, t0);
  CHECK(no_memory.on_announce(make(1, "p"), t0));
}

TEST_CASE("peer_table: a restarted process is a new peer and the old one expires", "[presence]") {
  peer_table table;
  auto old_self = make(0xaaaa000000000001, "editor");
  old_self.highest_seq = 100000;
  old_self.lowest_seq = 90000;
  old_self.pid = 100;
  REQUIRE(table.on_announce(old_self, t0));
  table.on_announce(old_self, t0 + 1s);

  // Killed at t0 + 1s; restarted at t0 + 1.5s with a new id, a new pid and sequence numbers
  // starting over.
  auto new_self = make(0xbbbb000000000002, "editor");
  new_self.highest_seq = 3;
  new_self.lowest_seq = 1;
  new_self.pid = 200;
  auto ev = table.on_announce(new_self, t0 + 1500ms);
  REQUIRE(ev);
  CHECK(ev->kind == peer_event_kind::joined);
  CHECK(table.size() == 2);

  auto both = table.find_by_name("editor");
  REQUIRE(both.size() == 2);
  CHECK(both[0]->id == old_self.id);  // ordered by first_seen
  CHECK(both[1]->id == new_self.id);
  CHECK(both[0]->display() != both[1]->display());
  CHECK(table.find(old_self.id)->highest_seq == 100000);
  CHECK(table.find(new_self.id)->highest_seq == 3);

  table.on_announce(new_self, t0 + 2500ms);
  table.on_announce(new_self, t0 + 3500ms);
  auto gone = table.expire(t0 + 4s);
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].peer.id == old_self.id);
  CHECK(gone[0].peer.pid == 100);
  REQUIRE(table.find(new_self.id));
  CHECK(table.find(new_self.id)->highest_seq == 3);
  CHECK(table.find(new_self.id)->lowest_seq == 1);
  CHECK(table.has_name("editor"));
  CHECK(table.counters().joined == 2);
  CHECK(table.counters().expired == 1);
}

TEST_CASE("peer_table: sequence numbers only move forward for one id", "[presence]") {
  peer_table table;
  auto a = make(1, "p");
  a.highest_seq = 50;
  a.lowest_seq = 10;
  table.on_announce(a, t0);
  a.highest_seq = 40;  // a heartbeat overtaken by a newer one
  a.lowest_seq = 5;
  CHECK_FALSE(table.on_announce(a, t0 + 1s));
  CHECK(table.find(1)->highest_seq == 50);
  CHECK(table.find(1)->lowest_seq == 10);
  a.highest_seq = 60;
  a.lowest_seq = 20;
  table.on_announce(a, t0 + 2s);
  CHECK(table.find(1)->highest_seq == 60);
  CHECK(table.find(1)->lowest_seq == 20);
}

TEST_CASE("peer_table: changed subscriptions are an update", "[presence]") {
  peer_table table;
  table.on_announce(make(1, "p", {"a.*"}), t0);
  const auto g0 = table.generation();

  CHECK_FALSE(table.on_announce(make(1, "p", {"a.*"}), t0 + 1s));
  CHECK(table.generation() == g0);

  auto ev = table.on_announce(make(1, "p", {"a.*", "b.>"}), t0 + 2s);
  REQUIRE(ev);
  CHECK(ev->kind == peer_event_kind::updated);
  CHECK(ev->peer.subs == std::vector<std::string>{"a.*", "b.>"});
  CHECK(ev->peer.first_seen == t0);
  CHECK(ev->peer.last_heard == t0 + 2s);
  CHECK(table.generation() != g0);
  CHECK(table.counters().joined == 1);

  auto trunc = make(1, "p", {"a.*", "b.>"});
  trunc.subs_truncated = true;
  auto ev2 = table.on_announce(trunc, t0 + 3s);
  REQUIRE(ev2);
  CHECK(ev2->kind == peer_event_kind::updated);
  CHECK(ev2->peer.subs_truncated);

  auto renamed = trunc;
  renamed.host = "other-box";
  REQUIRE(table.on_announce(renamed, t0 + 4s));
  CHECK(table.find(1)->host == "other-box");

  // Sequence numbers and interval are not updates.
  auto seq = renamed;
  seq.highest_seq = 999;
  seq.interval = 500ms;
  CHECK_FALSE(table.on_announce(seq, t0 + 5s));
}

TEST_CASE("peer_table: names shared by several peers and lookups", "[presence]") {
  peer_table table;
  table.on_announce(make(0x3000000000000000, "worker"), t0 + 2ms);
  table.on_announce(make(0x1000000000000000, "worker"), t0);
  table.on_announce(make(0x2000000000000000, "worker"), t0 + 1ms);
  table.on_announce(make(0x4000000000000000, "editor"), t0);
  table.on_announce(make(0x5000000000000000, "konsole-1"), t0);
  table.on_announce(make(0x6000000000000000, "konsole-2"), t0);

  CHECK(table.has_name("worker"));
  CHECK(table.has_name("editor"));
  CHECK_FALSE(table.has_name("work"));
  CHECK_FALSE(table.has_name("konsole-*"));  // has_name is exact

  CHECK(ids(table.find_by_name("worker")) ==
        std::vector<std::uint64_t>{0x1000000000000000, 0x2000000000000000, 0x3000000000000000});
  CHECK(ids(table.find_by_name("editor")) == std::vector<std::uint64_t>{0x4000000000000000});
  CHECK(table.find_by_name("nobody").empty());
  CHECK(table.find_by_name("work").empty());

  CHECK(ids(table.find_by_pattern("konsole-*")) ==
        std::vector<std::uint64_t>{0x5000000000000000, 0x6000000000000000});
  CHECK(ids(table.find_by_pattern("konsole-?")) ==
        std::vector<std::uint64_t>{0x5000000000000000, 0x6000000000000000});
  CHECK(ids(table.find_by_pattern("*-2")) == std::vector<std::uint64_t>{0x6000000000000000});
  CHECK(ids(table.find_by_pattern("editor")) == std::vector<std::uint64_t>{0x4000000000000000});
  CHECK(table.find_by_pattern("w?rker").size() == 3);
  CHECK(table.find_by_pattern("*").size() == 6);
  CHECK(table.find_by_pattern("").empty());
  CHECK(table.find_by_pattern("x*").empty());

  // Display names tell instances of one name apart.
  auto workers = table.find_by_name("worker");
  CHECK(workers[0]->display() == "worker@1000");
  CHECK(workers[1]->display() == "worker@2000");
  CHECK(workers[2]->display() == "worker@3000");

  // snapshot: copies, ordered by (name, first_seen, id)
  auto snap = table.snapshot();
  REQUIRE(snap.size() == 6);
  CHECK(snap[0].name == "editor");
  CHECK(snap[1].name == "konsole-1");
  CHECK(snap[2].name == "konsole-2");
  CHECK(snap[3].id == 0x1000000000000000);
  CHECK(snap[4].id == 0x2000000000000000);
  CHECK(snap[5].id == 0x3000000000000000);

  table.on_goodbye(0x2000000000000000, t0 + 1s);
  CHECK(table.find_by_name("worker").size() == 2);
  CHECK(snap.size() == 6);  // a snapshot is a copy
}

TEST_CASE("peer_table: count_subscribers", "[presence]") {
  peer_table table;
  CHECK(table.count_subscribers("file.saved") == 0);
  table.on_announce(make(1, "a", {"file.*"}), t0);
  table.on_announce(make(2, "b", {"file.>"}), t0);
  table.on_announce(make(3, "c", {">"}), t0);
  table.on_announce(make(4, "d", {"chat.room", "file.saved"}), t0);  // two matches count once
  table.on_announce(make(5, "e", {}), t0);
  auto trunc = make(6, "f", {"other.*"});
  trunc.subs_truncated = true;
  table.on_announce(trunc, t0);

  CHECK(table.count_subscribers("file.saved") == 4);
  CHECK(table.count_subscribers("file.saved.txt") == 2);
  CHECK(table.count_subscribers("file") == 1);
  CHECK(table.count_subscribers("chat.room") == 2);
  CHECK(table.count_subscribers("chat") == 1);
  CHECK(table.count_subscribers("other.x") == 2);
  CHECK(table.count_subscribers("file.saved", true) == 5);  // f may subscribe beyond its list
  CHECK(table.count_subscribers("other.x", true) == 2);     // f counted once

  const auto g = table.generation();
  table.on_announce(make(1, "a", {}), t0 + 1s);  // a unsubscribes
  CHECK(table.generation() != g);
  CHECK(table.count_subscribers("file.saved") == 3);
  table.on_goodbye(3, t0 + 1s);
  CHECK(table.count_subscribers("file.saved") == 2);
  table.expire(t0 + 1h);
  CHECK(table.count_subscribers("file.saved") == 0);
}

TEST_CASE("peer_table: a flood of new ids is bounded by max_peers", "[presence]") {
  presence_config cfg;
  cfg.max_peers = 3;
  peer_table table(cfg);
  for (std::uint64_t id = 1; id <= 3; ++id) REQUIRE(table.on_announce(make(id, "p"), t0));
  CHECK_FALSE(table.on_announce(make(4, "p"), t0));
  CHECK(table.counters().rejected_full == 1);

  for (std::uint64_t id = 100; id < 100100; ++id) table.on_announce(make(id, "flood"), t0);
  CHECK(table.size() == 3);
  CHECK(table.counters().rejected_full == 100001);
  CHECK(table.counters().joined == 3);
  CHECK_FALSE(table.has_name("flood"));

  // Known peers still refresh while full.
  CHECK_FALSE(table.on_announce(make(1, "p"), t0 + 2s));
  CHECK(table.find(1)->last_heard == t0 + 2s);

  // Room frees up when someone leaves or expires.
  table.on_goodbye(2, t0 + 2s);
  CHECK(table.on_announce(make(4, "p"), t0 + 2s));
  auto gone = table.expire(t0 + 3s);
  CHECK(gone.size() == 1);  // 3 (heard at t0); 1 and 4 were heard at t0 + 2s
  CHECK(table.on_announce(make(5, "p"), t0 + 3s));
  CHECK(table.size() == 3);
}

TEST_CASE("peer_table: hostile intervals are clamped", "[presence]") {
  peer_table table;  // bounds 100 ms .. 60 s, 3 misses
  using ms = std::chrono::milliseconds;
  table.on_announce(make(1, "huge", {}, 24h), t0);
  table.on_announce(make(2, "max", {}, ms(ms::max())), t0);
  table.on_announce(make(3, "overflow", {}, ms(ms::max().count() / 3 + 1)), t0);
  table.on_announce(make(4, "tiny", {}, 1ms), t0);
  table.on_announce(make(5, "min", {}, ms(ms::min())), t0);
  table.on_announce(make(6, "edge", {}, 20s), t0);
  CHECK(table.find(1)->expires_at == t0 + 60s);
  CHECK(table.find(2)->expires_at == t0 + 60s);
  CHECK(table.find(3)->expires_at == t0 + 60s);
  CHECK(table.find(4)->expires_at == t0 + 100ms);
  CHECK(table.find(5)->expires_at == t0 + 3s);  // negative: default interval
  CHECK(table.find(6)->expires_at == t0 + 60s);

  // Nothing outlives the upper bound, however it announced itself.
  auto gone = table.expire(t0 + 60s);
  CHECK(gone.size() == 6);
  CHECK(table.empty());

  CHECK(table.expiry_window(ms(0)) == 3s);
  CHECK(table.expiry_window(30ms) == 100ms);
  CHECK(table.expiry_window(40ms) == 120ms);
  CHECK(table.expiry_window(21s) == 60s);
}

TEST_CASE("peer_table: odd configurations stay sane", "[presence]") {
  presence_config cfg;
  cfg.expiry_misses = 0;  // counts as 1
  cfg.min_expiry = 5s;
  cfg.max_expiry = 1s;  // below the minimum: the minimum wins
  peer_table table(cfg);
  CHECK(table.expiry_window(1ms) == 5s);
  CHECK(table.expiry_window(1h) == 5s);

  presence_config none;
  none.max_peers = 0;
  peer_table closed(none);
  CHECK_FALSE(closed.on_announce(make(1, "p"), t0));
  CHECK(closed.counters().rejected_full == 1);
}

TEST_CASE("peer_table: one record's size is bounded", "[presence]") {
  peer_table table;
  auto a = make(1, std::string(1000, 'n'));
  a.host = std::string(100000, 'h');
  for (int i = 0; i < 1000; ++i) a.subs.push_back("topic." + std::to_string(i));
  table.on_announce(a, t0);
  const auto* r = table.find(1);
  REQUIRE(r);
  CHECK(r->name.size() == peerbus::detail::wire::max_name);
  CHECK(r->host.size() == peerbus::detail::wire::max_host);
  CHECK(r->subs.size() == peerbus::detail::wire::max_heartbeat_subs);
  CHECK(r->subs_truncated);
  CHECK(r->subs.front() == "topic.0");

  auto big = make(2, "p");
  big.subs = {std::string(3000, 'a'), std::string(3000, 'b'), "c"};
  table.on_announce(big, t0);
  REQUIRE(table.find(2)->subs.size() == 1);  // byte budget: the second pattern does not fit
  CHECK(table.find(2)->subs_truncated);

  // Within the limits, nothing is touched.
  table.on_announce(make(3, "p", {"a", "b"}), t0);
  CHECK(table.find(3)->subs.size() == 2);
  CHECK_FALSE(table.find(3)->subs_truncated);

  // Refreshing with the same oversized announce is not a change.
  CHECK_FALSE(table.on_announce(a, t0 + 1s));
}

TEST_CASE("peer_table: event kind names", "[presence]") {
  using peerbus::detail::to_string;
  CHECK(std::string(to_string(peer_event_kind::joined)) == "joined");
  CHECK(std::string(to_string(peer_event_kind::left)) == "left");
  CHECK(std::string(to_string(peer_event_kind::expired)) == "expired");
  CHECK(std::string(to_string(peer_event_kind::updated)) == "updated");
}
