// bus/sub_queue_test.cpp: a queued subscription's queue without a bus: each overflow policy, the
// byte bound, stopping (also while the producer waits, and from the handler itself), and a
// handler that throws. The handler is held at a gate so what the queue holds is deterministic.
#include "bus/sub_queue.hpp"

#include "support/bus_address.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace peerbus;
using namespace peerbus::detail;
using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

// What the handler saw, and a gate that holds it inside its first call until opened.
struct consumer {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::vector<std::uint64_t> seen;
  std::atomic<int> entered{0};

  message_handler handler() {
    return [this](const message& m) {
      CHECK(m.topic() == "q.t");
      CHECK(m.sender_name() == "sender");
      CHECK(m.data_json() == std::to_string(m.seq()));
      ++entered;
      std::unique_lock<std::mutex> lock(mu);
      seen.push_back(m.seq());
      cv.wait_for(lock, 10s, [this] { return open; });
    };
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      open = true;
    }
    cv.notify_all();
  }
  std::vector<std::uint64_t> got() {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  }
};

// A message of seq `seq` whose payload is the seq's digits.
struct test_message {
  std::string data;
  message m;
  explicit test_message(std::uint64_t seq)
      : data(std::to_string(seq)), m("q.t", peer_id{7}, "sender", seq, 1, data) {}
};

sub_queue::config settings(std::size_t limit, overflow_policy p) {
  sub_queue::config c;
  c.limit = limit;
  c.policy = p;
  c.pattern = "q.t";
  return c;
}

// Pushes seqs first..last; returns the seqs reported dropped, in report order.
std::vector<std::uint64_t> push_range(sub_queue& q, std::uint64_t first, std::uint64_t last,
                                      int* waits = nullptr) {
  std::vector<std::uint64_t> dropped;
  for (auto seq = first; seq <= last; ++seq) {
    test_message t(seq);
    q.push(
        t.m, [&](const message& d) { dropped.push_back(d.seq()); },
        [&] {
          if (waits) ++*waits;
        },
        5ms);
  }
  return dropped;
}

std::vector<std::uint64_t> seqs(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> v;
  for (auto s = first; s <= last; ++s) v.push_back(s);
  return v;
}

// Starts a queue and pushes seq 1, which the thread takes at once: the consumer holds it at the
// gate, so whatever is pushed next stays queued until release().
std::shared_ptr<sub_queue> start_held(consumer& c, const sub_queue::config& cfg) {
  auto q = sub_queue::start(cfg, c.handler());
  push_range(*q, 1, 1);
  REQUIRE(wait_until([&] { return c.entered.load() == 1; }, 5s));
  return q;
}

}  // namespace

TEST_CASE("sub_queue: drop_oldest keeps the newest messages and reports the rest oldest first",
          "[bus][queue]") {
  consumer c;
  auto q = start_held(c, settings(3, overflow_policy::drop_oldest));
  const auto dropped = push_range(*q, 2, 11);
  CHECK(dropped == seqs(2, 8));
  auto n = q->snapshot();
  CHECK(n.queued == 3);
  CHECK(n.queued_max == 3);
  CHECK(n.dropped == 7);
  c.release();
  REQUIRE(wait_until([&] { return c.got().size() == 4; }, 5s));
  CHECK(c.got() == std::vector<std::uint64_t>{1, 9, 10, 11});
  n = q->snapshot();
  CHECK(n.delivered == 4);
  CHECK(n.queued == 0);
  CHECK(n.queued_bytes == 0);
  q->stop();
  q->join();
  CHECK(q->exited());
}

TEST_CASE("sub_queue: drop_newest keeps the oldest messages and refuses the rest", "[bus][queue]") {
  consumer c;
  auto q = start_held(c, settings(3, overflow_policy::drop_newest));
  CHECK(push_range(*q, 2, 11) == seqs(5, 11));
  CHECK(q->snapshot().queued_max == 3);
  CHECK(q->snapshot().dropped == 7);
  c.release();
  REQUIRE(wait_until([&] { return c.got().size() == 4; }, 5s));
  CHECK(c.got() == seqs(1, 4));
  q->stop();
  q->join();
}

TEST_CASE("sub_queue: block makes the producer wait and loses nothing", "[bus][queue]") {
  std::mutex mu;
  std::vector<std::uint64_t> seen;
  auto q = sub_queue::start(settings(2, overflow_policy::block), [&](const message& m) {
    std::this_thread::sleep_for(200us);  // slower than the producer
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(m.seq());
  });
  int ticks = 0;
  CHECK(push_range(*q, 1, 300, &ticks).empty());
  REQUIRE(wait_until([&] { std::lock_guard<std::mutex> l(mu); return seen.size() == 300; }, 10s));
  std::lock_guard<std::mutex> lock(mu);
  CHECK(seen == seqs(1, 300));
  const auto n = q->snapshot();
  CHECK(n.dropped == 0);
  CHECK(n.waits > 0);
  CHECK(n.queued_max <= 2);
  q->stop();
  q->join();
}

TEST_CASE("sub_queue: the byte bound limits the queue before the count does", "[bus][queue]") {
  consumer c;
  auto cfg = settings(100, overflow_policy::drop_newest);
  // Each message: topic "q.t" (3) + "sender" (6) + payload (1 or 2 digits): at most 2 fit in 22.
  cfg.max_bytes = 22;
  auto q = start_held(c, cfg);
  CHECK(push_range(*q, 2, 5) == seqs(4, 5));
  CHECK(q->snapshot().queued == 2);
  CHECK(q->snapshot().queued_bytes == 20);
  c.release();
  REQUIRE(wait_until([&] { return c.got().size() == 3; }, 5s));
  q->stop();
  q->join();
}

TEST_CASE("sub_queue: stop wakes a waiting producer and discards what is queued", "[bus][queue]") {
  consumer c;
  auto q = start_held(c, settings(1, overflow_policy::block));
  push_range(*q, 2, 2);  // queued: full
  std::atomic<bool> returned{false};
  sub_queue::push_result r = sub_queue::push_result::queued;
  std::thread producer([&] {
    test_message t(3);
    r = q->push(t.m, [](const message&) {}, [] {}, 5ms);
    returned = true;
  });
  CHECK_FALSE(wait_until([&] { return returned.load(); }, 50ms));  // waiting for room
  q->stop();
  REQUIRE(wait_until([&] { return returned.load(); }, 5s));
  producer.join();
  CHECK(r == sub_queue::push_result::stopped);
  CHECK(q->snapshot().queued == 0);
  c.release();
  q->join();  // returns once the running call has
  CHECK(c.got() == std::vector<std::uint64_t>{1});  // 2 was discarded, never handed on
  test_message t(4);
  CHECK(q->push(t.m, [](const message&) {}, [] {}, 5ms) == sub_queue::push_result::stopped);
}

TEST_CASE("sub_queue: a handler may stop and join its own queue, and one that throws is reported",
          "[bus][queue]") {
  std::mutex mu;
  std::vector<std::string> log;
  std::shared_ptr<sub_queue> q;
  std::atomic<int> calls{0};
  auto cfg = settings(10, overflow_policy::drop_oldest);
  cfg.log = [&](log_level, std::string_view text) {
    std::lock_guard<std::mutex> lock(mu);
    log.emplace_back(text);
  };
  std::atomic<bool> ready{false};
  q = sub_queue::start(cfg, [&](const message& m) {
    ++calls;
    if (m.seq() == 1) throw std::runtime_error("boom");
    while (!ready.load()) std::this_thread::yield();
    CHECK(sub_queue::current() == q.get());
    q->stop();
    q->join();  // on its own thread: detached, no deadlock
  });
  CHECK(sub_queue::current() == nullptr);
  push_range(*q, 1, 3);
  ready = true;
  REQUIRE(wait_until([&] { return q->exited(); }, 5s));
  CHECK(calls.load() == 2);  // 1 threw, 2 stopped the queue, 3 was discarded
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(log.size() == 1);
  CHECK(log[0] == "handler for q.t threw: boom");
}
