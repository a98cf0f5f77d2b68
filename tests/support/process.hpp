// support/process.hpp: a POSIX child process for integration tests: argv + extra environment,
// stdout/stderr captured by a background reader thread, deadline-bounded waits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace peerbus::test {

using clock = std::chrono::steady_clock;

// A deadline `timeout` from now: `c.wait_exit(deadline_in(5s))`.
inline clock::time_point deadline_in(std::chrono::milliseconds timeout) {
  return clock::now() + timeout;
}

// What the child's stdin is connected to.
enum class stdin_mode {
  null,  // /dev/null: a child that reads stdin sees end-of-file at once (the default)
  pipe,  // a pipe fed by write_stdin() and closed by close_stdin() (or the destructor)
};

// One child process, started in the constructor with posix_spawn.
//
//   child sub({PEERBUS_BIN, "sub", "--url", url, "--count", "1"});
//   REQUIRE(sub.wait_for_line("\"seq\":1", deadline_in(5s)));
//   REQUIRE(sub.wait_exit(deadline_in(5s)) == 0);
//
// stdout and stderr go through non-blocking pipes drained by a background thread, so a chatty
// child never blocks on a full pipe. The child gets the parent's environment plus `env` (which
// overrides variables of the same name), default signal dispositions and an empty signal mask.
// All pipes are close-on-exec in the parent, so children started concurrently from several
// threads do not inherit each other's pipes.
//
// The destructor sends SIGKILL to this child's pid only (never a process group) if it has not
// been reaped yet, reaps it, and stops the reader thread.
//
// Thread safety: every member may be called from any thread, except that one object must not
// be moved or destroyed while another thread uses it. The constructor throws std::system_error
// when the child cannot be started (e.g. argv[0] not found).
class child {
 public:
  explicit child(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
                 stdin_mode in = stdin_mode::null);
  ~child();
  child(child&&) noexcept;
  child& operator=(child&&) noexcept;
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  pid_t pid() const;
  // The argv this child was started with, joined by spaces (for failure messages).
  std::string command_line() const;

  // True as soon as any stdout line so far (complete lines, and the unterminated tail once the
  // child closes stdout) satisfies `pred` / contains `substring`; false at the deadline or when
  // stdout reached end-of-file without a match.
  bool wait_for_line(const std::function<bool(const std::string&)>& pred,
                     clock::time_point deadline) const;
  bool wait_for_line(std::string_view substring, clock::time_point deadline) const;
  // True once stdout holds at least `n` lines; false at the deadline or end-of-file before that.
  bool wait_for_lines(std::size_t n, clock::time_point deadline) const;
  // The same for stderr, which is also split into lines.
  bool wait_for_stderr(std::string_view substring, clock::time_point deadline) const;

  // The first stdout line so far that satisfies `pred`.
  std::optional<std::string> find_line(const std::function<bool(const std::string&)>& pred) const;
  std::vector<std::string> lines() const;  // stdout lines so far, without the '\n'
  std::string stdout_text() const;         // everything read from stdout so far
  std::string stderr_text() const;         // everything read from stderr so far

  // Waits until the child has exited and both output pipes reached end-of-file (so lines() is
  // complete afterwards). Returns the exit code, or 128 + N if signal N killed it (the shell's
  // convention), or nullopt if it was still running (or its output still open) at the deadline.
  std::optional<int> wait_exit(clock::time_point deadline);
  // True while the child has not exited (does not reap output).
  bool running();

  // Sends `sig` to this child's pid (no-op once reaped, so a recycled pid is never hit).
  void signal(int sig);

  // stdin_mode::pipe only: write_stdin writes all of `text` (blocking while the pipe is full;
  // throws std::system_error with EPIPE if the child has gone), close_stdin closes the pipe so
  // the child sees end-of-file.
  void write_stdin(std::string_view text);
  void close_stdin();

 private:
  struct state;
  std::unique_ptr<state> s_;
};

}  // namespace peerbus::test
