// support/netns.cpp: skip reporting, commands run to completion, the veth_pair fixture.
#include "support/netns.hpp"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace peerbus::test {

namespace {

constexpr const char* name_prefix = "peerbus-lan-";

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// Runs argv; throws with the command and its output when it fails.
std::string must_run(const std::vector<std::string>& argv) {
  std::string out;
  const auto rc = run_command(argv, std::chrono::seconds(20), &out);
  if (rc != 0)
    throw std::runtime_error("`" + joined(argv) + "` failed (" +
                             (rc ? "exit " + std::to_string(*rc) : std::string("timed out")) +
                             "): " + out);
  return out;
}

// Namespaces "peerbus-lan-PID-N-S" whose test process is gone: a killed run left them.
void remove_orphans() {
  std::string list;
  if (run_command({"ip", "netns", "list"}, std::chrono::seconds(10), &list) != 0) return;
  std::istringstream in(list);
  for (std::string line; std::getline(in, line);) {
    const std::string name = line.substr(0, line.find(' '));
    if (name.rfind(name_prefix, 0) != 0) continue;
    const long pid = std::atol(name.c_str() + std::string(name_prefix).size());
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      run_command({"ip", "netns", "del", name}, std::chrono::seconds(10));
  }
}

}  // namespace

void report_skip(const std::string& why) {
  WARN("SKIPPED: " << why);
  std::cout << "SKIPPED: " << why << std::endl;
  if (const char* code = std::getenv("PEERBUS_TEST_SKIP_CODE"); code && *code)
    std::exit(std::atoi(code));
}

std::optional<int> run_command(const std::vector<std::string>& argv,
                               std::chrono::milliseconds timeout, std::string* out) {
  child c(argv);
  auto rc = c.wait_exit(deadline_in(timeout));
  if (!rc) {
    c.signal(SIGKILL);
    c.wait_exit(deadline_in(std::chrono::seconds(5)));
  }
  if (out) *out = c.stdout_text() + c.stderr_text();
  return rc;
}

std::string netns_unavailable() {
  if (::geteuid() != 0) return "not root: ip netns and veth pairs need root";
  std::string out;
  if (run_command({"sh", "-c", "command -v ip"}, std::chrono::seconds(10), &out) != 0)
    return "ip is not installed (Debian: iproute2; scripts/deps.sh test installs it)";
  try {
    veth_pair probe;
  } catch (const std::exception& e) {
    return std::string("cannot build two namespaces joined by a veth here: ") + e.what();
  }
  return {};
}

veth_pair::veth_pair() {
  static std::atomic<int> serial{0};
  remove_orphans();
  const std::string base =
      name_prefix + std::to_string(::getpid()) + "-" + std::to_string(serial++) + "-";
  ns_[0] = base + "a";
  ns_[1] = base + "b";
  try {
    for (int side : {0, 1}) must_run({"ip", "netns", "add", ns_[side]});
    // Created inside the namespaces directly: the root namespace never holds either end.
    must_run({"ip", "link", "add", dev, "netns", ns_[0], "type", "veth", "peer", "name", dev,
              "netns", ns_[1]});
    for (int side : {0, 1}) {
      ip(side, {"link", "set", "lo", "up"});
      // No duplicate address detection: the addresses are usable at once, not after ~2 s.
      // Through /proc rather than sysctl(8): procps is not on every minimal machine.
      must_run(exec(side, {"sh", "-c",
                           std::string("echo 0 >/proc/sys/net/ipv6/conf/") + dev + "/accept_dad"}));
      ip(side, {"link", "set", dev, "mtu", "1500", "up"});
      ip(side, {"addr", "add", v4(side) + "/24", "dev", dev});
      ip(side, {"-6", "addr", "add", v6(side) + "/64", "dev", dev, "nodad"});
    }
  } catch (...) {
    for (const auto& n : ns_) run_command({"ip", "netns", "del", n}, std::chrono::seconds(10));
    throw;
  }
}

veth_pair::~veth_pair() {
  for (const auto& n : ns_) run_command({"ip", "netns", "del", n}, std::chrono::seconds(10));
}

std::vector<std::string> veth_pair::exec(int side, std::vector<std::string> argv) const {
  argv.insert(argv.begin(), {"ip", "netns", "exec", ns_[side]});
  return argv;
}

std::string veth_pair::ip(int side, std::vector<std::string> args) const {
  args.insert(args.begin(), {"ip", "-n", ns_[side]});
  return must_run(args);
}

}  // namespace peerbus::test
