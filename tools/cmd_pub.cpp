// tools/cmd_pub.cpp: `peerbus pub TOPIC [JSON]`: publish one message, repeated, paced, or from stdin.
#include "commands.hpp"

#include <iostream>
#include <memory>
#include <string>

namespace peerbus::tools {

namespace {

struct pub_args {
  std::string topic;
  std::string json;
  bool has_json = false;
  long long count = 1;
  double rate = 0;
  std::size_t wait_subscribers = 0;
  double wait_timeout = 5;
  bool stats = false;
};

int publish_checked(bus& b, const std::string& topic, const std::string& text) {
  if (auto ec = b.publish_raw(topic, text)) {
    std::cerr << "peerbus pub: " << ec.message() << "\n";
    return ec == errc::invalid_json || ec == errc::bad_topic ? exit_usage : exit_error;
  }
  return exit_ok;
}

int run_pub(const global_options& g, const pub_args& a) {
  bus b(make_options(g, "peerbus-pub"));
  if (a.wait_subscribers > 0 &&
      !b.wait_for_subscribers(a.topic, a.wait_subscribers, seconds(a.wait_timeout))) {
    std::cerr << "peerbus pub: fewer than " << a.wait_subscribers << " subscriber(s) to '"
              << a.topic << "' after " << a.wait_timeout << " s\n";
    return exit_timeout;
  }
  auto period = a.rate > 0 ? std::chrono::nanoseconds(static_cast<long long>(1e9 / a.rate))
                           : std::chrono::nanoseconds(0);
  auto next = std::chrono::steady_clock::now();
  auto pace = [&] {
    if (period.count() == 0) return !stop_requested.load();
    next += period;
    return sleep_until_or_stop(next);
  };
  int rc = exit_ok;
  if (a.has_json) {
    for (long long i = 0; i < a.count && rc == exit_ok && !stop_requested.load(); ++i) {
      rc = publish_checked(b, a.topic, a.json);
      if (i + 1 < a.count && !pace()) break;
    }
  } else {
    // One JSON value per line of standard input (blank lines skipped), each --count times.
    std::string line;
    while (rc == exit_ok && !stop_requested.load() && std::getline(std::cin, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      for (long long i = 0; i < a.count && rc == exit_ok; ++i) {
        rc = publish_checked(b, a.topic, line);
        if (!pace()) break;
      }
    }
  }
  b.close();  // lingers until receivers stop asking for repairs, then says goodbye
  if (a.stats) std::cerr << stats_json(b.stats()) << "\n";
  return rc;
}

}  // namespace

command add_pub_command(CLI::App& root, global_options& g) {
  auto a = std::make_shared<pub_args>();
  auto* app = root.add_subcommand("pub", "publish JSON messages (argument, or one per stdin line)");
  add_global_options(*app, g);
  app->add_option("topic", a->topic, "topic, e.g. file.saved")->required();
  app->add_option("json", a->json, "payload as JSON text, e.g. '{\"path\":\"/tmp/a\"}' or '\"hi\"'; "
                                   "without it, one JSON value per line of stdin");
  app->add_option("-c,--count", a->count, "publish each message N times")->check(CLI::PositiveNumber);
  app->add_option("-r,--rate", a->rate, "pace to R messages per second (default: as fast as possible)")
      ->check(CLI::PositiveNumber);
  app->add_option("--wait-subscribers", a->wait_subscribers,
                  "first wait until N peers subscribe to the topic");
  app->add_option("--wait-timeout", a->wait_timeout, "how long --wait-subscribers waits, seconds (default 5)")
      ->check(CLI::PositiveNumber);
  app->add_flag("--stats", a->stats, "print the bus counters as JSON to stderr on exit");
  return {app, [&g, a, app] {
            a->has_json = app->count("json") > 0;
            return run_pub(g, *a);
          }};
}

}  // namespace peerbus::tools
