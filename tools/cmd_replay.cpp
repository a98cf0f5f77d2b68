// tools/cmd_replay.cpp: `peerbus replay FILE [PATTERN...]`: publish a record file again, with its
// original timing (scaled by --speed) or as fast as possible; stops at the first damaged line.
#include "commands.hpp"
#include "monitor_model.hpp"
#include "monitor_text.hpp"
#include "record_file.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

namespace peerbus::tools {

namespace {

struct replay_args {
  std::string file;
  std::vector<std::string> patterns;
  double speed = 1.0;
  bool fast = false;
  bool loop = false;
  std::size_t wait_subscribers = 0;
  double wait_timeout = 5;
  bool quiet = false;
};

bool matches_any(const std::vector<std::string>& patterns, std::string_view topic) {
  if (patterns.empty()) return true;
  for (const auto& p : patterns)
    if (monitor::pattern_matches(p, topic)) return true;
  return false;
}

int run_replay(const global_options& g, replay_args a) {
  for (const auto& p : a.patterns)
    if (!monitor::valid_pattern(p)) {
      std::cerr << "peerbus replay: '" << p << "' is not a topic pattern ('.'-separated, '*' one "
                                              "segment, '>' the rest)\n";
      return exit_usage;
    }
  if (a.fast) a.speed = 0;
  const bool from_stdin = a.file == "-";
  if (from_stdin && a.loop) {
    std::cerr << "peerbus replay: --loop needs a file, not standard input\n";
    return exit_usage;
  }
  std::ifstream file;
  if (!from_stdin) {
    file.open(a.file, std::ios::binary);
    if (!file) {
      std::cerr << "peerbus replay: cannot open " << a.file << ": " << std::strerror(errno) << "\n";
      return exit_error;
    }
  }
  std::istream& in = from_stdin ? std::cin : file;
  std::uint64_t size = 0;
  struct stat sb {};
  if (!from_stdin && ::stat(a.file.c_str(), &sb) == 0) size = static_cast<std::uint64_t>(sb.st_size);
  const std::string shown_name = from_stdin ? "standard input" : a.file;

  bus b(make_options(g, "peerbus-replay"));
  const bool live = !a.quiet && isatty(STDERR_FILENO);
  const auto started = std::chrono::steady_clock::now();
  long long published = 0;
  long long skipped = 0;
  long long failed = 0;
  std::uint64_t bytes = 0;
  int pass = 1;
  bool waited = a.wait_subscribers == 0;
  int rc = exit_ok;
  auto last_progress = started;
  auto progress = [&](std::uint64_t pos, bool final) {
    std::string text = fmt::format("replaying {}: {} messages, {}", shown_name, published,
                                   monitor::human_bytes(static_cast<double>(bytes)));
    if (size > 0) text += fmt::format(", {:.0f}%", 100.0 * static_cast<double>(pos) / size);
    if (a.loop) text += fmt::format(" (pass {})", pass);
    std::fprintf(stderr, "\r%s\033[K%s", text.c_str(), final ? "\n" : "");
    std::fflush(stderr);
  };

  std::optional<std::string> damage;
  bool stopped = false;
  for (;; ++pass) {
    record_file::reader r(in);
    record_file::header h;
    if (r.read_header(h) != record_file::reader::status::ok) {
      damage = fmt::format("stopped at line {} (byte offset {}): {}", r.line(), r.offset(), r.error());
      break;
    }
    const long long published_before = published;
    std::optional<std::int64_t> first_t;
    auto first_at = std::chrono::steady_clock::now();
    record_file::entry e;
    for (;;) {
      auto s = r.next(e);
      if (s == record_file::reader::status::end) break;
      if (s == record_file::reader::status::damaged) {
        damage = fmt::format("stopped at line {} (byte offset {}): {}", r.line(), r.offset(), r.error());
        break;
      }
      if (e.k != record_file::entry::kind::message) continue;
      if (!matches_any(a.patterns, e.topic)) {
        ++skipped;
        continue;
      }
      if (!waited) {
        waited = true;
        if (!b.wait_for_subscribers(e.topic, a.wait_subscribers, seconds(a.wait_timeout))) {
          std::cerr << "peerbus replay: fewer than " << a.wait_subscribers << " subscriber(s) to '"
                    << e.topic << "' after " << a.wait_timeout << " s\n";
          return exit_timeout;
        }
        first_at = std::chrono::steady_clock::now();
      }
      if (a.speed > 0) {
        if (!first_t) {
          first_t = e.t;
          first_at = std::chrono::steady_clock::now();
        }
        // Behind schedule (a slow disk, a paused process): publish at once, never catch up.
        const double offset_us = static_cast<double>(e.t - *first_t) / a.speed;
        const auto due = first_at + std::chrono::microseconds(static_cast<long long>(offset_us));
        if (due > std::chrono::steady_clock::now() && !sleep_until_or_stop(due)) {
          stopped = true;
          break;
        }
      }
      if (stop_requested.load()) {
        stopped = true;
        break;
      }
      std::string bytes;
      if (!e.ctype.empty() && !from_base64(nlohmann::json::parse(e.data).get<std::string>(), bytes)) {
        std::cerr << "peerbus replay: line " << r.line() << ": bad base64, skipped\n";
        continue;
      }
      if (auto ec = e.ctype.empty() ? b.publish_raw(e.topic, e.data)
                                    : b.publish_bytes(e.topic, bytes, e.ctype)) {
        if (ec == errc::closed || ec == errc::send_failed) {
          std::cerr << "peerbus replay: line " << r.line() << ": " << ec.message() << "\n";
          rc = exit_error;
          stopped = true;
          break;
        }
        // Bad topic, payload too large, invalid JSON: this message cannot travel; the others can.
        std::cerr << "peerbus replay: line " << r.line() << " (topic '" << e.topic
                  << "') not published: " << ec.message() << "\n";
        ++failed;
        continue;
      }
      ++published;
      bytes += e.data.size();
      if (live) {
        auto now = std::chrono::steady_clock::now();
        if (now - last_progress >= std::chrono::milliseconds(200)) {
          progress(r.position(), false);
          last_progress = now;
        }
      }
    }
    if (live) progress(r.position(), true);
    if (damage || stopped || !a.loop) break;
    if (published == published_before) break;  // nothing to loop over
    in.clear();
    in.seekg(0);
  }
  b.close();  // lingers while receivers still ask for repairs
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (damage) {
    std::cerr << "peerbus replay: " << shown_name << ": " << *damage << "; published " << published
              << " message(s) before it\n";
    return exit_error;
  }
  if (!a.quiet) {
    std::string text = fmt::format("peerbus replay: published {} messages ({}) in {:.2f} s", published,
                                   monitor::human_bytes(static_cast<double>(bytes)), elapsed);
    if (a.loop) text += fmt::format(", {} pass(es)", pass);
    if (skipped) text += fmt::format(", {} not matching skipped", skipped);
    if (failed) text += fmt::format(", {} could not be published", failed);
    std::cerr << text << "\n";
  }
  if (failed && rc == exit_ok) rc = exit_error;
  return rc;
}

}  // namespace

command add_replay_command(CLI::App& root, global_options& g) {
  auto a = std::make_shared<replay_args>();
  auto* app = root.add_subcommand(
      "replay", "publish a record file again with its original timing (or --fast); a damaged "
                "file replays up to the damage, then exits 1 saying where it stopped");
  app->footer(
      "Progress is shown when standard error is a terminal. Exit 0 once the file was replayed (or "
      "on Ctrl-C); 1 when it cannot be read or is damaged (cut off, not JSON, a field missing): "
      "the messages before the damage are published and the line and byte offset where it "
      "stopped are printed; 2 for bad arguments; 3 when --wait-subscribers times out.");
  add_global_options(*app, g);
  app->add_option("file", a->file, "record file written by 'peerbus record' ('-': standard input)")
      ->required();
  app->add_option("pattern", a->patterns, "replay only topics matching these patterns (default: all)");
  app->add_option("-s,--speed", a->speed,
                  "time scale: 2 = twice as fast, 0.5 = half speed, 0 = as fast as possible "
                  "(default 1)")
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--fast", a->fast, "as fast as possible (same as --speed 0)");
  app->add_flag("-l,--loop", a->loop, "start again at the end of the file, until interrupted");
  app->add_option("--wait-subscribers", a->wait_subscribers,
                  "first wait until N peers subscribe to the first topic replayed");
  app->add_option("--wait-timeout", a->wait_timeout,
                  "how long --wait-subscribers waits, seconds (default 5)")
      ->check(CLI::PositiveNumber);
  app->add_flag("-q,--quiet", a->quiet, "print nothing on stderr but errors");
  return {app, [&g, a] { return run_replay(g, *a); }};
}

}  // namespace peerbus::tools
