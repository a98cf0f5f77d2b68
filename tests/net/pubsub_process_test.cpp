// tests/net/pubsub_process_test.cpp: `peerbus pub` and `peerbus sub` processes on real loopback
// multicast: completeness and order at volume, payloads byte for byte, stdin mode, pacing, and
// isolation between buses. Each test runs on its own private bus (support/bus_address.hpp).
#include "support/bus_address.hpp"
#include "support/observer.hpp"
#include "support/peerbus_cli.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

// What a sub printed, one parsed JSON line each.
std::vector<nlohmann::json> parse_lines(const std::vector<std::string>& lines) {
  std::vector<nlohmann::json> out;
  out.reserve(lines.size());
  for (const auto& l : lines) out.push_back(nlohmann::json::parse(l));
  return out;
}

// The text of the "data" member of a sub's output line, exactly as printed: the CLI copies the
// payload as it travelled, so it is everything after ,"data": up to the closing brace.
std::string raw_data(const std::string& line) {
  auto at = line.find(",\"data\":");
  REQUIRE(at != std::string::npos);
  REQUIRE(line.back() == '}');
  at += 8;
  return line.substr(at, line.size() - 1 - at);
}

}  // namespace

TEST_CASE("pubsub: 10000 messages reach three sub processes complete, in order, once", "[net]") {
  const auto url = private_bus_url();
  constexpr int n = 10000;
  std::vector<child> subs;
  for (int i = 0; i < 3; ++i)
    subs.push_back(spawn_peerbus({"sub", "--url", url, "--name", "bulk-sub-" + std::to_string(i),
                                  "--count", std::to_string(n), "--timeout", "20", "bulk.>"}));
  // --wait-subscribers replaces any sleep: pub starts once all three heartbeats list bulk.>.
  child pub = spawn_peerbus({"pub", "--url", url, "--name", "bulk-pub", "bulk.data",
                             R"({"k":"v","n":[1,2,3]})", "--count", std::to_string(n),
                             "--wait-subscribers", "3", "--wait-timeout", "10"});
  INFO(describe(pub));
  REQUIRE(pub.wait_exit(deadline_in(30s)) == 0);

  for (auto& sub : subs) {
    INFO(describe(sub));
    REQUIRE(sub.wait_exit(deadline_in(25s)) == 0);
    auto msgs = parse_lines(sub.lines());
    REQUIRE(msgs.size() == static_cast<std::size_t>(n));
    const auto from = msgs.front()["from"].get<std::string>();
    std::size_t out_of_order = 0;
    for (std::size_t i = 0; i < msgs.size(); ++i) {
      const auto& m = msgs[i];
      // seq 1..n consecutive: complete, in order, without duplicates.
      if (m["seq"] != i + 1) ++out_of_order;
      CHECK(m["topic"] == "bulk.data");
      CHECK(m["name"] == "bulk-pub");
      CHECK(m["from"] == from);
      CHECK(m["data"] == nlohmann::json::parse(R"({"k":"v","n":[1,2,3]})"));
      if (out_of_order > 5) break;
    }
    CHECK(out_of_order == 0);
    CHECK(msgs.back()["seq"] == n);
  }
}

TEST_CASE("pubsub: every kind of JSON payload arrives byte for byte", "[net]") {
  const auto url = private_bus_url();
  const std::vector<std::string> payloads = {
      R"({ "a" : [1, 2.50, {"b":null}] , "é":"\u00e9\n\"q\"" })",  // spacing kept, not re-dumped
      R"([1,"two",3.0e2,true,false,null,[],{}])",
      R"("just a string with \"escapes\" and \\ and \t")",
      R"(-12.5e-3)",
      R"(0)",
      R"(null)",
      R"(true)",
      R"({})",
  };
  child sub = spawn_peerbus({"sub", "--url", url, "--count", std::to_string(payloads.size()),
                             "--timeout", "10", "kinds"});
  child data_sub = spawn_peerbus({"sub", "--url", url, "--data", "--count",
                                  std::to_string(payloads.size()), "--timeout", "10", "kinds"});
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    // One pub process per payload, the next only after this one arrived: order is known.
    auto r = run_peerbus({"pub", "--url", url, "kinds", payloads[i], "--wait-subscribers", "2"}, 20s);
    INFO("payload " << payloads[i] << "\n" << r.err);
    REQUIRE(r.code == 0);
    REQUIRE(sub.wait_for_lines(i + 1, deadline_in(5s)));
    REQUIRE(data_sub.wait_for_lines(i + 1, deadline_in(5s)));
  }
  INFO(describe(sub));
  REQUIRE(sub.wait_exit(deadline_in(10s)) == 0);
  REQUIRE(data_sub.wait_exit(deadline_in(10s)) == 0);
  auto lines = sub.lines();
  auto data_lines = data_sub.lines();
  REQUIRE(lines.size() == payloads.size());
  REQUIRE(data_lines.size() == payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    CHECK(raw_data(lines[i]) == payloads[i]);
    CHECK(data_lines[i] == payloads[i]);
    // Each line is valid JSON whose data equals the payload parsed.
    CHECK(nlohmann::json::parse(lines[i])["data"] == nlohmann::json::parse(payloads[i]));
  }
}

TEST_CASE("pubsub: pub without a payload publishes one JSON value per stdin line", "[net]") {
  const auto url = private_bus_url();
  const std::vector<std::string> values = {R"({"n":1})", R"([2])", R"("three")", R"(4)",
                                           R"(null)", R"({"six":{"deep":[true]}})"};
  child sub = spawn_peerbus({"sub", "--url", url, "--data", "--count",
                             std::to_string(values.size() * 2), "--timeout", "10", "lines.*"});
  child pub = spawn_peerbus({"pub", "--url", url, "lines.in", "--count", "2",
                             "--wait-subscribers", "1", "--wait-timeout", "10"},
                            {}, stdin_mode::pipe);
  // Blank and whitespace-only lines are skipped.
  std::string input;
  for (const auto& v : values) input += v + "\n\n   \n";
  pub.write_stdin(input);
  pub.close_stdin();
  INFO(describe(pub) << "\n" << describe(sub));
  REQUIRE(pub.wait_exit(deadline_in(20s)) == 0);
  REQUIRE(sub.wait_exit(deadline_in(10s)) == 0);
  std::vector<std::string> want;
  for (const auto& v : values) want.insert(want.end(), {v, v});  // --count 2: each line twice
  CHECK(sub.lines() == want);
}

TEST_CASE("pubsub: stdin mode stops at an invalid line with exit 2 after the good ones", "[net]") {
  const auto url = private_bus_url();
  child sub = spawn_peerbus({"sub", "--url", url, "--data", "--count", "2", "--timeout", "10",
                             "bad.in"});
  child pub = spawn_peerbus({"pub", "--url", url, "bad.in", "--wait-subscribers", "1",
                             "--wait-timeout", "10"},
                            {}, stdin_mode::pipe);
  pub.write_stdin("1\n2\n{not json\n3\n");
  pub.close_stdin();
  INFO(describe(pub) << "\n" << describe(sub));
  REQUIRE(pub.wait_exit(deadline_in(20s)) == 2);
  CHECK(pub.stderr_text().find("JSON") != std::string::npos);
  REQUIRE(sub.wait_exit(deadline_in(10s)) == 0);
  CHECK(sub.lines() == std::vector<std::string>{"1", "2"});
}

TEST_CASE("pubsub: --rate paces without losing or reordering", "[net]") {
  const auto url = private_bus_url();
  constexpr int n = 60;
  child sub = spawn_peerbus({"sub", "--url", url, "--count", std::to_string(n), "--timeout", "10",
                             "paced"});
  // 300/s: 0.2 s of sending. Only order and completeness are asserted, never timing.
  child pub = spawn_peerbus({"pub", "--url", url, "paced", R"({"x":1})", "--count",
                             std::to_string(n), "--rate", "300", "--wait-subscribers", "1",
                             "--wait-timeout", "10"});
  INFO(describe(pub) << "\n" << describe(sub));
  REQUIRE(pub.wait_exit(deadline_in(20s)) == 0);
  REQUIRE(sub.wait_exit(deadline_in(10s)) == 0);
  auto msgs = parse_lines(sub.lines());
  REQUIRE(msgs.size() == static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) CHECK(msgs[i]["seq"] == i + 1);
}

TEST_CASE("pubsub: buses on different URLs do not hear each other", "[net]") {
  // A: a private bus. B: A's port with another group (the socket is bound to the group, so the
  // kernel filters by destination). C: A's group on another port.
  const auto url_a = private_bus_url();
  const auto gp_a = bus_group_port(url_a);
  const auto group_a = gp_a.substr(0, gp_a.find(':'));
  const auto port_a = gp_a.substr(gp_a.find(':') + 1);
  std::string url_b, url_c;
  do {
    auto gp = bus_group_port(private_bus_url());
    url_b = "udpm://" + gp.substr(0, gp.find(':')) + ":" + port_a + "?ttl=0&iface=127.0.0.1";
    url_c = "udpm://" + group_a + ":" + gp.substr(gp.find(':') + 1) + "?ttl=0&iface=127.0.0.1";
  } while (url_b == url_a || url_c == url_a);
  const std::vector<std::pair<std::string, std::string>> buses = {
      {"A", url_a}, {"B", url_b}, {"C", url_c}};

  std::vector<std::unique_ptr<observer>> obs;
  for (const auto& [tag, url] : buses) obs.push_back(std::make_unique<observer>(url, "obs-" + tag, "iso.>"));

  for (const auto& [tag, url] : buses) {
    auto r = run_peerbus({"pub", "--url", url, "--name", "pub-" + tag, "iso.msg", "\"" + tag + "\"",
                          "--wait-subscribers", "1", "--wait-timeout", "10"},
                         20s);
    INFO(tag << ": " << r.err);
    REQUIRE(r.code == 0);
  }
  // A sentinel on each bus after all of the above: a datagram that crossed buses would have been
  // queued on the observer's socket before it, so once the sentinel is in, the record is final.
  for (std::size_t i = 0; i < buses.size(); ++i) {
    auto r = run_peerbus({"pub", "--url", buses[i].second, "--name", "end-" + buses[i].first,
                          "iso.end", "0", "--wait-subscribers", "1", "--wait-timeout", "10"},
                         20s);
    REQUIRE(r.code == 0);
    REQUIRE(obs[i]->wait_messages(
        [](auto& ms) { return !ms.empty() && ms.back().topic == "iso.end"; }, 5s));
  }
  for (std::size_t i = 0; i < buses.size(); ++i) {
    const auto& tag = buses[i].first;
    INFO("bus " << tag << " " << buses[i].second);
    auto ms = obs[i]->messages();
    REQUIRE(ms.size() == 2);
    CHECK(ms[0].data == "\"" + tag + "\"");
    CHECK(ms[0].sender_name == "pub-" + tag);
    CHECK(ms[1].sender_name == "end-" + tag);
    // Presence does not cross either: only this bus's processes (and observers) joined.
    for (const auto& ev : obs[i]->events()) {
      INFO("peer " << ev.peer.name);
      CHECK((ev.peer.name == "pub-" + tag || ev.peer.name == "end-" + tag));
    }
  }
}
