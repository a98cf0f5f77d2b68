// tests/net/bench_cli_test.cpp: `peerbus bench` (tools/cmd_bench.cpp, tools/bench_*.cpp): small
// runs whose JSON must hold every field with sane values, usage errors, the deadline, and that
// no process a bench starts outlives it. No timing thresholds: the figures are the machine's.
#include <dirent.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/bus_address.hpp"
#include "support/peerbus_cli.hpp"

using namespace peerbus::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Small runs finish in well under a second; 10 s only bounds a hang (ASan builds included).
constexpr auto run_limit = 10s;

run_result run(std::vector<std::string> args) {
  // $PEERBUS_URL points at a private bus anyway: a bench must not use it, but if it did, it
  // would not touch the shared default bus.
  return run_peerbus(std::move(args), run_limit, private_bus_url());
}

// The single JSON object a --json run prints.
json only_object(const run_result& r) {
  REQUIRE(r.lines.size() == 1);
  auto j = json::parse(r.lines.front(), nullptr, false);
  REQUIRE(j.is_object());
  return j;
}

void check_percentiles(const json& f, long long round_trips) {
  INFO(f.dump());
  REQUIRE(f.contains("round_trips"));
  CHECK(f["round_trips"].get<long long>() == round_trips);
  for (const char* k : {"p50_us", "p90_us", "p99_us", "max_us", "mean_us", "elapsed_s"})
    REQUIRE(f.contains(k));
  CHECK(f["p50_us"].get<double>() > 0);
  CHECK(f["p50_us"].get<double>() <= f["p90_us"].get<double>());
  CHECK(f["p90_us"].get<double>() <= f["p99_us"].get<double>());
  CHECK(f["p99_us"].get<double>() <= f["max_us"].get<double>());
  CHECK(f["mean_us"].get<double>() <= f["max_us"].get<double>());
}

// Processes whose command line names `pid` as their --parent: the children a bench started.
std::vector<std::string> children_of(long long pid) {
  std::vector<std::string> found;
  const std::string mark = std::string("--parent") + '\0' + std::to_string(pid) + '\0';
  DIR* d = ::opendir("/proc");
  if (!d) return found;
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f("/proc/" + name + "/cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (cmd.find(mark) != std::string::npos) found.push_back(name);
  }
  ::closedir(d);
  return found;
}

}  // namespace

TEST_CASE("bench: latency --json gives complete, ordered percentiles for the bus and the floor",
          "[net][bench]") {
  auto r = run({"bench", "latency", "--count", "200", "--warmup", "20", "--raw", "--json"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  auto j = only_object(r);
  CHECK(j["bench"] == "latency");
  CHECK(j["count"] == 200);
  CHECK(j["warmup"] == 20);
  CHECK(j["size"] == 64);
  check_percentiles(j["bus"], 200);
  check_percentiles(j["raw"], 200);
  CHECK(j["raw"]["resends"].get<long long>() >= 0);
  for (const char* k : {"p50", "p90", "p99", "max"}) CHECK(j["ratio"][k].get<double>() > 0);
}

TEST_CASE("bench: latency without --raw measures the bus alone, pinned if asked", "[net][bench]") {
  auto r = run({"bench", "latency", "--count", "100", "--warmup", "0", "--size", "200", "--pin",
                "same", "--json"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  auto j = only_object(r);
  CHECK(j["size"] == 200);
  CHECK(j["pin"] == "same");
  check_percentiles(j["bus"], 100);
  CHECK_FALSE(j.contains("raw"));
}

TEST_CASE("bench: throughput to two subscribers delivers every message once and in order",
          "[net][bench]") {
  auto r = run({"bench", "throughput", "--count", "2000", "--subscribers", "2", "--json"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  auto j = only_object(r);
  CHECK(j["bench"] == "throughput");
  CHECK(j["subscribers"] == 2);
  CHECK(j["count"] == 2000);
  const auto& b = j["bus"];
  CHECK(b["sent"] == 2000);
  // Messages go several to a datagram when the publisher is ahead: at least one datagram, and
  // the bytes per datagram reported match what was sent.
  CHECK(b["datagrams_sent"].get<long long>() >= 1);
  CHECK(b["bytes_per_datagram"].get<double>() >= 64);
  CHECK(b["complete"] == true);
  CHECK(b["lost_total"] == 0);
  CHECK(b["msgs_per_s_min"].get<double>() > 0);
  CHECK(b["msgs_per_s_min"].get<double>() <= b["msgs_per_s_mean"].get<double>());
  for (const char* k : {"send_s", "send_msgs_per_s", "nacks_received", "repairs_sent",
                        "repairs_unavailable", "bytes_per_datagram", "mb_per_s_mean"})
    CHECK(b.contains(k));
  REQUIRE(b["subscribers"].size() == 2);
  for (const auto& s : b["subscribers"]) {
    INFO(s.dump());
    CHECK(s["received"] == 2000);
    CHECK(s["unique"] == 2000);
    CHECK(s["duplicates"] == 0);
    CHECK(s["in_order"] == true);
    CHECK(s["lost"] == 0);
    CHECK(s["lost_events"] == 0);
    CHECK(s["foreign"] == 0);
    CHECK(s["complete"] == true);
    CHECK(s["timed_out"] == false);
    CHECK(s["exit"] == 0);
    CHECK(s["elapsed_s"].get<double>() > 0);
    CHECK(s["msgs_per_s"].get<double>() > 0);
    for (const char* k : {"nacks_sent", "recovered", "datagrams_received", "mb_per_s"})
      CHECK(s.contains(k));
  }
}

TEST_CASE("bench: throughput --raw reports what reached each plain UDP receiver", "[net][bench]") {
  auto r = run({"bench", "throughput", "--count", "2000", "--raw", "--json"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  auto j = only_object(r);
  CHECK(j["bus"]["complete"] == true);
  const auto& raw = j["raw"];
  CHECK(raw["sent"] == 2000);
  REQUIRE(raw["subscribers"].size() == 1);
  const auto& s = raw["subscribers"][0];
  INFO(s.dump());
  // Plain UDP may lose datagrams; what it delivered it delivered once, in order, on loopback.
  auto unique = s["unique"].get<long long>();
  CHECK(unique > 0);
  CHECK(unique <= 2000);
  CHECK(s["duplicates"] == 0);
  CHECK(s["in_order"] == true);
  CHECK(raw["not_delivered_total"].get<long long>() == 2000 - unique);
  CHECK(s["rcvbuf"].get<long long>() > 0);
  CHECK(j["ratio"]["msgs_per_s_mean"].get<double>() > 0);
}

TEST_CASE("bench: bad arguments are usage errors and the roles it starts are hidden",
          "[net][bench]") {
  for (auto args : std::vector<std::vector<std::string>>{
           {"bench"},
           {"bench", "latency", "--size", "5"},
           {"bench", "latency", "--count", "0"},
           {"bench", "latency", "--pin", "sideways"},
           {"bench", "throughput", "--subscribers", "0"},
           {"bench", "throughput", "--rate", "0"},
           {"--url", "udpm://239.255.1.2:7000", "bench", "latency"},
       }) {
    auto r = run(args);
    INFO(args.back() << ": " << describe(r));
    CHECK(r.code == 2);
    CHECK_FALSE(r.err.empty());
  }
  auto help = run({"bench", "--help"});
  INFO(describe(help));
  CHECK(help.code == 0);
  CHECK(help.out.find("latency") != std::string::npos);
  CHECK(help.out.find("echo") == std::string::npos);
  CHECK(help.out.find("sink") == std::string::npos);
}

TEST_CASE("bench: the deadline ends a run that cannot finish, and its children with it",
          "[net][bench]") {
  auto c = spawn_peerbus({"bench", "latency", "--count", "50000000", "--timeout", "1"},
                         private_bus_url());
  auto code = c.wait_exit(deadline_in(run_limit));
  INFO("stdout: " << c.stdout_text() << "\nstderr: " << c.stderr_text());
  REQUIRE(code.has_value());
  CHECK(*code == 3);
  CHECK(c.stderr_text().find("deadline") != std::string::npos);
  CHECK(wait_until([&] { return children_of(c.pid()).empty(); }, 3s));
}

TEST_CASE("bench: SIGTERM stops a throughput run cleanly and ends its subscribers",
          "[net][bench]") {
  auto c = spawn_peerbus(
      {"bench", "throughput", "--count", "10000000", "--rate", "2000", "--subscribers", "2"},
      private_bus_url());
  // Both subscribers started (their command lines name the driver as --parent); the signal
  // may come while they join or while the driver publishes: either way it must end cleanly.
  REQUIRE(wait_until([&] { return children_of(c.pid()).size() == 2; }, 5s));
  c.signal(SIGTERM);
  auto code = c.wait_exit(deadline_in(run_limit));
  INFO("stdout: " << c.stdout_text() << "\nstderr: " << c.stderr_text());
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(wait_until([&] { return children_of(c.pid()).empty(); }, 3s));
}
