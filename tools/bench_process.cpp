// tools/bench_process.cpp: starting this binary again in a hidden bench role (posix_spawn),
// reading its stdout lines with a deadline, reaping it and ending it by pid.
#include "bench_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <system_error>
#include <thread>

extern char** environ;

namespace peerbus::tools::bench {

namespace {

// This program's own path, so the child runs exactly this build.
std::string self_path() {
  std::array<char, PATH_MAX> buf{};
  ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0)
    throw std::system_error(errno, std::generic_category(), "bench: readlink /proc/self/exe");
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

}  // namespace

bench_child::bench_child(const std::vector<std::string>& args) {
  std::string path = self_path();
  std::vector<std::string> argv_s;
  argv_s.push_back(path);
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::array<int, 2> out{-1, -1};
  if (::pipe2(out.data(), O_CLOEXEC) != 0)
    throw std::system_error(errno, std::generic_category(), "bench: pipe2");

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);  // dup2 clears close-on-exec on fd 1
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGPIPE}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  int rc = ::posix_spawn(&pid_, path.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    pid_ = -1;
    throw std::system_error(rc, std::generic_category(), "bench: starting " + path);
  }
  out_ = out[0];
}

bench_child::~bench_child() {
  stop(std::chrono::milliseconds(500));
  if (out_ >= 0) ::close(out_);
}

std::optional<std::string> bench_child::read_line(clock::time_point deadline) {
  for (;;) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    if (eof_ || out_ < 0) return std::nullopt;
    auto left = remaining(deadline);
    if (left.count() == 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), INT_MAX)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;  // timed out: the loop sees the deadline
    char chunk[4096];
    ssize_t n = ::read(out_, chunk, sizeof chunk);
    if (n > 0) {
      buf_.append(chunk, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      eof_ = true;
    }
  }
}

bool bench_child::try_reap() {
  if (status_) return true;
  if (pid_ <= 0) return true;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
    return true;
  }
  if (r < 0) {  // not our child any more (cannot happen unless someone else reaped it)
    status_ = -1;
    return true;
  }
  return false;
}

std::optional<int> bench_child::wait_exit(clock::time_point deadline) {
  // Polled: only after the measurement, when a few milliseconds of wake-ups cost nothing.
  for (;;) {
    if (try_reap()) return status_;
    if (clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

int bench_child::stop(std::chrono::milliseconds grace) {
  if (try_reap()) return *status_;
  ::kill(pid_, SIGTERM);  // this child's pid only, and only while it is unreaped (ours)
  if (auto code = wait_exit(clock::now() + grace)) return *code;
  ::kill(pid_, SIGKILL);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  status_ = 128 + SIGKILL;
  return *status_;
}

}  // namespace peerbus::tools::bench
