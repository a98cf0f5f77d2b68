// tools/cmd_peers.cpp: `peerbus peers`: list the live peers, or watch them join and leave.
#include "commands.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <iostream>
#include <memory>
#include <mutex>

namespace peerbus::tools {

namespace {

struct peers_args {
  bool json = false;
  double wait = 0.5;
  bool watch = false;
};

std::string uptime_text(const peer_info& p) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - p.started).count();
  if (s < 0) s = 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
}

std::string subs_text(const peer_info& p) {
  std::string out;
  for (const auto& s : p.subscriptions) out += (out.empty() ? "" : ",") + s;
  if (p.subscriptions_truncated) out += ",...";
  return out.empty() ? "-" : out;
}

void print_table(std::vector<peer_info> peers) {
  std::sort(peers.begin(), peers.end(), [](auto& a, auto& b) {
    return a.name != b.name ? a.name < b.name : a.id < b.id;
  });
  fmt::print("{:<24} {:<16} {:>8} {:<16} {:>8}  {}\n", "NAME", "ID", "PID", "HOST", "UPTIME",
             "SUBSCRIPTIONS");
  for (const auto& p : peers)
    fmt::print("{:<24} {:<16} {:>8} {:<16} {:>8}  {}\n", p.name, p.id.str(), p.pid, p.host,
               uptime_text(p), subs_text(p));
  std::fflush(stdout);
}

int run_peers(const global_options& g, const peers_args& a) {
  options o = make_options(g, "peerbus-peers");
  bus b(o);
  std::mutex out_mu;
  subscription events;
  if (a.watch) {
    events = b.on_peer_event([&](const peer_event& ev) {
      std::lock_guard<std::mutex> lock(out_mu);
      if (a.json) {
        std::string line = "{\"event\":\"";
        line += to_string(ev.kind);
        line += "\",\"peer\":" + peer_json(ev.peer) + "}\n";
        std::fwrite(line.data(), 1, line.size(), stdout);
      } else {
        fmt::print("{:<8} {:<24} {} pid {} on {}\n", to_string(ev.kind), ev.peer.display,
                   ev.peer.id.str(), ev.peer.pid, ev.peer.host);
      }
      std::fflush(stdout);
    });
  }
  // Peers answer a newcomer's announce with their own heartbeat at once, so a short wait
  // normally hears everyone; --wait covers peers on a long heartbeat interval.
  sleep_until_or_stop(std::chrono::steady_clock::now() + seconds(a.wait));
  if (!a.watch) {
    auto peers = b.peers();
    if (a.json) {
      for (const auto& p : peers) std::cout << peer_json(p) << "\n";
      std::cout.flush();
    } else {
      print_table(peers);
    }
    return exit_ok;
  }
  while (sleep_until_or_stop(std::chrono::steady_clock::now() + std::chrono::seconds(1))) {
  }
  events.unsubscribe();
  return exit_ok;
}

}  // namespace

command add_peers_command(CLI::App& root, global_options& g) {
  auto a = std::make_shared<peers_args>();
  auto* app = root.add_subcommand("peers", "list the live peers (name, id, pid, host, uptime, "
                                           "subscriptions), or --watch them come and go");
  add_global_options(*app, g);
  app->add_flag("--json", a->json, "one JSON object per line");
  app->add_option("-w,--wait", a->wait, "listen this long before listing, seconds (default 0.5)")
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--watch", a->watch,
                "keep running and print each join, leave and expiry as it happens");
  return {app, [&g, a] { return run_peers(g, *a); }};
}

}  // namespace peerbus::tools
