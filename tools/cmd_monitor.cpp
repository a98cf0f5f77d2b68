// tools/cmd_monitor.cpp: `peerbus monitor`: watch a bus without touching it (full screen, plain
// summaries, or every datagram as a JSON line).
#include "commands.hpp"
#include "monitor_model.hpp"
#include "monitor_text.hpp"
#include "monitor_view.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>

namespace peerbus::tools {

namespace {

struct monitor_args {
  bool json = false;
  bool plain = false;
  bool once = false;
  bool no_color = false;
  double interval = 0;  // 0: 0.25 s full screen, 1 s plain
  double duration = 0;
  long long count = 0;  // --json: stop after N datagrams
  std::string peers_by = "name";
  std::string topics_by = "topic";
  std::string filter;
};

// NO_COLOR (https://no-color.org): present and not empty.
bool no_color_env() {
  const char* v = std::getenv("NO_COLOR");
  return v && *v;
}

options monitor_options(const global_options& g) {
  options o = make_options(g, "peerbus-monitor");
  o.passive = true;  // no heartbeat, no NACK, no publish: watching never changes the bus
  return o;
}

std::optional<std::chrono::steady_clock::time_point> deadline_of(double duration) {
  if (duration <= 0) return std::nullopt;
  return std::chrono::steady_clock::now() + seconds(duration);
}

// Flushes stdout; false when it can no longer be written. A reader that went away (| head) is
// the normal end of a pipeline, not an error.
bool flush_stdout(int& rc) {
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return true;
  if (errno != EPIPE) {
    std::cerr << "peerbus monitor: cannot write standard output: " << std::strerror(errno) << "\n";
    rc = exit_error;
  }
  return false;
}

int run_json(const global_options& g, const monitor_args& a) {
  bus b(monitor_options(g));
  std::mutex mu;
  long long seen = 0;
  auto tap = b.on_datagram([&](const datagram_view& d) {
    std::lock_guard<std::mutex> lock(mu);
    if (a.count > 0 && seen >= a.count) return;
    std::string line = monitor::datagram_json(d);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    ++seen;
  });
  std::cerr << "peerbus monitor: listening on " << b.url().str() << " (passive: sends nothing)"
            << std::endl;
  const auto until = deadline_of(a.duration);
  int rc = exit_ok;
  for (;;) {
    auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    if (until && next > *until) next = *until;
    const bool running = sleep_until_or_stop(next);
    bool done;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!flush_stdout(rc)) break;
      done = a.count > 0 && seen >= a.count;
    }
    if (!running || done) break;
    if (until && std::chrono::steady_clock::now() >= *until) break;
  }
  tap.unsubscribe();
  b.close();  // joins the bus's thread: no tap call is left running on `mu` and `seen`
  if (rc == exit_ok) flush_stdout(rc);
  return rc;
}

struct watcher {
  std::mutex mu;
  monitor::model m;
  std::vector<subscription> subs;

  explicit watcher(bus& b) {
    subs.push_back(b.on_datagram([this](const datagram_view& d) {
      auto now = monitor::steady::now();
      std::lock_guard<std::mutex> lock(mu);
      m.on_datagram(d, now);
    }));
    subs.push_back(b.on_peer_event([this](const peer_event& e) {
      auto now = monitor::steady::now();
      std::lock_guard<std::mutex> lock(mu);
      m.on_peer_event(e.kind, e.peer, now);
    }));
    // A passive bus never asks for repairs, but it still learns what can no longer come (the
    // sender left or expired with holes, or advertised past them): that is the LOST column.
    subs.push_back(b.on_loss([this](const loss_event& e) {
      std::lock_guard<std::mutex> lock(mu);
      m.on_loss(e.sender, e.sender_name, e.count());
    }));
  }

  // Handlers may still be running on the bus's thread after unsubscribing: close the bus (which
  // joins that thread) before this object and its model go away.
  void stop(bus& b) {
    subs.clear();
    b.close();
  }

  // Pulls what the tap cannot tell (peer table, stream gaps and losses, every drop counter) and
  // samples the rates.
  void refresh(const bus& b) {
    auto peers = b.peers();
    auto stats = b.stats();
    std::lock_guard<std::mutex> lock(mu);
    // Taken under the lock: every rate sample is later than the rows the tap created before it.
    const auto now = monitor::steady::now();
    m.on_peers(peers);
    m.on_stats(stats);
    m.tick(now);
  }
};

int run_plain(const global_options& g, const monitor_args& a, const monitor::view_state& v) {
  bus b(monitor_options(g));
  watcher w(b);
  std::cerr << "peerbus monitor: listening on " << b.url().str() << " (passive: sends nothing)"
            << std::endl;
  const auto period = seconds(a.interval > 0 ? a.interval : 1.0);
  const auto until = deadline_of(a.duration);
  const std::string url = b.url().str();
  int rc = exit_ok;
  auto next = std::chrono::steady_clock::now();
  w.refresh(b);  // first sample of every rate
  for (;;) {
    next += period;
    if (!sleep_until_or_stop(until ? std::min(next, *until) : next)) break;
    w.refresh(b);
    std::string text;
    {
      std::lock_guard<std::mutex> lock(w.mu);
      text = monitor::summary(w.m, v, url, std::chrono::system_clock::now(),
                              monitor::steady::now());
    }
    text += '\n';
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (!flush_stdout(rc)) break;
    if (a.once) break;
    if (until && std::chrono::steady_clock::now() >= *until) break;
  }
  w.stop(b);
  return rc;
}

int run_full_screen(const global_options& g, const monitor_args& a, const monitor::view_state& v) {
  bus b(monitor_options(g));
  watcher w(b);
  monitor::screen_config cfg;
  cfg.url = b.url().str();
  cfg.interval = seconds(a.interval > 0 ? a.interval : 0.25);
  cfg.until = deadline_of(a.duration);
  cfg.color = !a.no_color && !no_color_env();
  cfg.initial = v;
  int rc = monitor::run_screen(cfg, w.mu, w.m, [&] { w.refresh(b); });
  w.stop(b);
  return rc;
}

int run_monitor(const global_options& g, const monitor_args& a) {
  monitor::view_state v;
  auto ps = monitor::parse_peer_sort(a.peers_by);
  auto ts = monitor::parse_topic_sort(a.topics_by);
  if (!ps || !ts) {
    std::cerr << "peerbus monitor: unknown sort key '" << (!ps ? a.peers_by : a.topics_by)
              << "' (peers: name, msg/s, bytes/s, lost, heard; topics: topic, msg/s, bytes/s, "
                 "publishers, last)\n";
    return exit_usage;
  }
  v.peers_by = *ps;
  v.topics_by = *ts;
  if (!a.filter.empty() && a.filter != ">") {
    if (!monitor::valid_pattern(a.filter)) {
      std::cerr << "peerbus monitor: --filter '" << a.filter << "' is not a topic pattern\n";
      return exit_usage;
    }
    v.filter = a.filter;
  }
  if (a.json) return run_json(g, a);
  if (a.plain || a.once || !isatty(STDOUT_FILENO)) return run_plain(g, a, v);
  return run_full_screen(g, a, v);
}

}  // namespace

command add_monitor_command(CLI::App& root, global_options& g) {
  auto a = std::make_shared<monitor_args>();
  auto* app = root.add_subcommand(
      "monitor",
      "watch the bus without changing it (passive: sends nothing): peers, topics, rates, gaps, "
      "NACKs, repairs, losses and drops");
  app->footer(
      "Full screen on a terminal: q quit (or Ctrl-C), p pause, s sort, r reverse, / filter topics, "
      "Tab switch table, arrows and PgUp/PgDn scroll; no colours when $NO_COLOR is set. Plain "
      "summaries every --interval when standard output is not a terminal (or --plain). --json: "
      "one line per datagram. Passive: no heartbeat and no NACK, so it never shows up as a peer "
      "and never changes what others see.");
  add_global_options(*app, g);
  app->add_flag("--json", a->json,
                "print every datagram as one JSON line: receive time, source, each frame's "
                "envelope or why it was dropped");
  app->add_flag("--plain", a->plain,
                "plain summaries every --interval even on a terminal (the default when standard "
                "output is not one)");
  app->add_flag("--once", a->once, "print one plain summary after --interval, then exit");
  app->add_option("-i,--interval", a->interval,
                  "refresh period, seconds (default 0.25 full screen, 1 plain)")
      ->check(CLI::PositiveNumber);
  app->add_option("-d,--duration", a->duration, "exit after this many seconds")
      ->check(CLI::PositiveNumber);
  app->add_option("-c,--count", a->count, "--json: exit after N datagrams")
      ->check(CLI::PositiveNumber);
  app->add_option("--sort-peers", a->peers_by,
                  "initial peer order: name, msg/s, bytes/s, lost, heard (default name)");
  app->add_option("--sort-topics", a->topics_by,
                  "initial topic order: topic, msg/s, bytes/s, publishers, last (default topic)");
  app->add_option("-f,--filter", a->filter, "show only topics matching this pattern, e.g. 'file.>'");
  app->add_flag("--no-color", a->no_color, "no colours (also when $NO_COLOR is set)");
  return {app, [&g, a] { return run_monitor(g, *a); }};
}

}  // namespace peerbus::tools
