// support/netns.hpp: root-only tests: skipping loudly when they cannot run, and a pair of
// network namespaces joined by a veth that a test creates and always removes again.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace peerbus::test {

// Reports a test that cannot run here, loudly: a WARN and a "SKIPPED:" line on stdout. With
// $PEERBUS_TEST_SKIP_CODE set (its ctest entry's SKIP_RETURN_CODE, tests/CMakeLists.txt), the
// test binary exits with that code, so ctest shows "Skipped", never "Passed".
void report_skip(const std::string& why);

// Runs argv to completion; its exit code, or nullopt at the timeout (then killed). `out` gets
// stdout and stderr.
std::optional<int> run_command(const std::vector<std::string>& argv,
                               std::chrono::milliseconds timeout, std::string* out = nullptr);

// Why this process cannot build namespaces and veth pairs (not root, no `ip`, no veth support),
// or empty when it can.
std::string netns_unavailable();

// Two network namespaces, side 0 and side 1, each with lo up and one end of a veth pair named
// lan0 (MTU 1500, up): 192.0.2.1/24 and fd00::1/64 on side 0, 192.0.2.2/24 and fd00::2/64 on
// side 1 (documentation and ULA space only, never routed off the pair). Names carry this
// process's pid; namespaces left over by a test process that died are removed on construction.
// The destructor deletes both namespaces (and with them the veth), also when a check failed.
//
//   veth_pair net;
//   child sub(net.exec(1, {peerbus_bin(), "sub", "--url", url}));
class veth_pair {
 public:
  veth_pair();  // throws std::runtime_error quoting the command that failed
  ~veth_pair();
  veth_pair(const veth_pair&) = delete;
  veth_pair& operator=(const veth_pair&) = delete;

  const std::string& ns(int side) const { return ns_[side]; }
  static constexpr const char* dev = "lan0";
  static std::string v4(int side) { return "192.0.2." + std::to_string(side + 1); }
  static std::string v6(int side) { return "fd00::" + std::to_string(side + 1); }

  // {"ip", "netns", "exec", NS, argv...}
  std::vector<std::string> exec(int side, std::vector<std::string> argv) const;
  // Runs `ip -n NS args...`; throws std::runtime_error with its output when it fails.
  std::string ip(int side, std::vector<std::string> args) const;

 private:
  std::string ns_[2];
};

}  // namespace peerbus::test
