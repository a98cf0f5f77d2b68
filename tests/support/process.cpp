// support/process.cpp: child processes for integration tests (posix_spawn, a reader thread per
// child that drains stdout and stderr, waitpid-based exit waits).
#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

extern char** environ;

namespace peerbus::test {

namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

std::array<int, 2> make_pipe(int extra_flags = 0) {
  std::array<int, 2> fds{-1, -1};
  if (::pipe2(fds.data(), O_CLOEXEC | extra_flags) != 0) throw_errno(errno, "pipe2");
  return fds;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// The test process writes to stdin pipes of children that may have died: EPIPE beats SIGPIPE.
// Children get SIGPIPE back to the default through POSIX_SPAWN_SETSIGDEF.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

// One captured stream: raw text and the complete lines split from it.
struct stream {
  int fd = -1;
  std::string text;
  std::vector<std::string> lines;
  std::size_t line_start = 0;  // offset in text where the unterminated tail begins
  bool eof = false;

  void append(const char* data, std::size_t n) {
    text.append(data, n);
    for (std::size_t nl; (nl = text.find('\n', line_start)) != std::string::npos;) {
      lines.emplace_back(text, line_start, nl - line_start);
      line_start = nl + 1;
    }
  }
  void finish() {
    if (line_start < text.size()) lines.emplace_back(text, line_start);
    line_start = text.size();
    eof = true;
  }
};

}  // namespace

struct child::state {
  std::vector<std::string> argv;
  pid_t pid = -1;
  int stdin_fd = -1;
  std::array<int, 2> wake{-1, -1};  // the destructor writes to wake[1] to stop the reader

  mutable std::mutex m;
  mutable std::condition_variable cv;
  stream out, err;
  std::mutex reap_m;  // guards pid reaping: `status` set once
  std::optional<int> status;
  std::thread reader;

  void read_loop() {
    std::array<char, 65536> buf;
    for (;;) {
      std::array<pollfd, 3> p{};
      nfds_t n = 0;
      p[n++] = {wake[0], POLLIN, 0};
      int out_fd, err_fd;
      {
        std::lock_guard lk(m);
        out_fd = out.eof ? -1 : out.fd;
        err_fd = err.eof ? -1 : err.fd;
      }
      if (out_fd < 0 && err_fd < 0) return;
      if (out_fd >= 0) p[n++] = {out_fd, POLLIN, 0};
      if (err_fd >= 0) p[n++] = {err_fd, POLLIN, 0};
      int r = ::poll(p.data(), n, -1);
      if (r < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (p[0].revents) return;
      for (nfds_t i = 1; i < n; ++i) {
        if (!p[i].revents) continue;
        stream& s = p[i].fd == out_fd ? out : err;
        for (;;) {
          ssize_t got = ::read(p[i].fd, buf.data(), buf.size());
          if (got > 0) {
            std::lock_guard lk(m);
            s.append(buf.data(), static_cast<std::size_t>(got));
            cv.notify_all();
            continue;
          }
          if (got < 0 && errno == EINTR) continue;
          if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
          std::lock_guard lk(m);  // end-of-file, or an error we cannot recover from
          s.finish();
          cv.notify_all();
          break;
        }
      }
    }
  }

  // Reaps the child if it has exited (or waits for it when `block`). Returns true once reaped.
  bool try_reap(bool block) {
    std::lock_guard lk(reap_m);
    if (status) return true;
    int st = 0;
    pid_t r;
    do {
      r = ::waitpid(pid, &st, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid) {
      status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
      return true;
    }
    if (r < 0) {  // ECHILD: someone else reaped it; report it as unknown but gone
      status = -1;
      return true;
    }
    return false;
  }

  template <class Pred>
  bool wait_stream(const stream& s, clock::time_point deadline, Pred pred) const {
    std::unique_lock lk(m);
    std::size_t checked = 0;
    for (;;) {
      for (; checked < s.lines.size(); ++checked)
        if (pred(s.lines, checked)) return true;
      if (s.eof) return false;
      if (cv.wait_until(lk, deadline) == std::cv_status::timeout) {
        for (; checked < s.lines.size(); ++checked)
          if (pred(s.lines, checked)) return true;
        return false;
      }
    }
  }
};

child::child(std::vector<std::string> argv, std::map<std::string, std::string> env,
             stdin_mode in)
    : s_(std::make_unique<state>()) {
  if (argv.empty()) throw std::invalid_argument("child: empty argv");
  ignore_sigpipe_once();
  s_->argv = std::move(argv);

  // Read ends are non-blocking for the reader thread; write ends stay blocking for the child.
  auto out = make_pipe();
  auto err = make_pipe();
  std::array<int, 2> inp{-1, -1};
  if (in == stdin_mode::pipe) inp = make_pipe();
  s_->wake = make_pipe(O_NONBLOCK);
  for (int fd : {out[0], err[0]}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos && env.count(std::string(kv.substr(0, eq)))) continue;
    env_strings.emplace_back(kv);
  }
  for (auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, argvp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (auto& a : s_->argv) argvp.push_back(a.data());
  argvp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (in == stdin_mode::pipe)
    posix_spawn_file_actions_adddup2(&fa, inp[0], 0);
  else
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, s_->argv[0].c_str(), &fa, &attr, argvp.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close_fd(out[1]);
  close_fd(err[1]);
  close_fd(inp[0]);
  if (rc != 0) {
    close_fd(out[0]);
    close_fd(err[0]);
    close_fd(inp[1]);
    close_fd(s_->wake[0]);
    close_fd(s_->wake[1]);
    throw_errno(rc, "posix_spawn " + s_->argv[0]);
  }
  s_->pid = pid;
  s_->out.fd = out[0];
  s_->err.fd = err[0];
  s_->stdin_fd = inp[1];
  s_->reader = std::thread([st = s_.get()] { st->read_loop(); });
}

child::child(child&&) noexcept = default;
child& child::operator=(child&& other) noexcept {
  if (this != &other) {
    child doomed(std::move(*this));  // its destructor kills and reaps what we held
    s_ = std::move(other.s_);
  }
  return *this;
}

child::~child() {
  if (!s_) return;
  close_fd(s_->stdin_fd);
  if (!s_->try_reap(false)) {
    ::kill(s_->pid, SIGKILL);
    s_->try_reap(true);
  }
  // The reader stops at end-of-file on both pipes, or at once through the wake pipe when a
  // grandchild still holds them open.
  char one = 1;
  [[maybe_unused]] auto w = ::write(s_->wake[1], &one, 1);
  if (s_->reader.joinable()) s_->reader.join();
  close_fd(s_->out.fd);
  close_fd(s_->err.fd);
  close_fd(s_->wake[0]);
  close_fd(s_->wake[1]);
}

pid_t child::pid() const { return s_->pid; }

std::string child::command_line() const {
  std::string s;
  for (auto& a : s_->argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

bool child::wait_for_line(const std::function<bool(const std::string&)>& pred,
                          clock::time_point deadline) const {
  return s_->wait_stream(s_->out, deadline,
                         [&](const std::vector<std::string>& l, std::size_t i) { return pred(l[i]); });
}

bool child::wait_for_line(std::string_view substring, clock::time_point deadline) const {
  return s_->wait_stream(s_->out, deadline, [&](const std::vector<std::string>& l, std::size_t i) {
    return l[i].find(substring) != std::string::npos;
  });
}

bool child::wait_for_lines(std::size_t n, clock::time_point deadline) const {
  return s_->wait_stream(s_->out, deadline,
                         [&](const std::vector<std::string>& l, std::size_t) { return l.size() >= n; }) ||
         lines().size() >= n;
}

bool child::wait_for_stderr(std::string_view substring, clock::time_point deadline) const {
  return s_->wait_stream(s_->err, deadline, [&](const std::vector<std::string>& l, std::size_t i) {
    return l[i].find(substring) != std::string::npos;
  });
}

std::optional<std::string> child::find_line(
    const std::function<bool(const std::string&)>& pred) const {
  std::lock_guard lk(s_->m);
  for (auto& l : s_->out.lines)
    if (pred(l)) return l;
  return std::nullopt;
}

std::vector<std::string> child::lines() const {
  std::lock_guard lk(s_->m);
  return s_->out.lines;
}

std::string child::stdout_text() const {
  std::lock_guard lk(s_->m);
  return s_->out.text;
}

std::string child::stderr_text() const {
  std::lock_guard lk(s_->m);
  return s_->err.text;
}

std::optional<int> child::wait_exit(clock::time_point deadline) {
  // waitpid has no timeout; poll it. Exits are rare events in a test, 2 ms is plenty fine.
  while (!s_->try_reap(false)) {
    if (clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::unique_lock lk(s_->m);
  if (!s_->cv.wait_until(lk, deadline, [&] { return s_->out.eof && s_->err.eof; }))
    return std::nullopt;
  std::lock_guard rl(s_->reap_m);
  return s_->status;
}

bool child::running() { return !s_->try_reap(false); }

void child::signal(int sig) {
  // Holding reap_m: the pid cannot be reaped (and recycled) between the check and the kill.
  std::lock_guard lk(s_->reap_m);
  if (!s_->status) ::kill(s_->pid, sig);
}

void child::write_stdin(std::string_view text) {
  if (s_->stdin_fd < 0) throw std::logic_error("child: stdin is not a pipe (or already closed)");
  while (!text.empty()) {
    ssize_t n = ::write(s_->stdin_fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(errno, "write to child stdin");
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

void child::close_stdin() { close_fd(s_->stdin_fd); }

}  // namespace peerbus::test
