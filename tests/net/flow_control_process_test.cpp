// tests/net/flow_control_process_test.cpp: issue 9's flow control on real processes: a publisher
// blasting 200,000 messages flat out reaches 1 and 4 subscribers whole (complete, in order, no
// duplicates, nothing lost), and a subscriber with a small receive buffer gets every message too:
// the publisher stays within the subscriber's receive window (rwin) and never evicts what it
// lacks (flow control by the slowest receiver, protocol.md 8.9); without flow control the
// subscriber overflows, says so (a backlog notice, or NACKs after an overflow) and the publisher
// slows down (rate_cuts > 0, 8.8). Figures are printed (WARN), never asserted: they belong in
// the benches.
#include "support/bus_address.hpp"
#include "support/peerbus_cli.hpp"
#include "support/sanitizer.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace peerbus::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Issue 9's figure; AddressSanitizer runs every process several times slower.
constexpr long long blast = sanitized ? 50000 : 200000;

// The single JSON object a --json run prints.
json only_object(const run_result& r) {
  REQUIRE(r.lines.size() == 1);
  auto j = json::parse(r.lines.front(), nullptr, false);
  REQUIRE(j.is_object());
  return j;
}

void blast_to(int subscribers) {
  INFO(blast << " messages flat out to " << subscribers << " subscriber(s)");
  // --timeout bounds the bench (its sinks stop before it); run_peerbus kills it a little later.
  auto r = run_peerbus({"bench", "throughput", "--count", std::to_string(blast), "--subscribers",
                        std::to_string(subscribers), "--json", "--timeout", "90"},
                       100s, private_bus_url());
  INFO(describe(r));
  REQUIRE(r.code == 0);
  const auto j = only_object(r);
  const auto& b = j["bus"];
  CHECK(j["rate"] == 0);  // flat out
  CHECK(b["sent"] == blast);
  CHECK(b["complete"] == true);
  CHECK(b["lost_total"] == 0);
  REQUIRE(b["subscribers"].size() == static_cast<std::size_t>(subscribers));
  long long overflows = 0;
  for (const auto& s : b["subscribers"]) {
    INFO(s.dump());
    CHECK(s["received"] == blast);
    CHECK(s["unique"] == blast);
    CHECK(s["duplicates"] == 0);
    CHECK(s["in_order"] == true);
    CHECK(s["lost"] == 0);
    CHECK(s["lost_events"] == 0);
    CHECK(s["bus_lost"] == 0);
    CHECK(s["complete"] == true);
    CHECK(s["timed_out"] == false);
    CHECK(s["exit"] == 0);
    overflows += s.value("rx_overflows", 0LL);
  }
  WARN(blast << " messages flat out to " << subscribers << " subscriber(s): sent at "
             << b["send_msgs_per_s"] << "/s in " << b["datagrams_sent"] << " datagrams, "
             << b["msgs_per_s_min"] << "/s delivered to the slowest; receive buffer overflows "
             << overflows << ", rate cuts " << b["rate_cuts"] << ", NACK ranges "
             << b["nacks_received"] << ", repairs " << b["repairs_sent"] << ", waits for a receiver "
             << b["flow_waits"]);
}

// The --stats line: the last stderr line holding the counters.
json stats_line(const child& c) {
  const std::string err = c.stderr_text();
  auto at = err.rfind("\"rx_overflows\":");
  REQUIRE(at != std::string::npos);
  at = err.rfind('\n', at);
  at = at == std::string::npos ? 0 : at + 1;
  return json::parse(err.substr(at, err.find('\n', at) - at));
}

}  // namespace

TEST_CASE("flow control: 200000 messages flat out reach 1 subscriber complete and in order",
          "[net][flow]") {
  blast_to(1);
}

TEST_CASE("flow control: 200000 messages flat out reach 4 subscribers complete and in order",
          "[net][flow]") {
  blast_to(4);
}

// `count` messages flat out (with `pub_extra` arguments) to a subscriber with a 256 KiB receive
// buffer (the kernel doubles it) that prints a line per message: far slower than the publisher,
// and its buffer holds a few full datagrams. Checks that every message arrived, once and in
// order, and returns the --stats of the subscriber and of the publisher.
static std::pair<nlohmann::json, nlohmann::json> to_small_buffer(
    long long count, const std::vector<std::string>& pub_extra) {
  const auto url = private_bus_url();
  child sub = spawn_peerbus({"sub", "--url", url + "&rcvbuf=262144", "--name", "small-buffer",
                             "--count", std::to_string(count), "--data", "--stats", "--timeout",
                             "30", "flow.t"},
                            url);
  std::vector<std::string> args{"pub", "--url", url, "--name", "blaster", "flow.t", "1", "--count",
                                std::to_string(count), "--wait-subscribers", "1",
                                "--wait-timeout", "10", "--stats"};
  args.insert(args.end(), pub_extra.begin(), pub_extra.end());
  child pub = spawn_peerbus(args, url);
  const auto sub_code = sub.wait_exit(deadline_in(90s));
  const auto pub_code = pub.wait_exit(deadline_in(30s));
  INFO(describe(sub));
  INFO(describe(pub));
  REQUIRE(sub_code == 0);
  REQUIRE(pub_code == 0);
  const auto lines = sub.lines();
  CHECK(static_cast<long long>(lines.size()) == count);
  std::size_t not_one = 0;
  for (const auto& l : lines) not_one += l != "1";
  CHECK(not_one == 0);
  CHECK(sub.stderr_text().find("{\"lost\":") == std::string::npos);  // no loss event
  auto rs = stats_line(sub);
  CHECK(rs["lost"] == 0);
  CHECK(rs["delivered"] == count);
  return {rs, stats_line(pub)};
}

TEST_CASE("flow control: a subscriber with a small receive buffer holds the publisher within its "
          "receive window and every message arrives",
          "[net][flow]") {
  const auto [rs, ps] = to_small_buffer(blast, {});
  // Overflows are not asserted: the window counts frame bytes, and datagrams that leave one by
  // one cost the kernel more than their bytes (protocol.md 8.9); repairs cover those.
  WARN("small receive buffer: " << rs["rx_overflows"] << " datagrams overflowed, "
       << rs["recovered"] << " recovered; publisher: " << ps["flow_waits"]
       << " waits for the subscriber, " << ps["repairs_sent"] << " repairs");
  CHECK(ps["published"] == blast);
  CHECK(ps["flow_waits"].get<long long>() > 0);  // held at the subscriber's window
  CHECK(ps["repairs_unavailable"] == 0);  // nothing left the window before the subscriber had it
  CHECK(ps["flow_stalls"] == 0);
}

TEST_CASE("flow control: without it, a subscriber with a small receive buffer overflows, the "
          "publisher slows down and every message within its window arrives",
          "[net][flow]") {
  // --no-flow-control: the publisher neither waits at the window's end nor at the subscriber's
  // window; congestion (8.8) paces it, and NACKs repair what overflowed, all within its window
  // of 131072 messages.
  const auto [rs, ps] = to_small_buffer(std::min<long long>(blast, 100000), {"--no-flow-control"});
  WARN("small receive buffer, no flow control: " << rs["rx_backlogs"] << " backlogs, "
       << rs["rx_overflows"] << " datagrams overflowed, " << rs["congestion_notices"]
       << " congestion notices, " << rs["recovered"] << " recovered; publisher: "
       << ps["rate_cuts"] << " rate cuts, " << ps["repairs_sent"] << " repairs");
  CHECK(ps["flow_waits"] == 0);
  // Under ASan the publisher is too slow to fill even a small buffer on a loaded machine (CI
  // saw 0 overflows): the mechanism is then not exercised, only delivery is checked.
  if (!peerbus::test::sanitized) {
    // The subscriber fell behind and noticed: its queue more than 3/4 full (a backlog, told
    // to the publisher before anything is dropped) or overflowing (told with its NACKs)...
    CHECK(rs["rx_backlogs"].get<long long>() + rs["rx_overflows"].get<long long>() > 0);
    CHECK(rs["congestion_notices"].get<long long>() > 0);
    CHECK(ps["rate_cuts"].get<long long>() > 0);  // ...and the publisher slowed down
  }
}

TEST_CASE("flow control: pub waits for the subscribers that report their progress, and "
          "--no-flow-control for none",
          "[net][flow]") {
  const auto url = private_bus_url();
  child sub = spawn_peerbus({"sub", "--url", url, "--name", "listener", "--timeout", "20", "fc.t"}, url);
  // The counters after close(): the subscriber is still there, so still in the table.
  auto receivers = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"pub",   "--url",           url,   "fc.t", "1",
                                     "--wait-subscribers", "1", "--wait-timeout", "10", "--stats"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_peerbus(args, 30s, url);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    const auto at = r.err.rfind("{\"batched_frames\"");
    REQUIRE(at != std::string::npos);
    return json::parse(r.err.substr(at, r.err.find('\n', at) - at));
  };
  const auto with = receivers({});
  CHECK(with["flow_receivers"] == 1);  // the subscriber said "fc" in its heartbeat
  CHECK(with["flow_reports"].get<long long>() >= 1);  // and confirmed the message at close
  const auto without = receivers({"--no-flow-control"});
  CHECK(without["flow_receivers"] == 0);
  CHECK(without["flow_waits"] == 0);
  sub.signal(SIGTERM);
  CHECK(sub.wait_exit(deadline_in(10s)).has_value());
}
