// tests/reliability/receive_stream_test.cpp: order, gaps, NACK timing, loss, bounds; full loop.
#include "reliability/receive_stream.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "reliability/fault_injector.hpp"
#include "reliability/send_window.hpp"

using namespace peerbus::detail;
using namespace std::chrono_literals;

namespace {

using time_point = rel_clock::time_point;
using duration = rel_clock::duration;
using ranges = std::vector<seq_range>;
using log_t = std::vector<std::string>;

// The fake clock: a time_point advanced by hand.
const time_point t0 = time_point{} + 1h;
const duration tick = duration(1);

std::string frame_for(std::uint64_t seq) {
  return "frame-" + std::to_string(seq);
}

// One receiver: the stream plus a log of what it handed on, in order ("5", "lost 6-7").
struct receiver {
  reliability_config cfg;
  std::mt19937_64 rng;
  receive_stream s;
  log_t log;

  explicit receiver(reliability_config c = {}, std::uint64_t first = 1, std::uint64_t seed = 1)
      : cfg(c), rng(seed), s(cfg, first, rng) {}

  // Offers seq's frame and drains, as the bus does.
  offer_result offer(std::uint64_t seq, time_point now) {
    const std::string f = frame_for(seq);
    const offer_result r = s.offer(seq, f, now);
    if (r == offer_result::deliver) log.push_back(std::to_string(seq));
    drain();
    return r;
  }
  void drain() {
    while (auto item = s.pop_ready()) {
      if (item->is_loss()) {
        CHECK(item->frame.empty());
        log.push_back("lost " + std::to_string(item->seqs.first) + "-" +
                      std::to_string(item->seqs.last));
      } else {
        CHECK(item->seqs.first == item->seqs.last);
        CHECK(item->frame == frame_for(item->seqs.first));
        log.push_back(std::to_string(item->seqs.first));
      }
    }
    CHECK_FALSE(s.has_ready());
  }
  log_t take_log() {
    log_t out;
    out.swap(log);
    return out;
  }
  gap_info gap(std::size_t i) const { return s.gaps().at(i); }
};

log_t seqs(std::uint64_t first, std::uint64_t last) {
  log_t out;
  for (auto s = first; s <= last; ++s) out.push_back(std::to_string(s));
  return out;
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<seq_range> {
  static std::string convert(const seq_range& r) {
    return "[" + std::to_string(r.first) + "," + std::to_string(r.last) + "]";
  }
};
}  // namespace Catch

// --- ordering and duplicates ---

TEST_CASE("receive_stream: in-order frames are delivered without buffering", "[reliability]") {
  receiver r;
  for (std::uint64_t s = 1; s <= 100; ++s) REQUIRE(r.offer(s, t0) == offer_result::deliver);
  CHECK(r.take_log() == seqs(1, 100));
  CHECK(r.s.next_expected() == 101);
  CHECK(r.s.highest_seen() == 100);
  CHECK(r.s.buffered_count() == 0);
  CHECK(r.s.gap_count() == 0);
  CHECK(r.s.next_deadline() == time_point::max());
  const auto& c = r.s.counters();
  CHECK(c.received == 100);
  CHECK(c.delivered == 100);
  CHECK(c.duplicates == 0);
  CHECK(c.gaps_detected == 0);
}

TEST_CASE("receive_stream: numbering may start anywhere", "[reliability]") {
  receiver r({}, 1000);
  CHECK(r.s.next_expected() == 1000);
  CHECK(r.s.highest_seen() == 999);
  CHECK(r.offer(999, t0) == offer_result::duplicate);
  CHECK(r.offer(1, t0) == offer_result::duplicate);
  CHECK(r.offer(1000, t0) == offer_result::deliver);
  CHECK(r.offer(1001, t0) == offer_result::deliver);
  CHECK(r.take_log() == log_t{"1000", "1001"});
}

TEST_CASE("receive_stream: first seq 0 is taken as 1, and seq 0 is a duplicate", "[reliability]") {
  receiver r({}, 0);
  CHECK(r.s.next_expected() == 1);
  CHECK(r.offer(0, t0) == offer_result::duplicate);
  CHECK(r.offer(1, t0) == offer_result::deliver);
}

TEST_CASE("receive_stream: reordered frames come out in order", "[reliability]") {
  receiver r;
  CHECK(r.offer(1, t0) == offer_result::deliver);
  CHECK(r.offer(3, t0) == offer_result::buffered);
  CHECK(r.offer(4, t0) == offer_result::buffered);
  CHECK(r.take_log() == log_t{"1"});
  CHECK(r.s.buffered_count() == 2);
  CHECK(r.s.buffered_bytes() == frame_for(3).size() + frame_for(4).size());
  CHECK(r.s.gaps().size() == 1);
  CHECK(r.gap(0).seqs == seq_range{2, 2});
  CHECK(r.offer(2, t0 + 1ms) == offer_result::deliver);
  CHECK(r.take_log() == log_t{"2", "3", "4"});
  CHECK(r.s.buffered_count() == 0);
  CHECK(r.s.buffered_bytes() == 0);
  CHECK(r.s.gap_count() == 0);
  CHECK(r.s.next_deadline() == time_point::max());
  const auto& c = r.s.counters();
  CHECK(c.delivered == 4);
  CHECK(c.reordered == 1);  // filled before any NACK: overtaken, not repaired
  CHECK(c.recovered == 0);
  CHECK(c.gaps_detected == 1);
  CHECK(c.nacks_sent == 0);
}

TEST_CASE("receive_stream: a reversed burst comes out in order", "[reliability]") {
  receiver r;
  for (std::uint64_t s = 50; s >= 2; --s) REQUIRE(r.offer(s, t0) == offer_result::buffered);
  CHECK(r.take_log().empty());
  CHECK(r.s.counters().gaps_detected == 1);  // one gap [1,49], cut down as frames arrive
  CHECK(r.s.gap_count() == 1);
  CHECK(r.offer(1, t0) == offer_result::deliver);
  CHECK(r.take_log() == seqs(1, 50));
}

TEST_CASE("receive_stream: duplicates are recognised wherever they fall", "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(3, t0);
  CHECK(r.offer(1, t0) == offer_result::duplicate);  // delivered
  CHECK(r.offer(3, t0) == offer_result::duplicate);  // buffered
  CHECK(r.offer(2, t0) == offer_result::deliver);
  CHECK(r.offer(2, t0) == offer_result::duplicate);
  CHECK(r.offer(3, t0) == offer_result::duplicate);  // drained
  CHECK(r.take_log() == log_t{"1", "2", "3"});
  CHECK(r.s.counters().duplicates == 4);
  CHECK(r.s.counters().received == 7);
}

TEST_CASE("receive_stream: a frame inside a gap splits it and keeps its schedule",
          "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(10, t0);  // gap [2,9]
  const time_point d = r.s.next_deadline();
  CHECK(r.s.due_nacks(d) == ranges{{2, 9}});
  r.offer(5, d + 1ms);
  REQUIRE(r.s.gaps().size() == 2);
  CHECK(r.gap(0).seqs == seq_range{2, 4});
  CHECK(r.gap(1).seqs == seq_range{6, 9});
  // Seq 5 came after the NACK: the sender is answering, so what is left starts its tries again
  // (a gap is given up only when the sender stops answering), on the same schedule.
  CHECK(r.gap(0).tries == 0);
  CHECK(r.gap(1).tries == 0);
  CHECK(r.gap(0).next_fire == d + 30ms);
  CHECK(r.gap(1).next_fire == d + 30ms);
  CHECK(r.s.counters().gaps_detected == 1);
  CHECK(r.s.due_nacks(d + 30ms) == ranges{{2, 4}, {6, 9}});
  r.offer(2, d + 31ms);  // cut at the front
  r.offer(9, d + 31ms);  // cut at the back
  CHECK(r.gap(0).seqs == seq_range{3, 4});
  CHECK(r.gap(1).seqs == seq_range{6, 8});
  CHECK(r.take_log() == log_t{"1", "2"});
  for (std::uint64_t s : {3u, 4u, 6u, 7u, 8u}) r.offer(s, d + 32ms);
  CHECK(r.take_log() == seqs(3, 10));
  CHECK(r.s.counters().recovered == 8);
  CHECK(r.s.next_deadline() == time_point::max());
}

TEST_CASE("receive_stream: a gap asked for in part asks for the rest a moment later",
          "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(1002, t0);  // gap [2,1001]
  const time_point d = r.s.next_deadline();
  CHECK(r.s.due_nacks(d, 100) == ranges{{2, 101}});  // a budget of 100 seqs
  REQUIRE(r.s.gaps().size() == 2);
  CHECK(r.gap(0).seqs == seq_range{2, 101});
  CHECK(r.gap(0).tries == 1);
  CHECK(r.gap(1).seqs == seq_range{102, 1001});
  CHECK(r.gap(1).tries == 0);
  // Not a whole retry interval later: as soon as the first part's repairs could be here.
  CHECK(r.s.next_deadline() == d + 1ms);
  CHECK(r.s.due_nacks(d + 1ms, 100) == ranges{{102, 201}});
}

// --- NACK timing ---

TEST_CASE("receive_stream: a gap is NACKed after a random delay within bounds", "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(3, t0);
  const time_point d = r.s.next_deadline();
  CHECK(d >= t0 + 1ms);
  CHECK(d <= t0 + 10ms);
  CHECK(r.s.due_nacks(t0).empty());
  CHECK(r.s.due_nacks(d - tick).empty());
  CHECK(r.s.due_nacks(d) == ranges{{2, 2}});
  CHECK(r.s.counters().nacks_sent == 1);
  CHECK(r.s.counters().nack_seqs_requested == 1);
  CHECK(r.s.next_deadline() == d + 30ms);
}

TEST_CASE("receive_stream: the first NACK delay is uniform from min to max and seeded",
          "[reliability]") {
  duration lo = duration::max(), hi = duration::min();
  std::map<std::uint64_t, duration> by_seed;
  for (std::uint64_t seed = 0; seed < 500; ++seed) {
    receiver r({}, 1, seed);
    r.offer(2, t0);
    const duration d = r.s.next_deadline() - t0;
    REQUIRE(d >= 1ms);
    REQUIRE(d <= 10ms);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
    by_seed[seed] = d;
  }
  CHECK(lo < 1100us);  // the whole range is used
  CHECK(hi > 9900us);
  for (std::uint64_t seed : {0u, 17u, 499u}) {  // the same seed draws the same delay
    receiver again({}, 1, seed);
    again.offer(2, t0);
    CHECK(again.s.next_deadline() - t0 == by_seed[seed]);
  }

  SECTION("min == max gives exactly that delay") {
    reliability_config cfg;
    cfg.nack_delay_min = cfg.nack_delay_max = 4ms;
    receiver r(cfg);
    r.offer(2, t0);
    CHECK(r.s.next_deadline() == t0 + 4ms);
  }
}

TEST_CASE("receive_stream: unanswered NACKs repeat with backoff, then the gap is lost",
          "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(3, t0);
  r.offer(4, t0);
  time_point fire = r.s.next_deadline();
  // The defaults: 30 ms, doubled, capped at 50 ms; 60 NACKs.
  for (std::size_t i = 0; i < 60; ++i) {
    REQUIRE(r.s.next_deadline() == fire);
    REQUIRE(r.s.due_nacks(fire - tick).empty());
    REQUIRE(r.s.due_nacks(fire) == ranges{{2, 2}});
    REQUIRE(r.gap(0).tries == i + 1);
    fire += i == 0 ? 30ms : 50ms;
  }
  CHECK(r.s.next_deadline() == fire);  // the 60th NACK gets its 50 ms to be answered
  CHECK(r.s.due_nacks(fire - tick).empty());
  r.drain();
  CHECK(r.take_log() == log_t{"1"});

  CHECK(r.s.due_nacks(fire).empty());  // gives up: no NACK, a loss instead
  CHECK(r.s.next_deadline() == time_point::max());
  CHECK(r.s.has_ready());
  r.drain();
  CHECK(r.take_log() == log_t{"lost 2-2", "3", "4"});
  CHECK(r.offer(5, fire) == offer_result::deliver);    // delivery goes on
  CHECK(r.offer(2, fire) == offer_result::duplicate);  // too late now
  CHECK(r.take_log() == log_t{"5"});
  const auto& c = r.s.counters();
  CHECK(c.nacks_sent == 60);
  CHECK(c.given_up == 1);
  CHECK(c.lost == 1);
  CHECK(c.delivered == 4);
}

TEST_CASE("receive_stream: backoff factor, cap and tries follow the config", "[reliability]") {
  reliability_config cfg;
  cfg.nack_delay_min = cfg.nack_delay_max = 2ms;
  cfg.nack_retry = 10ms;
  cfg.nack_backoff = 3.0;
  cfg.nack_retry_max = 100ms;
  cfg.nack_max_tries = 4;
  receiver r(cfg);
  r.offer(3, t0);  // gap [1,2]
  std::vector<time_point> fired;
  for (int i = 0; i < 10 && r.s.next_deadline() != time_point::max(); ++i) {
    const time_point at = r.s.next_deadline();
    fired.push_back(at);
    r.s.due_nacks(at);
  }
  // NACKs at 2, 12, 42, 132 ms; given up 100 ms (the cap) after the 4th.
  CHECK(fired == std::vector<time_point>{t0 + 2ms, t0 + 12ms, t0 + 42ms, t0 + 132ms, t0 + 232ms});
  CHECK(r.s.counters().nacks_sent == 4);
  r.drain();
  CHECK(r.take_log() == log_t{"lost 1-2", "3"});

  SECTION("backoff 1 keeps the interval constant") {
    cfg.nack_backoff = 1.0;
    receiver k(cfg);
    k.offer(2, t0);
    k.s.due_nacks(t0 + 2ms);
    k.s.due_nacks(t0 + 12ms);
    CHECK(k.s.next_deadline() == t0 + 22ms);
  }
}

TEST_CASE("receive_stream: due NACKs are merged when contiguous", "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.s.on_advert(3, 0, t0);  // gap [2,3]
  const time_point d = r.s.next_deadline();
  CHECK(r.s.due_nacks(d) == ranges{{2, 3}});
  r.offer(6, d);  // [2,3] was NACKed already, so [4,5] is a separate gap with its own timer
  REQUIRE(r.s.gaps().size() == 2);
  CHECK(r.gap(1).seqs == seq_range{4, 5});
  CHECK(r.s.due_nacks(d + 30ms) == ranges{{2, 5}});
  CHECK(r.s.counters().nacks_sent == 2);
  CHECK(r.s.counters().nack_seqs_requested == 6);
}

TEST_CASE("receive_stream: one call returns at most max_ranges_per_nack, earliest first",
          "[reliability]") {
  reliability_config cfg;
  cfg.max_ranges_per_nack = 3;
  receiver r(cfg);
  for (std::uint64_t s = 1; s <= 11; s += 2) r.offer(s, t0);  // gaps 2, 4, 6, 8, 10
  auto g = r.s.gaps();
  REQUIRE(g.size() == 5);
  std::sort(g.begin(), g.end(), [](const gap_info& a, const gap_info& b) {
    return a.next_fire != b.next_fire ? a.next_fire < b.next_fire : a.seqs.first < b.seqs.first;
  });
  ranges earliest;
  for (std::size_t i = 0; i < 3; ++i) earliest.push_back(g[i].seqs);
  std::sort(earliest.begin(), earliest.end(),
            [](const seq_range& a, const seq_range& b) { return a.first < b.first; });

  const time_point now = t0 + 10ms;
  CHECK(r.s.due_nacks(now) == earliest);
  CHECK(r.s.next_deadline() <= now);  // more are due: call again
  const ranges rest = r.s.due_nacks(now);
  CHECK(rest.size() == 2);
  CHECK(r.s.next_deadline() > now);
  CHECK(r.s.due_nacks(now).empty());
  CHECK(r.s.counters().nacks_sent == 5);
}

// --- suppression by other receivers' NACKs ---

TEST_CASE("receive_stream: a foreign NACK holds back ours for the overlap only", "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(10, t0);  // gap [2,9]
  const time_point d = r.s.next_deadline();
  r.s.on_foreign_nack(seq_range{4, 5}, t0 + 500us);
  REQUIRE(r.s.gaps().size() == 3);
  CHECK(r.gap(0).seqs == seq_range{2, 3});
  CHECK(r.gap(1).seqs == seq_range{4, 5});
  CHECK(r.gap(2).seqs == seq_range{6, 9});
  CHECK(r.gap(0).next_fire == d);
  CHECK(r.gap(1).next_fire == t0 + 500us + 30ms);
  CHECK(r.gap(1).tries == 0);  // not counted as a try
  CHECK(r.gap(2).next_fire == d);
  CHECK(r.s.counters().suppressed == 1);

  CHECK(r.s.due_nacks(t0 + 10ms) == ranges{{2, 3}, {6, 9}});
  CHECK(r.s.due_nacks(t0 + 30ms + 500us - tick).empty());
  CHECK(r.s.due_nacks(t0 + 30ms + 500us) == ranges{{4, 5}});
}

TEST_CASE("receive_stream: one repair serves every receiver that missed it", "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(3, t0);
  r.s.on_foreign_nack(ranges{{2, 2}}, t0);  // someone else asked first
  CHECK(r.s.next_deadline() == t0 + 30ms);
  CHECK(r.s.due_nacks(t0 + 10ms).empty());
  CHECK(r.offer(2, t0 + 1ms) == offer_result::deliver);  // the repair they triggered
  CHECK(r.take_log() == log_t{"1", "2", "3"});
  CHECK(r.s.next_deadline() == time_point::max());
  CHECK(r.s.counters().nacks_sent == 0);
  CHECK(r.s.counters().recovered == 1);  // asked for, if not by us
}

TEST_CASE("receive_stream: foreign NACKs that change nothing are ignored", "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(5, t0);  // gap [2,4]
  const time_point d = r.s.next_deadline();
  r.s.on_foreign_nack(seq_range{6, 9}, t0);  // we miss none of these
  r.s.on_foreign_nack(seq_range{1, 1}, t0);  // we have it
  r.s.on_foreign_nack(seq_range{4, 2}, t0);  // malformed
  r.s.on_foreign_nack(ranges{}, t0);
  CHECK(r.s.gap_count() == 1);
  CHECK(r.s.next_deadline() == d);
  CHECK(r.s.counters().suppressed == 0);

  r.s.on_foreign_nack(seq_range{0, 100}, t0);  // covers the whole gap: no split
  CHECK(r.s.gap_count() == 1);
  CHECK(r.s.next_deadline() == t0 + 30ms);
  r.s.on_foreign_nack(seq_range{0, 100}, t0);  // already held back that far
  CHECK(r.s.next_deadline() == t0 + 30ms);
  CHECK(r.s.counters().suppressed == 1);
}

TEST_CASE("receive_stream: suppression after our own NACK uses the grown interval",
          "[reliability]") {
  reliability_config cfg;
  cfg.nack_retry_max = 500ms;  // room for the interval to grow past its first value
  receiver r(cfg);
  r.offer(2, t0);  // gap [1,1]
  const time_point d = r.s.next_deadline();
  r.s.due_nacks(d);  // try 1: next at d + 30 ms; the interval after the next try is 60 ms
  CHECK(r.s.next_deadline() == d + 30ms);
  r.s.on_foreign_nack(seq_range{1, 1}, d + 5ms);
  CHECK(r.s.next_deadline() == d + 65ms);
  CHECK(r.gap(0).tries == 1);
}

TEST_CASE("receive_stream: foreign NACKs cannot grow the gap table past its bound",
          "[reliability]") {
  reliability_config cfg;
  cfg.max_reorder = 2;
  receiver r(cfg);
  r.offer(1, t0);
  r.offer(20, t0);  // gap [2,19]
  for (std::uint64_t s = 3; s <= 19; s += 2) r.s.on_foreign_nack(seq_range{s, s}, t0);
  CHECK(r.s.gap_count() <= 2);
  // Every missing seq is still tracked (held back as a whole instead of split).
  std::uint64_t missing = 0;
  for (const auto& g : r.s.gaps()) missing += g.seqs.count();
  CHECK(missing == 18);
}

// --- adverts: tail loss, unavailable seqs, implausible claims ---

TEST_CASE("receive_stream: an advert reveals tail loss, which is NACKed", "[reliability]") {
  receiver r;
  for (std::uint64_t s = 1; s <= 3; ++s) r.offer(s, t0);
  r.s.on_advert(3, 1, t0);  // nothing new
  CHECK(r.s.gap_count() == 0);
  r.s.on_advert(2, 1, t0);  // stale
  CHECK(r.s.gap_count() == 0);
  CHECK(r.s.next_deadline() == time_point::max());

  r.s.on_advert(5, 1, t0);
  CHECK(r.s.highest_seen() == 5);
  REQUIRE(r.s.gap_count() == 1);
  CHECK(r.gap(0).seqs == seq_range{4, 5});
  const time_point d = r.s.next_deadline();
  CHECK(d >= t0 + 1ms);
  CHECK(d <= t0 + 10ms);
  r.s.on_advert(7, 1, t0 + 1ms);  // a later advert before any NACK extends the same gap
  CHECK(r.s.gap_count() == 1);
  CHECK(r.gap(0).seqs == seq_range{4, 7});
  CHECK(r.s.next_deadline() == d);
  CHECK(r.s.due_nacks(d) == ranges{{4, 7}});
  for (std::uint64_t s = 4; s <= 7; ++s) CHECK(r.offer(s, d + 1ms) == offer_result::deliver);
  CHECK(r.take_log() == seqs(1, 7));
  CHECK(r.s.counters().recovered == 4);
  CHECK(r.s.next_deadline() == time_point::max());
}

TEST_CASE("receive_stream: an advert's lowest held seq makes older gaps lost at once",
          "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(5, t0);           // gap [2,4], 5 buffered
  r.s.on_advert(5, 4, t0);  // the sender no longer holds 2 and 3
  r.drain();
  CHECK(r.take_log() == log_t{"1", "lost 2-3"});
  CHECK(r.s.counters().unavailable == 2);
  REQUIRE(r.s.gap_count() == 1);
  CHECK(r.gap(0).seqs == seq_range{4, 4});
  CHECK_FALSE(r.gap(0).lost);
  CHECK(r.offer(4, t0 + 1ms) == offer_result::deliver);
  CHECK(r.take_log() == log_t{"4", "5"});
  CHECK(r.s.counters().lost == 2);

  SECTION("lowest_held 0 means unknown") {
    r.offer(8, t0);
    r.s.on_advert(8, 0, t0);
    r.drain();
    CHECK(r.take_log().empty());
    CHECK(r.s.gap_count() == 1);
  }
  SECTION("lowest_held at or below next expected changes nothing") {
    r.offer(8, t0);
    r.s.on_advert(8, 6, t0);
    r.drain();
    CHECK(r.take_log().empty());
    CHECK(r.s.gap_count() == 1);
  }
}

TEST_CASE("receive_stream: lowest held beyond a new tail gap cuts it", "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(4, t0);           // gap [2,3], 4 buffered
  r.s.on_advert(6, 6, t0);  // 5 and 6 exist; only 6 is still held
  r.drain();
  CHECK(r.take_log() == log_t{"1", "lost 2-3", "4", "lost 5-5"});
  REQUIRE(r.s.gap_count() == 1);
  CHECK(r.gap(0).seqs == seq_range{6, 6});
  CHECK(r.offer(6, t0 + 1ms) == offer_result::deliver);
  CHECK(r.s.counters().unavailable == 3);
}

TEST_CASE("receive_stream: implausible adverts and frames are ignored and counted",
          "[reliability]") {
  receiver r;
  r.offer(1, t0);
  const std::uint64_t max_advance = r.cfg.max_advance;
  REQUIRE(max_advance == (std::uint64_t{1} << 22));

  r.s.on_advert(std::uint64_t{1} << 60, 0, t0);  // forged heartbeat
  r.s.on_advert(1 + max_advance + 1, 1, t0);
  r.s.on_advert(5, 7, t0);  // lowest above highest
  r.s.on_advert(std::uint64_t{1} << 60, std::uint64_t{1} << 59, t0);
  CHECK(r.s.counters().implausible_adverts == 4);
  CHECK(r.s.highest_seen() == 1);
  CHECK(r.s.gap_count() == 0);
  CHECK(r.s.next_deadline() == time_point::max());
  r.drain();
  CHECK(r.take_log() == log_t{"1"});  // and nothing was declared lost

  CHECK(r.offer(std::uint64_t{1} << 60, t0) == offer_result::implausible);
  CHECK(r.offer(1 + max_advance + 1, t0) == offer_result::implausible);
  CHECK(r.s.counters().implausible_frames == 2);
  CHECK(r.s.buffered_count() == 0);
  CHECK(r.offer(2, t0) == offer_result::deliver);

  SECTION("exactly max_advance ahead is plausible, and costs one gap entry") {
    r.s.on_advert(2 + max_advance, 0, t0);
    CHECK(r.s.highest_seen() == 2 + max_advance);
    CHECK(r.s.gap_count() == 1);
    CHECK(r.s.due_nacks(t0 + 10ms) == ranges{{3, 2 + max_advance}});
  }
}

TEST_CASE("receive_stream: a new stream does not NACK a first jump beyond max_first_gap",
          "[reliability]") {
  reliability_config cfg;
  REQUIRE(cfg.max_first_gap == 16384);
  cfg.max_first_gap = 100;

  SECTION("a first frame far ahead: the seqs before it are lost at once, never NACKed") {
    receiver r(cfg);
    CHECK(r.offer(1000000, t0) == offer_result::buffered);
    CHECK(r.take_log() == log_t{"lost 1-999999", "1000000"});
    CHECK(r.s.counters().unasked == 999999);
    CHECK(r.s.next_deadline() == time_point::max());
    CHECK(r.s.due_nacks(t0 + 1s).empty());
    // Once a frame is in, later gaps are NACKed as ever.
    CHECK(r.offer(1000500, t0) == offer_result::buffered);
    CHECK(r.s.due_nacks(t0 + 10ms) == ranges{{1000001, 1000499}});
  }
  SECTION("an advert before any frame: the same") {
    receiver r(cfg);
    r.s.on_advert(5000, 1, t0);
    r.drain();
    CHECK(r.take_log() == log_t{"lost 1-5000"});
    CHECK(r.s.due_nacks(t0 + 1s).empty());
  }
  SECTION("within the bound, the first jump is NACKed like any gap") {
    receiver r(cfg, 11);
    CHECK(r.offer(110, t0) == offer_result::buffered);
    CHECK(r.take_log().empty());
    CHECK(r.s.due_nacks(t0 + 10ms) == ranges{{11, 109}});
    CHECK(r.s.counters().unasked == 0);
  }
}

TEST_CASE("receive_stream: a NACK budget asks for the first seqs and defers the rest",
          "[reliability]") {
  reliability_config cfg;
  cfg.nack_delay_min = cfg.nack_delay_max = 5ms;  // both gaps due at once: seq order decides
  receiver r(cfg);
  r.offer(1, t0);
  r.offer(1000, t0);  // gap 2-999
  r.offer(2000, t0);  // gap 1001-1999
  const time_point t = t0 + 10ms;

  SECTION("a long gap is asked for in part, and the try counts") {
    CHECK(r.s.due_nacks(t, 100) == ranges{{2, 101}});
    CHECK(r.s.counters().nack_seqs_requested == 100);
    CHECK(r.s.counters().nacks_deferred == 1);  // the second gap
    CHECK(r.gap(0).tries == 1);
    CHECK(r.gap(1).tries == 0);
    CHECK(r.s.next_deadline() <= t);  // still due: the caller calls again when it has budget
  }
  SECTION("no budget: nothing is asked, no try is spent, each hold-back counted once") {
    for (int i = 0; i < 10; ++i) CHECK(r.s.due_nacks(t + std::chrono::milliseconds(i), 0).empty());
    CHECK(r.s.counters().nacks_deferred == 2);
    CHECK(r.gap(0).tries == 0);
    CHECK(r.gap(1).tries == 0);
    // Budget back: both are asked for in full.
    CHECK(r.s.due_nacks(t + 20ms, 10000) == ranges{{2, 999}, {1001, 1999}});
    CHECK(r.gap(0).tries == 1);
  }
  SECTION("deferred gaps still fill from frames") {
    CHECK(r.s.due_nacks(t, 0).empty());
    r.offer(2, t);
    CHECK(r.take_log() == log_t{"1", "2"});
    CHECK(r.s.gaps().front().seqs == seq_range{3, 999});
  }
}

TEST_CASE("receive_stream: shed gives up the buffer and the gaps as one lost run",
          "[reliability]") {
  receiver r;
  r.offer(1, t0);
  r.offer(5, t0);
  r.offer(6, t0);
  r.offer(9, t0);
  REQUIRE(r.s.buffered_count() == 3);
  const auto bytes = r.s.buffered_bytes();
  CHECK(r.s.shed() == bytes);
  CHECK(r.s.buffered_count() == 0);
  CHECK(r.s.buffered_bytes() == 0);
  CHECK(r.s.next_deadline() == time_point::max());
  r.drain();
  CHECK(r.take_log() == log_t{"1", "lost 2-9"});
  CHECK(r.s.counters().dropped_for_space == 3 + 2 + 3);  // gaps 2-4 and 7-8, frames 5, 6 and 9
  // The stream goes on from there.
  CHECK(r.offer(10, t0) == offer_result::deliver);
  CHECK(r.s.shed() == 0);
  r.drain();
  CHECK(r.take_log() == log_t{"10"});
}

TEST_CASE("receive_stream: a huge gap costs O(1) memory", "[reliability]") {
  reliability_config cfg;
  cfg.max_advance = ~std::uint64_t{0};
  cfg.nack_max_tries = 1;
  receiver r(cfg);
  r.offer(1, t0);
  const std::uint64_t far = std::uint64_t{1} << 60;
  r.s.on_advert(far, 0, t0);
  CHECK(r.s.gap_count() == 1);
  CHECK(r.offer(far / 2, t0) == offer_result::buffered);
  CHECK(r.s.gap_count() == 2);
  CHECK(r.s.due_nacks(t0 + 10ms) == ranges{{2, far / 2 - 1}, {far / 2 + 1, far}});
  CHECK(r.s.due_nacks(t0 + 40ms).empty());  // both given up
  r.drain();
  CHECK(r.take_log() == log_t{"1", "lost 2-" + std::to_string(far / 2 - 1), std::to_string(far / 2),
                              "lost " + std::to_string(far / 2 + 1) + "-" + std::to_string(far)});
  CHECK(r.s.counters().lost == far - 2);
  CHECK(r.s.next_expected() == far + 1);
}

// --- loss reporting ---

TEST_CASE("receive_stream: adjacent lost runs are reported as one", "[reliability]") {
  reliability_config cfg;
  cfg.nack_max_tries = 1;
  receiver r(cfg);
  r.offer(1, t0);
  r.offer(6, t0);           // gap [2,5]
  r.s.on_advert(6, 4, t0);  // [2,3] unavailable, [4,5] still pending
  const time_point d = r.s.next_deadline();
  r.s.due_nacks(d);
  r.s.due_nacks(d + 30ms);  // [4,5] given up
  r.drain();
  CHECK(r.take_log() == log_t{"1", "lost 2-5", "6"});
  CHECK(r.s.counters().lost == 4);
  CHECK(r.s.counters().unavailable == 2);
  CHECK(r.s.counters().given_up == 2);
}

TEST_CASE("receive_stream: a late frame still fills a gap declared lost but not yet drained",
          "[reliability]") {
  reliability_config cfg;
  cfg.nack_max_tries = 1;
  receiver r(cfg);
  r.offer(1, t0);
  r.offer(3, t0);
  const time_point d = r.s.next_deadline();
  r.s.due_nacks(d);
  r.s.due_nacks(d + 30ms);  // given up; not drained yet
  CHECK(r.s.has_ready());
  CHECK(r.offer(2, d + 31ms) == offer_result::deliver);
  CHECK(r.take_log() == log_t{"1", "2", "3"});
  CHECK(r.s.counters().lost == 0);
  CHECK(r.s.counters().given_up == 1);
  CHECK(r.s.counters().recovered == 1);
}

TEST_CASE("receive_stream: nothing is ready while the next seq is awaited", "[reliability]") {
  receiver r;
  CHECK_FALSE(r.s.has_ready());
  CHECK_FALSE(r.s.pop_ready());
  r.s.offer(2, "x", t0);
  CHECK_FALSE(r.s.has_ready());
  CHECK_FALSE(r.s.pop_ready());
}

// --- memory bounds ---

TEST_CASE("receive_stream: a full reorder buffer gives up the oldest gap", "[reliability]") {
  reliability_config cfg;
  cfg.max_reorder = 4;
  receiver r(cfg);
  r.offer(1, t0);
  for (std::uint64_t s = 3; s <= 6; ++s) CHECK(r.offer(s, t0) == offer_result::buffered);
  CHECK(r.s.buffered_count() == 4);
  CHECK(r.take_log() == log_t{"1"});
  CHECK(r.offer(7, t0) == offer_result::buffered);  // 5 > 4: gap [2] goes
  CHECK(r.take_log() == log_t{"lost 2-2", "3", "4", "5", "6", "7"});
  CHECK(r.s.buffered_count() == 0);
  CHECK(r.s.counters().dropped_for_space == 1);
  CHECK(r.s.next_deadline() == time_point::max());

  SECTION("only as many gaps as needed are given up") {
    // 8 next; gaps 8, 10, 12 with frames 9, 11, 13, 14 behind them.
    for (std::uint64_t s : {9u, 11u, 13u}) r.offer(s, t0);
    CHECK(r.offer(14, t0) == offer_result::buffered);  // 4 frames: at the bound, fine
    CHECK(r.take_log().empty());
    CHECK(r.offer(15, t0) == offer_result::buffered);  // 5: giving up 8 frees 9
    CHECK(r.take_log() == log_t{"lost 8-8", "9"});
    CHECK(r.s.buffered_count() == 4);
    CHECK(r.s.gap_count() == 2);
    CHECK(r.offer(10, t0) == offer_result::deliver);
    CHECK(r.take_log() == log_t{"10", "11"});
  }
}

TEST_CASE("receive_stream: the byte bound gives up gaps too", "[reliability]") {
  reliability_config cfg;
  cfg.max_reorder_bytes = 3 * frame_for(10).size();
  receiver r(cfg);
  r.offer(1, t0);
  r.offer(3, t0);
  r.offer(5, t0);
  r.offer(10, t0);  // frames 3, 5, 10: at the byte bound
  CHECK(r.take_log() == log_t{"1"});
  r.offer(11, t0);
  CHECK(r.take_log() == log_t{"lost 2-2", "3"});
  CHECK(r.s.buffered_bytes() <= cfg.max_reorder_bytes);

  SECTION("a single frame larger than the bound is still delivered") {
    reliability_config tiny;
    tiny.max_reorder_bytes = 2;
    receiver t(tiny);
    CHECK(t.offer(3, t0) == offer_result::buffered);
    CHECK(t.take_log() == log_t{"lost 1-2", "3"});
  }
}

TEST_CASE("receive_stream: a caller that does not drain gets overflow, not unbounded memory",
          "[reliability]") {
  reliability_config cfg;
  cfg.max_reorder = 2;
  receiver r(cfg);
  r.offer(1, t0);
  CHECK(r.s.offer(3, "3", t0) == offer_result::buffered);
  CHECK(r.s.offer(4, "4", t0) == offer_result::buffered);
  CHECK(r.s.offer(5, "5", t0) == offer_result::buffered);  // gives up 2; 3, 4, 5 ready
  CHECK(r.s.has_ready());
  CHECK(r.s.offer(7, "7", t0) == offer_result::overflow);
  CHECK(r.s.buffered_count() == 3);
  CHECK(r.s.counters().overflows == 1);
  CHECK(r.s.highest_seen() == 7);  // 6 and 7 are now missing, to be NACKed
  REQUIRE(r.s.gap_count() == 2);
  CHECK(r.gap(1).seqs == seq_range{6, 7});
  std::vector<std::uint64_t> drained;
  while (auto item = r.s.pop_ready()) drained.push_back(item->seqs.first);
  CHECK(drained == std::vector<std::uint64_t>{2, 3, 4, 5});
  CHECK(r.offer(7, t0) == offer_result::buffered);
  CHECK(r.offer(6, t0) == offer_result::deliver);
  CHECK(r.take_log() == log_t{"1", "6", "7"});
}

TEST_CASE("receive_stream: adverts of a silent sender cannot pile up gap entries",
          "[reliability]") {
  reliability_config cfg;
  cfg.max_reorder = 4;
  receiver r(cfg);
  r.offer(1, t0);
  time_point now = t0;
  for (std::uint64_t h = 2; h <= 40; ++h) {
    r.s.on_advert(h, 0, now);
    now += 10ms;
    r.s.due_nacks(now);  // NACKed, so the next advert opens a new entry
    r.drain();
    REQUIRE(r.s.gap_count() <= 4);
  }
  CHECK(r.s.counters().dropped_for_space > 0);
}

TEST_CASE("receive_stream: unusable config values are clamped", "[reliability]") {
  reliability_config bad;
  bad.nack_delay_min = -5ms;
  bad.nack_delay_max = -10ms;
  bad.nack_retry = 0ms;
  bad.nack_backoff = 0.5;
  bad.nack_retry_max = 0ms;
  bad.nack_max_tries = 0;
  bad.max_reorder = 0;
  bad.max_ranges_per_nack = 0;
  CHECK_FALSE(validate(bad).empty());
  std::mt19937_64 rng(1);
  receive_stream s(bad, 1, rng);
  CHECK(s.config().nack_delay_min == 0ms);
  CHECK(s.config().nack_delay_max == 0ms);
  CHECK(s.config().nack_retry > 0ms);
  CHECK(s.config().nack_backoff == 1.0);
  CHECK(s.config().nack_max_tries == 1);
  CHECK(s.config().max_reorder == 1);
  CHECK(s.config().max_ranges_per_nack == 1);
  s.offer(2, "x", t0);
  CHECK(s.next_deadline() == t0);
  CHECK(s.due_nacks(t0) == ranges{{1, 1}});
  CHECK(s.next_deadline() > t0);
}

TEST_CASE("offer_result: every value has a name", "[reliability]") {
  CHECK(std::string(to_string(offer_result::deliver)) == "deliver");
  CHECK(std::string(to_string(offer_result::buffered)) == "buffered");
  CHECK(std::string(to_string(offer_result::duplicate)) == "duplicate");
  CHECK(std::string(to_string(offer_result::overflow)) == "overflow");
  CHECK(std::string(to_string(offer_result::implausible)) == "implausible");
}

// --- the whole loop: sender, lossy reordering network, NACKs, repairs, heartbeats ---

namespace {

struct sim_params {
  std::uint64_t messages = 10000;
  double drop = 0.3;         // fraction of datagrams lost, per datagram and receiver
  bool lossy_repair = true;  // whether repairs, NACKs and heartbeats are dropped as well
  int receivers = 1;
  reliability_config cfg;
  std::uint64_t seed = 1;
  duration send_every = 50us;
  duration latency_min = 50us;  // a random latency per datagram reorders the stream
  duration latency_max = 3ms;
  duration heartbeat = 50ms;
  duration time_limit = 600s;
};

struct sim_receiver {
  std::vector<std::pair<bool, seq_range>> out;  // (is_loss, seqs) in the order handed on
  stream_counters counters;
  std::uint64_t next_expected = 0;
};

struct sim_result {
  std::vector<sim_receiver> rx;
  bool finished = false;
  duration took{};
  std::uint64_t repairs = 0;
  std::uint64_t repairs_held_off = 0;
  std::uint64_t unavailable_adverts = 0;
};

sim_result simulate(const sim_params& p) {
  struct event {
    enum class kind { data, nack, advert } what = kind::data;
    int to = -1;  // receiver index; -1 is the sender
    int from = -1;
    std::uint64_t seq = 0;
    std::vector<seq_range> ranges;
    std::uint64_t highest = 0, lowest = 0;
  };
  std::multimap<time_point, event> queue;  // equal times stay in insertion order
  std::mt19937_64 net_rng(p.seed);
  fault_injector original_drops(p.drop, p.seed + 1);
  fault_injector control_drops(p.lossy_repair ? p.drop : 0.0, p.seed + 2);
  const auto latency = [&] {
    const auto span = static_cast<std::uint64_t>((p.latency_max - p.latency_min).count());
    return p.latency_min + duration(static_cast<duration::rep>(net_rng() % (span + 1)));
  };

  send_window window(p.cfg.send_window_max_count, p.cfg.send_window_max_bytes);
  std::vector<std::mt19937_64> rngs;
  for (int i = 0; i < p.receivers; ++i)
    rngs.emplace_back(p.seed * 1000 + static_cast<std::uint64_t>(i));
  std::vector<receive_stream> streams;
  for (int i = 0; i < p.receivers; ++i)
    streams.emplace_back(p.cfg, 1, rngs[static_cast<std::size_t>(i)]);
  sim_result res;
  res.rx.resize(static_cast<std::size_t>(p.receivers));

  time_point now = t0;
  const auto multicast = [&](event e, fault_injector& drops, int skip) {
    for (int i = 0; i < p.receivers; ++i) {
      if (i == skip || drops.drop()) continue;
      e.to = i;
      queue.emplace(now + latency(), e);
    }
  };
  const auto send_data = [&](std::uint64_t seq, fault_injector& drops) {
    event e;
    e.seq = seq;
    multicast(e, drops, -1);
  };
  const auto send_advert = [&] {
    event e;
    e.what = event::kind::advert;
    e.highest = window.highest_pushed();
    e.lowest = window.lowest();
    multicast(e, control_drops, -1);
  };
  const auto drain = [&](int i) {
    auto& s = streams[static_cast<std::size_t>(i)];
    auto& r = res.rx[static_cast<std::size_t>(i)];
    while (auto item = s.pop_ready()) {
      if (!item->is_loss()) REQUIRE(item->frame == frame_for(item->seqs.first));
      r.out.emplace_back(item->is_loss(), item->seqs);
    }
    REQUIRE(s.buffered_count() <= p.cfg.max_reorder);
    REQUIRE(s.buffered_bytes() <= p.cfg.max_reorder_bytes);
  };

  std::uint64_t next_seq = 1;
  time_point next_send = t0;
  time_point next_heartbeat = t0 + p.heartbeat;
  for (;;) {
    bool all_done = next_seq > p.messages;
    for (const auto& s : streams) all_done = all_done && s.next_expected() > p.messages;
    if (all_done) {
      res.finished = true;
      break;
    }
    // The next thing to happen: a send, a heartbeat, a datagram arriving, or a NACK timer.
    time_point at = next_heartbeat;
    int what = 0;  // 0 heartbeat, 1 send, 2 datagram, 3 + i: timer of receiver i
    if (next_seq <= p.messages && next_send < at) at = next_send, what = 1;
    if (!queue.empty() && queue.begin()->first < at) at = queue.begin()->first, what = 2;
    for (int i = 0; i < p.receivers; ++i) {
      const time_point d = streams[static_cast<std::size_t>(i)].next_deadline();
      if (d < at) at = d, what = 3 + i;
    }
    REQUIRE(at >= now);
    now = at;
    if (now - t0 > p.time_limit) break;

    if (what == 0) {
      send_advert();
      next_heartbeat += p.heartbeat;
    } else if (what == 1) {
      window.push(next_seq, frame_for(next_seq));
      send_data(next_seq, original_drops);
      ++next_seq;
      next_send += p.send_every;
    } else if (what == 2) {
      const event e = queue.begin()->second;
      queue.erase(queue.begin());
      if (e.to < 0) {  // a NACK reaches the sender
        for (const seq_range& r : e.ranges) {
          const std::uint64_t lo = std::max(r.first, window.lowest());
          const std::uint64_t hi = std::min(r.last, window.highest());
          for (std::uint64_t s = lo; window.size() != 0 && s <= hi; ++s) {
            if (window.may_repair(s, now, p.cfg.repair_holdoff)) {
              REQUIRE(window.find(s));
              send_data(s, control_drops);
              ++res.repairs;
            }
          }
          if (r.first < window.lowest()) {
            send_advert();  // tell them what is gone rather than let them retry for seconds
            ++res.unavailable_adverts;
          }
        }
        continue;
      }
      auto& s = streams[static_cast<std::size_t>(e.to)];
      switch (e.what) {
        case event::kind::data: {
          const std::string f = frame_for(e.seq);
          if (s.offer(e.seq, f, now) == offer_result::deliver)
            res.rx[static_cast<std::size_t>(e.to)].out.push_back({false, {e.seq, e.seq}});
          break;
        }
        case event::kind::advert:
          s.on_advert(e.highest, e.lowest, now);
          break;
        case event::kind::nack:
          s.on_foreign_nack(e.ranges, now);
          break;
      }
      drain(e.to);
    } else {
      const int i = what - 3;
      auto& s = streams[static_cast<std::size_t>(i)];
      const ranges nack = s.due_nacks(now);
      REQUIRE(nack.size() <= p.cfg.max_ranges_per_nack);
      drain(i);
      if (nack.empty()) continue;
      // A NACK is multicast: the sender repairs, the other receivers hold theirs back.
      event e;
      e.what = event::kind::nack;
      e.from = i;
      e.ranges = nack;
      if (!control_drops.drop()) queue.emplace(now + latency(), e);
      multicast(e, control_drops, i);
    }
  }
  res.took = now - t0;
  res.repairs_held_off = window.repairs_held_off();
  for (int i = 0; i < p.receivers; ++i) {
    res.rx[static_cast<std::size_t>(i)].counters = streams[static_cast<std::size_t>(i)].counters();
    res.rx[static_cast<std::size_t>(i)].next_expected =
        streams[static_cast<std::size_t>(i)].next_expected();
  }
  return res;
}

// Every seq 1..n appears exactly once, in order, as a frame or inside a loss.
void check_exactly_once_in_order(const sim_receiver& r, std::uint64_t n) {
  std::uint64_t expect = 1;
  for (const auto& [loss, seqs] : r.out) {
    REQUIRE(seqs.first == expect);
    REQUIRE(seqs.first <= seqs.last);
    if (!loss) REQUIRE(seqs.first == seqs.last);
    expect = seqs.last + 1;
  }
  CHECK(expect == n + 1);
}

std::uint64_t frames_delivered(const sim_receiver& r) {
  std::uint64_t n = 0;
  for (const auto& e : r.out) n += e.first ? 0 : 1;
  return n;
}

}  // namespace

TEST_CASE("receive_stream: 10,000 frames, 30% dropped and reordered, all delivered once in order",
          "[reliability]") {
  sim_params p;
  p.lossy_repair = false;  // the first transmissions suffer; NACKs, repairs, heartbeats get through
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    p.seed = seed;
    const sim_result res = simulate(p);
    REQUIRE(res.finished);
    const sim_receiver& r = res.rx[0];
    check_exactly_once_in_order(r, p.messages);
    CHECK(frames_delivered(r) == p.messages);
    CHECK(r.counters.delivered == p.messages);
    CHECK(r.counters.lost == 0);
    CHECK(r.counters.recovered > 2500);  // about 30% of 10,000 had to be repaired
    CHECK(r.counters.reordered > 0);     // and many were merely overtaken
    CHECK(r.counters.nacks_sent > 0);
  }
}

TEST_CASE(
    "receive_stream: three receivers, 30% of every datagram dropped, all delivered once in order",
    "[reliability]") {
  sim_params p;
  p.receivers = 3;
  // With NACKs and repairs dropped too, one round trip succeeds about half the time; 40 tries
  // make a give-up (0.5^40) impossible in practice, so every frame must arrive.
  p.cfg.nack_max_tries = 40;
  const sim_result res = simulate(p);
  REQUIRE(res.finished);
  std::uint64_t suppressed = 0;
  for (const sim_receiver& r : res.rx) {
    check_exactly_once_in_order(r, p.messages);
    CHECK(frames_delivered(r) == p.messages);
    CHECK(r.counters.lost == 0);
    CHECK(r.counters.duplicates > 0);  // repairs others asked for
    suppressed += r.counters.suppressed;
  }
  CHECK(suppressed > 0);            // receivers heard each other's NACKs
  CHECK(res.repairs_held_off > 0);  // and the sender answered some NACK bursts once
}

TEST_CASE(
    "receive_stream: with small buffers, every seq is delivered or reported lost, in order, once",
    "[reliability]") {
  sim_params p;
  p.receivers = 2;
  p.messages = 5000;
  p.cfg.send_window_max_count = 64;  // repairs often come too late: seqs left the window
  p.cfg.max_reorder = 32;            // and the reorder buffer often overflows
  p.latency_max = 8ms;
  for (std::uint64_t seed : {11u, 12u}) {
    p.seed = seed;
    const sim_result res = simulate(p);
    REQUIRE(res.finished);  // no stall
    for (const sim_receiver& r : res.rx) {
      check_exactly_once_in_order(r, p.messages);
      CHECK(r.next_expected == p.messages + 1);
      CHECK(frames_delivered(r) + r.counters.lost == p.messages);
      CHECK(r.counters.delivered == frames_delivered(r));
      CHECK(r.counters.lost > 0);
      CHECK(r.counters.given_up + r.counters.dropped_for_space + r.counters.unavailable >=
            r.counters.lost);
    }
  }
}

TEST_CASE("receive_stream: random calls in any order keep every invariant", "[reliability]") {
  // Adversarial driving: duplicates, frames from the future, stale and forged adverts, foreign
  // NACKs over anything, timers fired late, tight bounds. After every call and drain: output
  // exactly once and in order, bounds held, every seq in [next, highest] tracked exactly once.
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    reliability_config cfg;
    cfg.max_reorder = 1 + seed % 8;
    cfg.max_reorder_bytes = 8 * (1 + seed % 5);
    cfg.max_advance = 64;
    cfg.max_ranges_per_nack = 1 + seed % 4;
    cfg.nack_max_tries = static_cast<std::uint32_t>(1 + seed % 3);
    std::mt19937_64 ops(seed);
    std::mt19937_64 rng(seed);
    receive_stream s(cfg, 1 + seed % 3, rng);
    std::uint64_t expect = s.next_expected();  // next seq the output must cover
    time_point now = t0;
    const auto take = [&](std::uint64_t seq, const std::string& frame) {
      if (s.offer(seq, frame, now) == offer_result::deliver) {
        REQUIRE(seq == expect);
        ++expect;
      }
    };
    const auto drain_and_check = [&] {
      while (auto item = s.pop_ready()) {
        REQUIRE(item->seqs.first == expect);
        if (!item->is_loss()) REQUIRE(item->frame == frame_for(item->seqs.first));
        expect = item->seqs.last + 1;
      }
      REQUIRE(s.next_expected() == expect);
      REQUIRE(s.buffered_count() <= cfg.max_reorder);
      // (A frame alone above the byte bound got its gaps given up, so it was just drained.)
      REQUIRE(s.buffered_bytes() <= cfg.max_reorder_bytes);
      REQUIRE(s.gap_count() <= cfg.max_reorder);
      std::uint64_t tracked = s.buffered_count();
      std::uint64_t prev_last = s.next_expected() - 1;
      for (const gap_info& g : s.gaps()) {
        REQUIRE(g.seqs.first > prev_last);
        REQUIRE(g.seqs.first <= g.seqs.last);
        tracked += g.seqs.count();
        prev_last = g.seqs.last;
      }
      REQUIRE(tracked == s.highest_seen() + 1 - s.next_expected());
      REQUIRE(s.next_deadline() >= now - 10s);  // nothing overdue piles up unseen
    };
    for (int step = 0; step < 3000; ++step) {
      now += duration(static_cast<duration::rep>(ops() % 5'000'000));  // 0..5 ms
      const std::uint64_t next = s.next_expected();
      const std::uint64_t span = s.highest_seen() + 40 - next;
      switch (ops() % 10) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4: {  // near the front: fills, reorders, new gaps
          const std::uint64_t seq = next + ops() % span;
          take(seq, frame_for(seq));
          break;
        }
        case 5: {  // anything: old duplicates, seq 0, far future
          const std::uint64_t seq = ops() % 2 ? ops() % (next + 1) : ops();
          take(seq, frame_for(seq));
          break;
        }
        case 6: {  // adverts: plausible, too far, forged, lowest above highest
          const std::uint64_t hi = ops() % 5 == 0 ? ops() : s.highest_seen() + ops() % 80;
          const std::uint64_t lo = ops() % 3 == 0 ? 0 : ops() % (next + 10);
          s.on_advert(hi, lo, now);
          break;
        }
        case 7: {
          const std::uint64_t a = next + ops() % span - 5;
          s.on_foreign_nack(seq_range{a, a + ops() % 10}, now);
          break;
        }
        default:
          while (s.next_deadline() <= now) {
            const ranges nack = s.due_nacks(now);
            REQUIRE(nack.size() <= cfg.max_ranges_per_nack);
            for (std::size_t i = 1; i < nack.size(); ++i)
              REQUIRE(nack[i].first > nack[i - 1].last + 1);  // sorted and merged
          }
      }
      if (ops() % 8 == 0) continue;  // a lazy caller now and then: drains one call late
      drain_and_check();
    }
    // The sender finally repairs everything it ever sent: the stream must catch up and stop.
    const std::uint64_t top = s.highest_seen();
    for (std::uint64_t seq = s.next_expected(); seq <= top; ++seq) {
      take(seq, frame_for(seq));
      drain_and_check();
    }
    CHECK(s.next_expected() == top + 1);
    CHECK(s.buffered_count() == 0);
    CHECK(s.gap_count() == 0);
    CHECK(s.next_deadline() == time_point::max());
  }
}
