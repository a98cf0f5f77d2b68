// tests/net/cli_test.cpp: the `peerbus` CLI's exit codes and error messages (tools/): usage
// errors are 2 and name the bad part, a wait that times out is 3, --help and --version are 0.
#include "support/bus_address.hpp"
#include "support/peerbus_cli.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

// Every command here should finish at once; 10 s only bounds a hang (ASan builds included).
constexpr auto run_limit = 10s;

// Runs the CLI with $PEERBUS_URL on a private bus, so a command that joins before it fails never
// touches the shared default bus.
run_result run(std::vector<std::string> args) {
  return run_peerbus(std::move(args), run_limit, private_bus_url());
}

// Prints what a failed check needs: the command's output.
// True when `addr` is an address of this machine (binding a UDP socket to it succeeds).
bool is_local_address(const char* addr) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, addr, &a.sin_addr);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

TEST_CASE("cli: no subcommand is a usage error", "[cli]") {
  auto r = run({});
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(contains(r.err, "subcommand"));
}

TEST_CASE("cli: an unknown option or subcommand is a usage error", "[cli]") {
  for (auto args : std::vector<std::vector<std::string>>{
           {"--no-such-option"}, {"sub", "--no-such-option"}, {"pub", "t", "1", "--bogus"},
           {"peers", "--bogus"}, {"frobnicate"}}) {
    auto r = run(args);
    INFO(args.front() << (args.size() > 1 ? " " + args[1] : "") << ": " << describe(r));
    CHECK(r.code == 2);
    CHECK_FALSE(r.err.empty());
  }
}

TEST_CASE("cli: invalid option values are usage errors", "[cli]") {
  for (auto args : std::vector<std::vector<std::string>>{
           {"sub", "--count", "0"}, {"sub", "--timeout", "-1"}, {"pub", "t", "1", "--count", "x"},
           {"pub", "t", "1", "--rate", "0"}, {"peers", "--wait", "-2"}, {"pub"}}) {
    auto r = run(args);
    INFO(describe(r));
    CHECK(r.code == 2);
  }
}

TEST_CASE("cli: pub with invalid JSON is a usage error that says JSON", "[cli]") {
  for (std::string bad : {"{bad", "{\"a\":}", "[1,2", "hello", "'single'", "1 2", ""}) {
    auto url = private_bus_url();
    auto r = run({"pub", "--url", url, "t.json", bad});
    INFO("payload <" << bad << ">: " << describe(r));
    CHECK(r.code == 2);
    CHECK(contains(r.err, "JSON"));
  }
}

TEST_CASE("cli: pub with a bad topic is a usage error that says topic", "[cli]") {
  for (const std::string& topic : std::vector<std::string>{"a..b", ".a", "a.", "a.*", "a.>", "has\"quote", std::string(300, 'x')}) {
    auto url = private_bus_url();
    auto r = run({"pub", "--url", url, topic, "1"});
    INFO("topic <" << topic << ">: " << describe(r));
    CHECK(r.code == 2);
    CHECK(contains(r.err, "topic"));
  }
}

TEST_CASE("cli: sub with a bad pattern is a usage error", "[cli]") {
  auto r = run({"sub", "--url", private_bus_url(), "a..b", "--timeout", "0.2"});
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK_FALSE(r.err.empty());
}

TEST_CASE("cli: a bad bus URL is a usage error naming the bad part", "[cli]") {
  struct bad_url {
    std::string url, named;
  };
  auto port = bus_group_port(private_bus_url());
  port = port.substr(port.find(':') + 1);
  for (const auto& [url, named] : std::vector<bad_url>{
           {"udpm://239.255.1.2:" + port + "?ttl=300", "ttl=300"},
           {"udpm://239.255.1.2:" + port + "?ttl=-1", "ttl=-1"},
           {"udpm://10.1.2.3:" + port + "?ttl=0", "10.1.2.3"},
           {"udpm://127.0.0.1:" + port, "not a multicast address"},
           {"udpm://239.255.1.2:" + port + "?ttl=0&colour=blue", "colour"},
           {"udpm://239.255.1.2:" + port + "?iface=not-an-ip", "not-an-ip"},
           {"udpm://239.255.1.2:99999", "99999"},
           {"http://239.255.1.2:" + port, "udpm://"},
       }) {
    for (std::string cmd : {"pub", "sub", "peers"}) {
      std::vector<std::string> args{cmd, "--url", url};
      if (cmd == "pub") args.insert(args.end(), {"t", "1"});
      if (cmd == "sub") args.insert(args.end(), {"--timeout", "0.2"});
      auto r = run(args);
      INFO(cmd << " --url " << url << ": " << describe(r));
      CHECK(r.code == 2);
      CHECK(contains(r.err, named));
    }
  }
}

TEST_CASE("cli: a bad $PEERBUS_URL is a usage error too", "[cli]") {
  auto r = run_peerbus({"sub", "--timeout", "0.2"}, run_limit, "udpm://239.255.1.2:7000?ttl=999");
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(contains(r.err, "ttl=999"));
}

TEST_CASE("cli: an interface that is not on this machine is a usage error saying so", "[cli]") {
  // 198.51.100.0/24 is TEST-NET-2 (RFC 5737): documentation only, never configured on a host.
  const char* foreign = "198.51.100.7";
  if (is_local_address(foreign)) {
    WARN("198.51.100.7 is an address of this machine; nothing to test");
    return;
  }
  auto gp = bus_group_port(private_bus_url());
  for (std::string cmd : {"pub", "sub", "peers"}) {
    std::vector<std::string> args{cmd, "--url", "udpm://" + gp + "?ttl=0&iface=" + foreign};
    if (cmd == "pub") args.insert(args.end(), {"t", "1"});
    if (cmd == "sub") args.insert(args.end(), {"--timeout", "0.2"});
    auto r = run(args);
    INFO(cmd << ": " << describe(r));
    CHECK(r.code == 2);
    CHECK(contains(r.err, foreign));
    CHECK(contains(r.err, "not on this machine"));
  }
}

TEST_CASE("cli: sub --count with nothing published times out with 3", "[cli]") {
  auto start = std::chrono::steady_clock::now();
  auto r = run({"sub", "--url", private_bus_url(), "--count", "1", "--timeout", "0.3"});
  auto took = std::chrono::steady_clock::now() - start;
  INFO(describe(r));
  CHECK(r.code == 3);
  CHECK(r.out.empty());
  CHECK(contains(r.err, "timed out"));
  CHECK(took >= 300ms);
}

TEST_CASE("cli: sub --timeout without --count ends quietly with 0", "[cli]") {
  auto r = run({"sub", "--url", private_bus_url(), "--timeout", "0.2"});
  INFO(describe(r));
  CHECK(r.code == 0);
  CHECK(r.out.empty());
}

TEST_CASE("cli: pub --wait-subscribers with nobody there times out with 3", "[cli]") {
  auto r = run({"pub", "--url", private_bus_url(), "t.none", "1", "--wait-subscribers", "1",
                "--wait-timeout", "0.3"});
  INFO(describe(r));
  CHECK(r.code == 3);
  CHECK(contains(r.err, "subscriber"));
}

TEST_CASE("cli: pub with nobody listening succeeds", "[cli]") {
  auto r = run({"pub", "--url", private_bus_url(), "t.alone", "{\"a\":1}", "--count", "3"});
  INFO(describe(r));
  CHECK(r.code == 0);
}

TEST_CASE("cli: --help on the command and on each subcommand exits 0", "[cli]") {
  struct help_case {
    std::vector<std::string> args;
    std::vector<std::string> mentions;
  };
  for (const auto& [args, mentions] : std::vector<help_case>{
           {{"--help"}, {"pub", "sub", "peers"}},
           {{"pub", "--help"}, {"--count", "--rate", "--wait-subscribers", "--wait-timeout", "--url"}},
           {{"sub", "--help"}, {"--count", "--timeout", "--data", "--self", "--url"}},
           {{"peers", "--help"}, {"--json", "--wait", "--watch", "--url"}},
           {{"pub", "-h"}, {"--count"}},
       }) {
    auto r = run(args);
    INFO(args.front() << ": " << describe(r));
    CHECK(r.code == 0);
    for (const auto& m : mentions) CHECK(contains(r.out, m));
  }
}

TEST_CASE("cli: --version prints the version and exits 0", "[cli]") {
  auto r = run({"--version"});
  INFO(describe(r));
  CHECK(r.code == 0);
  REQUIRE_FALSE(r.lines.empty());
  // The project's version (CMakeLists.txt project(VERSION)) is x.y.z.
  CHECK(r.lines.front().find('.') != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("cli: global options work before the subcommand as well as after it", "[cli]") {
  // --url before the subcommand: the sub must be on the private bus, so a pub there reaches it.
  const std::string url = private_bus_url();
  child sub = spawn_peerbus({"--url", url, "sub", "g.t", "--count", "1"},
                            private_bus_url());  // $PEERBUS_URL names another bus: --url must win
  auto pub = run_peerbus({"--name", "early-pub", "pub", "--url", url, "--wait-subscribers", "1",
                          "g.t", "7"},
                         run_limit, private_bus_url());
  INFO(describe(pub));
  CHECK(pub.code == 0);
  REQUIRE(sub.wait_exit(deadline_in(run_limit)) == 0);
  REQUIRE(sub.lines().size() == 1);
  CHECK(contains(sub.lines()[0], "\"name\":\"early-pub\""));
  CHECK(contains(sub.lines()[0], "\"data\":7"));
  // A bad value before the subcommand is the same usage error as after it.
  auto bad = run({"--url", "udpm://239.255.1.2:1?ttl=300", "peers"});
  INFO(describe(bad));
  CHECK(bad.code == 2);
  CHECK(contains(bad.err, "ttl=300"));
}

TEST_CASE("cli: sub prints a message matching several of its patterns once", "[cli]") {
  const std::string url = private_bus_url();
  child sub = spawn_peerbus({"sub", "--url", url, "a.>", "a.b", "*.b", "--count", "2"});
  auto pub = run_peerbus({"pub", "--url", url, "--wait-subscribers", "1", "a.b", "1", "--count", "2"},
                         run_limit);
  INFO(describe(pub));
  REQUIRE(pub.code == 0);
  REQUIRE(sub.wait_exit(deadline_in(run_limit)) == 0);
  const auto lines = sub.lines();
  REQUIRE(lines.size() == 2);
  CHECK(contains(lines[0], "\"seq\":1"));
  CHECK(contains(lines[1], "\"seq\":2"));
}
