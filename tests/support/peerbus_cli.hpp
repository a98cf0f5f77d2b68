// support/peerbus_cli.hpp: running the `peerbus` CLI from tests: its path, argv building, and a
// run-to-completion helper.
#pragma once

#include "support/process.hpp"

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace peerbus::test {

// Path of the CLI under test (PEERBUS_BIN, set by tests/CMakeLists.txt).
std::string peerbus_bin();

// {PEERBUS_BIN, args...}
std::vector<std::string> peerbus_cmd(std::vector<std::string> args);

// Starts `peerbus args...`. $PEERBUS_URL is set to `url` when given (so a command that falls back
// to the default bus never touches the shared one) and $PEERBUS_FAULTS is emptied.
child spawn_peerbus(std::vector<std::string> args, const std::string& url = {},
                    stdin_mode in = stdin_mode::null);

struct run_result {
  std::optional<int> code;  // nullopt: still running at the deadline (then killed)
  std::string out, err;
  std::vector<std::string> lines;  // stdout lines
};

// Runs `peerbus args...` to completion (SIGKILL after `timeout`).
run_result run_peerbus(std::vector<std::string> args, std::chrono::milliseconds timeout,
                       const std::string& url = {});

// What a failed check needs to show: the command, its exit and its output.
std::string describe(const child& c);
std::string describe(const run_result& r);
bool contains(const std::string& text, const std::string& part);

}  // namespace peerbus::test
