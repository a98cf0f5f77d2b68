// net/call_cli_test.cpp: `peerbus serve` and `peerbus call` as real processes: round trip, errors
// and exit codes, injected loss, and a pattern call with a silent peer.
#include "support/bus_address.hpp"
#include "support/peerbus_cli.hpp"

#include <peerbus/bus.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

using namespace peerbus;
using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

// A `peerbus serve` process, returned once it says it is serving.
child serve(const std::string& url, const std::string& name, const std::string& method,
            std::vector<std::string> cmd, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"serve", "--url", url, "--name", name};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(method);
  args.push_back("--");
  args.insert(args.end(), cmd.begin(), cmd.end());
  child c = spawn_peerbus(args, url);
  REQUIRE(c.wait_for_stderr("serving", deadline_in(10s)));
  return c;
}

}  // namespace

TEST_CASE("call cli: serve answers with its command's stdout, call prints it", "[net][cli]") {
  const auto url = private_bus_url();
  child srv = serve(url, "echo-srv", "echo", {"cat"});
  auto r = run_peerbus({"call", "--url", url, "echo-srv", "echo", "{\"a\":[1,2]}"}, 20s, url);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  REQUIRE(r.lines.size() == 1);
  CHECK(nlohmann::json::parse(r.lines[0]) == nlohmann::json{{"a", {1, 2}}});
}

TEST_CASE("call cli: a failing command, a missing peer, a timeout and bad JSON exit 1, 1, 3, 2",
          "[net][cli]") {
  const auto url = private_bus_url();
  child bad = serve(url, "bad-srv", "fail", {"sh", "-c", "cat >/dev/null; echo oops >&2; exit 4"});
  child slow = serve(url, "slow-srv", "wait", {"sh", "-c", "sleep 3"});
  auto r = run_peerbus({"call", "--url", url, "bad-srv", "fail", "1"}, 20s, url);
  INFO(describe(r));
  CHECK(r.code == 1);
  CHECK(contains(r.err, "status 4"));
  CHECK(contains(r.err, "oops"));
  r = run_peerbus({"call", "--url", url, "bad-srv", "no.such.method"}, 20s, url);
  CHECK(r.code == 1);
  CHECK(contains(r.err, "no handler"));
  r = run_peerbus({"call", "--url", url, "ghost", "x", "--timeout", "30"}, 20s, url);
  CHECK(r.code == 1);
  CHECK(contains(r.err, "no live peer"));
  r = run_peerbus({"call", "--url", url, "slow-srv", "wait", "--timeout", "0.5"}, 20s, url);
  CHECK(r.code == 3);
  CHECK(contains(r.err, "500 ms"));
  r = run_peerbus({"call", "--url", url, "slow-srv", "wait", "{not json"}, 20s, url);
  CHECK(r.code == 2);
}

TEST_CASE("call cli: calls complete with 10% of datagrams dropped each way", "[net][cli]") {
  const auto url = private_bus_url();
  child srv = serve(url, "lossy-srv", "echo", {"cat"}, {"--faults", "rx=0.1,tx=0.1,seed=3"});
  for (int i = 1; i <= 5; ++i) {
    auto r = run_peerbus(
        {"call", "--url", url, "--faults", "rx=0.1,tx=0.1,seed=" + std::to_string(10 + i),
         "lossy-srv", "echo", std::to_string(i), "--timeout", "10"},
        30s, url);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    CHECK(r.lines == std::vector<std::string>{std::to_string(i)});
  }
}

TEST_CASE("call cli: a pattern prints one line per peer and names the one that did not answer",
          "[net][cli]") {
  const auto url = private_bus_url();
  child a = serve(url, "pw-1", "who", {"sh", "-c", "cat >/dev/null; echo '\"one\"'"});
  child b = serve(url, "pw-2", "who", {"sh", "-c", "cat >/dev/null; echo '\"two\"'"});
  options o;
  o.url = url;
  o.name = "pw-3";
  bus silent(o);
  std::mutex m;
  std::vector<responder> kept;
  auto h = silent.handle("who", [&](const call_request&, responder r) {
    std::lock_guard<std::mutex> lock(m);
    kept.push_back(r);
  });
  auto r = run_peerbus({"call", "--url", url, "pw-*", "who", "--timeout", "1"}, 20s, url);
  INFO(describe(r));
  CHECK(r.code == 3);
  REQUIRE(r.lines.size() == 3);
  int ok = 0, missing = 0;
  for (auto& line : r.lines) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("result")) ++ok;
    if (j.contains("error")) {
      ++missing;
      CHECK(j["peer"] == silent.id().str());
      CHECK(j["error"]["code"] == "timeout");
    }
  }
  CHECK(ok == 2);
  CHECK(missing == 1);
}

TEST_CASE("call cli: a server killed during the call fails it when it expires, not at the timeout",
          "[net][cli]") {
  const auto url = private_bus_url();
  const std::string mark =
      "/tmp/peerbus-call-test-" + std::to_string(::getpid()) + "-" + bus_group_port(url).substr(8);
  std::remove(mark.c_str());
  child srv = serve(url, "doomed-srv", "work", {"sh", "-c", "touch '" + mark + "'; exec sleep 8"});
  child caller = spawn_peerbus({"call", "--url", url, "doomed-srv", "work", "--timeout", "60"}, url);
  REQUIRE(wait_until([&] { return std::ifstream(mark).good(); }, 10s));
  srv.signal(SIGKILL);  // no goodbye: the caller learns it from the expiry (3 missed heartbeats)
  auto code = caller.wait_exit(deadline_in(30s));
  std::remove(mark.c_str());
  INFO(caller.stderr_text());
  CHECK(code == 1);
  CHECK(caller.stderr_text().find("expired") != std::string::npos);
}
