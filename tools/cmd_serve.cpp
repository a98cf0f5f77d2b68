// tools/cmd_serve.cpp: `peerbus serve METHOD -- COMMAND...`: answer calls by running a command.
#include "commands.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>


extern char** environ;

namespace peerbus::tools {

namespace {

struct serve_args {
  std::string method;
  std::vector<std::string> command;
};

struct run_out {
  bool started = false;
  std::string spawn_error;
  int status = 0;
  std::string out, err;
};

// Runs argv with `input` on its stdin and collects stdout and stderr (poll: neither side can
// block the other). The child gets default SIGINT/SIGTERM/SIGPIPE and an empty signal mask:
// the CLI blocks SIGINT/SIGTERM in every thread and ignores SIGPIPE.
run_out run_command(const std::vector<std::string>& argv, const std::string& input) {
  run_out r;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return r.spawn_error = std::strerror(errno), r;
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]), ::close(in[1]);
    return r.spawn_error = std::strerror(errno), r;
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(in[0]), ::close(in[1]), ::close(out[0]), ::close(out[1]);
    return r.spawn_error = std::strerror(errno), r;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, deflt;
  sigemptyset(&none);
  sigemptyset(&deflt);
  for (int s : {SIGINT, SIGTERM, SIGPIPE}) sigaddset(&deflt, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &deflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> cargv;
  for (auto& s : argv) cargv.push_back(const_cast<char*>(s.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, cargv[0], &fa, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(in[0]), ::close(out[1]), ::close(err[1]);
  if (rc != 0) {
    ::close(in[1]), ::close(out[0]), ::close(err[0]);
    r.spawn_error = std::strerror(rc);
    return r;
  }
  r.started = true;
  int wfd = in[1];
  ::fcntl(wfd, F_SETFL, O_NONBLOCK);
  std::size_t written = 0;
  if (input.empty()) ::close(wfd), wfd = -1;
  int ofd = out[0], efd = err[0];
  char buf[65536];
  while (ofd >= 0 || efd >= 0 || wfd >= 0) {
    pollfd p[3];
    int n = 0;
    if (wfd >= 0) p[n++] = {wfd, POLLOUT, 0};
    if (ofd >= 0) p[n++] = {ofd, POLLIN, 0};
    if (efd >= 0) p[n++] = {efd, POLLIN, 0};
    if (::poll(p, static_cast<nfds_t>(n), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (!p[i].revents) continue;
      if (p[i].fd == wfd) {
        ssize_t k = ::write(wfd, input.data() + written, input.size() - written);
        if (k > 0) written += static_cast<std::size_t>(k);
        if ((k < 0 && errno != EAGAIN && errno != EINTR) || written == input.size())
          ::close(wfd), wfd = -1;  // done, or the command does not read its stdin (EPIPE)
      } else {
        int& fd = p[i].fd == ofd ? ofd : efd;
        std::string& dst = p[i].fd == ofd ? r.out : r.err;
        ssize_t k = ::read(fd, buf, sizeof buf);
        if (k > 0)
          dst.append(buf, static_cast<std::size_t>(k));
        else if (k == 0 || (errno != EAGAIN && errno != EINTR))
          ::close(fd), fd = -1;
      }
    }
  }
  while (::waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

std::string trimmed(std::string s, std::size_t max = 2000) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  if (s.size() > max) s = s.substr(0, max) + "...";
  return s;
}

void answer(const std::vector<std::string>& cmd, const call_request& rq, responder& r) {
  auto res = run_command(cmd, rq.params_json + "\n");
  if (!res.started)
    return void(r.fail("command_failed", "cannot run '" + cmd[0] + "': " + res.spawn_error));
  std::string err = trimmed(res.err);
  std::string why = err.empty() ? std::string() : ": " + err;
  if (WIFSIGNALED(res.status))
    return void(r.fail("command_failed", "'" + cmd[0] + "' was killed by signal " +
                                             std::to_string(WTERMSIG(res.status)) + why));
  if (WEXITSTATUS(res.status) != 0)
    return void(r.fail("command_failed", "'" + cmd[0] + "' exited with status " +
                                             std::to_string(WEXITSTATUS(res.status)) + why));
  if (res.out.find_first_not_of(" \t\r\n") == std::string::npos) return void(r.reply(nullptr));
  try {
    r.reply(nlohmann::json::parse(res.out));
  } catch (const nlohmann::json::exception&) {
    r.fail("bad_output", "'" + cmd[0] + "' printed invalid JSON: " + trimmed(res.out, 200) + why);
  }
}

int run_serve(const global_options& g, const serve_args& a) {
  bus b(make_options(g, "peerbus-serve"));
  // Calls are served concurrently: each runs its command on a thread of its own, so a slow
  // command holds neither the bus nor other calls.
  auto inflight = std::make_shared<std::atomic<int>>(0);
  auto cmd = a.command;
  auto h = b.handle(a.method, [cmd, inflight](const call_request& rq, responder r) {
    inflight->fetch_add(1);
    std::thread([cmd, rq, r, inflight]() mutable {
      answer(cmd, rq, r);
      r = responder();
      inflight->fetch_sub(1);
      wake_waiters();
    }).detach();
  });
  std::cerr << "peerbus serve: serving '" << a.method << "' as " << b.name() << " (" << b.id().str()
            << ")" << std::endl;
  wait_until_or_stop([] { return false; }, std::chrono::steady_clock::time_point::max());
  h.unsubscribe();
  // Let the calls under way finish (bounded), so their callers get answers.
  wait_until_or_stop([&] { return inflight->load() == 0; },
                     std::chrono::steady_clock::now() + std::chrono::seconds(5));
  b.close();
  return exit_ok;
}

}  // namespace

command add_serve_command(CLI::App& root, global_options& g) {
  auto a = std::make_shared<serve_args>();
  auto* app = root.add_subcommand("serve",
                                  "answer calls to METHOD by running COMMAND (params on stdin, "
                                  "JSON reply on stdout)");
  add_global_options(*app, g);
  app->add_option("method", a->method, "method name to answer")->required();
  app->add_option("command", a->command, "-- COMMAND [ARGS...]: run once per call")->required();
  return {app, [&g, a] { return run_serve(g, *a); }};
}

}  // namespace peerbus::tools
