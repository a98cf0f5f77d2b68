// examples/example_common.hpp: what the example programs share: --url/--seconds, Ctrl-C, output.
#pragma once

#include <peerbus/bus.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace example {

using clock = std::chrono::steady_clock;

inline std::atomic<bool> stop_requested{false};
inline clock::time_point deadline = clock::time_point::max();
inline std::string program;  // "editor": the bus name, and the prefix of every printed line

inline void on_signal(int) { stop_requested.store(true); }

// A SIGINT that was ignored when we started (a script ran us in the background) stays ignored:
// Ctrl-C in that terminal is meant for the script, which stops us with SIGTERM in its own time.
inline void install_signal_handlers() {
  if (std::signal(SIGINT, on_signal) == SIG_IGN) std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe is a failed write, not a silent death
}

// Parses --url URL and --seconds N (also --url=URL); exits on --help or a bad argument.
inline peerbus::options parse_args(int argc, char** argv, std::string name, std::string_view what) {
  program = std::move(name);
  peerbus::options o;
  o.name = program;  // the name other peers see ("editor")
  o.log = [](peerbus::log_level l, std::string_view text) {
    if (l >= peerbus::log_level::warning) std::cerr << program << ": " << text << std::endl;
  };
  auto usage = [&](int rc) {
    (rc ? std::cerr : std::cout)
        << "usage: pb-" << program << " [--url URL] [--seconds N]\n  " << what << "\n"
        << "  --url URL    bus to join (default: $PEERBUS_URL, else peerbus::default_url)\n"
        << "  --seconds N  stop by itself after N seconds (default: run until Ctrl-C)\n";
    std::exit(rc);
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "-h" || arg == "--help") usage(0);
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      usage(2);
    }
    if (arg == "--url") {
      o.url = value;  // empty: the library reads $PEERBUS_URL
    } else if (arg == "--seconds") {
      char* end = nullptr;
      double s = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0' || s < 0) usage(2);
      if (s > 0) deadline = clock::now() + std::chrono::milliseconds(static_cast<long long>(s * 1000));
    } else {
      usage(2);
    }
  }
  install_signal_handlers();
  return o;
}

// Sleeps until `t`; false once the program should stop (Ctrl-C, SIGTERM, --seconds reached).
inline bool sleep_until(clock::time_point t) {
  for (;;) {
    auto now = clock::now();
    if (stop_requested.load() || now >= deadline) return false;
    if (now >= t) return true;
    // Signals cannot wake a condition variable safely: look at the flag every 20 ms.
    std::this_thread::sleep_for(std::min<clock::duration>({t - now, deadline - now,
                                                           std::chrono::milliseconds(20)}));
  }
}

// Prints "[editor] text" as one write, so lines of several programs sharing a pipe never mix.
inline void say(const std::string& text) {
  static std::mutex mu;
  std::string line = "[" + program + "] " + text + "\n";
  std::lock_guard<std::mutex> lock(mu);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

}  // namespace example
