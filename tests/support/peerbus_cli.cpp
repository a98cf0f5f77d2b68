// support/peerbus_cli.cpp: running the `peerbus` CLI from tests.
#include "support/peerbus_cli.hpp"

#include <csignal>
#include <stdexcept>

namespace peerbus::test {

std::string peerbus_bin() {
  std::string bin = PEERBUS_BIN;
  if (bin.empty()) throw std::runtime_error("PEERBUS_BIN is empty: configure with PEERBUS_BUILD_TOOLS=ON");
  return bin;
}

std::vector<std::string> peerbus_cmd(std::vector<std::string> args) {
  args.insert(args.begin(), peerbus_bin());
  return args;
}

child spawn_peerbus(std::vector<std::string> args, const std::string& url, stdin_mode in) {
  std::map<std::string, std::string> env{{"PEERBUS_FAULTS", ""}};
  if (!url.empty()) env["PEERBUS_URL"] = url;
  return child(peerbus_cmd(std::move(args)), std::move(env), in);
}

run_result run_peerbus(std::vector<std::string> args, std::chrono::milliseconds timeout,
                       const std::string& url) {
  child c = spawn_peerbus(std::move(args), url);
  run_result r;
  r.code = c.wait_exit(deadline_in(timeout));
  if (!r.code) {
    c.signal(SIGKILL);
    c.wait_exit(deadline_in(std::chrono::seconds(5)));
  }
  r.out = c.stdout_text();
  r.err = c.stderr_text();
  r.lines = c.lines();
  return r;
}

std::string describe(const child& c) {
  // Long runs print a lot on stderr (stats, loss lines): the tail is what explains a failure.
  const auto lines = c.lines();
  auto err = c.stderr_text();
  if (err.size() > 3000) err = "..." + err.substr(err.size() - 3000);
  return c.command_line() + "\n--- stdout: " + std::to_string(lines.size()) +
         " lines, last: " + (lines.empty() ? std::string() : lines.back()) +
         "\n--- stderr (tail) ---\n" + err;
}

std::string describe(const run_result& r) {
  return "exit " + (r.code ? std::to_string(*r.code) : std::string("none (killed)")) +
         "\n--- stdout ---\n" + r.out + "--- stderr ---\n" + r.err;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace peerbus::test
