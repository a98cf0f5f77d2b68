// tools/cmd_pub.cpp: `peerbus pub TOPIC [JSON]`: publish one message, repeated, paced, or from stdin.
#include "commands.hpp"

#include <cstdio>
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
  bool no_flow_control = false;  // --no-flow-control: never wait for slow receivers
  std::string file;          // --file: publish this file's bytes
  bool binary = false;       // --binary: publish stdin's bytes
  std::string ctype = "application/octet-stream";
};

// The whole of a file, or of stdin ("-"), as bytes.
bool read_all(const std::string& path, std::string& out) {
  std::FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const bool ok = !std::ferror(f);
  if (f != stdin) std::fclose(f);
  return ok;
}

int publish_bytes_checked(bus& b, const std::string& topic, const std::string& bytes,
                          const std::string& ctype) {
  if (auto ec = b.publish_bytes(topic, bytes, ctype)) {
    std::cerr << "peerbus pub: " << ec.message() << " (" << bytes.size() << " bytes)\n";
    return ec == errc::closed || ec == errc::send_failed ? exit_error : exit_usage;
  }
  return exit_ok;
}

int publish_checked(bus& b, const std::string& topic, const std::string& text) {
  if (auto ec = b.publish_raw(topic, text)) {
    std::cerr << "peerbus pub: " << ec.message() << "\n";
    return ec == errc::invalid_json || ec == errc::bad_topic ? exit_usage : exit_error;
  }
  return exit_ok;
}

int run_pub(const global_options& g, const pub_args& a) {
  options o = make_options(g, "peerbus-pub");
  o.flow_control = !a.no_flow_control;
  bus b(o);
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
  if (!a.file.empty() || a.binary) {
    std::string bytes;
    if (!read_all(a.binary ? "-" : a.file, bytes)) {
      std::cerr << "peerbus pub: cannot read " << (a.binary ? "stdin" : a.file) << "\n";
      return exit_usage;
    }
    for (long long i = 0; i < a.count && rc == exit_ok && !stop_requested.load(); ++i) {
      rc = publish_bytes_checked(b, a.topic, bytes, a.ctype);
      if (i + 1 < a.count && !pace()) break;
    }
  } else if (a.has_json) {
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
  auto* app = root.add_subcommand(
      "pub", "publish JSON messages (argument, or one per stdin line), or bytes (--file, --binary)");
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
  app->add_flag("--no-flow-control", a->no_flow_control,
                "never wait for a slow receiver: what it falls further behind than the window "
                "(131072 messages) is lost to it, reported (default: wait, protocol.md 8.9)");
  auto* file = app->add_option("-f,--file", a->file, "publish this file's bytes as one binary message")
      ->check(CLI::ExistingFile);
  auto* binary = app->add_flag("--binary", a->binary, "publish all of stdin as one binary message");
  app->add_option("--type", a->ctype,
                  "content type of --file/--binary (default application/octet-stream)");
  file->excludes(binary);
  file->excludes(app->get_option("json"));
  binary->excludes(app->get_option("json"));
  return {app, [&g, a, app] {
            a->has_json = app->count("json") > 0;
            return run_pub(g, *a);
          }};
}

}  // namespace peerbus::tools
