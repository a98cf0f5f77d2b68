// tools/bench_process.hpp: the processes a bench starts: this same binary (/proc/self/exe) in a
// hidden role, its stdout on a pipe, ended only by its own pid.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace peerbus::tools::bench {

/// One child: `peerbus ARGS...` started with posix_spawn (stdin /dev/null, stderr shared with us,
/// stdout a pipe we read lines from), with default signal dispositions and an empty mask.
///
/// The destructor ends a child still running: SIGTERM to its pid, a short grace, then SIGKILL,
/// and reaps it. Never a process group, never by name. Throws std::system_error when the child
/// cannot be started.
class bench_child {
 public:
  explicit bench_child(const std::vector<std::string>& args);
  ~bench_child();
  bench_child(const bench_child&) = delete;
  bench_child& operator=(const bench_child&) = delete;

  pid_t pid() const noexcept { return pid_; }
  /// The next line the child wrote on stdout (without '\n'); nullopt at the deadline or when
  /// the child closed stdout first.
  std::optional<std::string> read_line(clock::time_point deadline);
  /// The child's exit code (128 + N if signal N ended it), nullopt if still running at the
  /// deadline.
  std::optional<int> wait_exit(clock::time_point deadline);
  /// Ends the child if it is still running (SIGTERM, then SIGKILL after `grace`) and reaps it.
  int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

 private:
  bool try_reap();

  pid_t pid_ = -1;
  int out_ = -1;
  std::string buf_;
  bool eof_ = false;
  std::optional<int> status_;
};

}  // namespace peerbus::tools::bench
