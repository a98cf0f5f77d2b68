// tools/cmd_record.cpp: `peerbus record -o FILE [PATTERN...]`: write every matching message, in
// order per sender and with its receive time, to a record file (JSON lines).
#include "commands.hpp"
#include "monitor_model.hpp"
#include "monitor_text.hpp"
#include "record_file.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <map>

namespace peerbus::tools {

namespace {

struct record_args {
  std::string out;
  std::vector<std::string> patterns;
  long long count = 0;
  double duration = 0;
  bool quiet = false;
};

std::int64_t unix_us_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Shared by the bus thread (handlers) and the main thread (flushes, progress).
struct recording {
  std::mutex mu;
  std::FILE* f = nullptr;
  bool open = true;
  long long limit = 0;
  long long messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t lost = 0;
  std::map<std::uint64_t, std::uint64_t> last_seq;  ///< per sender: overlapping patterns deliver twice
  int write_errno = 0;

  // Under mu.
  void write(const std::string& line) {
    if (std::fwrite(line.data(), 1, line.size(), f) != line.size() && write_errno == 0)
      write_errno = errno ? errno : EIO;
    bytes += line.size();
  }
};

int run_record(const global_options& g, const record_args& a) {
  for (const auto& p : a.patterns)
    if (!monitor::valid_pattern(p)) {
      std::cerr << "peerbus record: '" << p << "' is not a topic pattern ('.'-separated, '*' one "
                                              "segment, '>' the rest)\n";
      return exit_usage;
    }
  const bool to_stdout = a.out == "-";
  std::FILE* f = to_stdout ? stdout : std::fopen(a.out.c_str(), "wb");
  if (!f) {
    std::cerr << "peerbus record: cannot open " << a.out << ": " << std::strerror(errno) << "\n";
    return exit_error;
  }
  static char buffer[1 << 20];
  std::setvbuf(f, buffer, _IOFBF, sizeof buffer);

  bus b(make_options(g, "peerbus-record"));
  auto rec = std::make_shared<recording>();
  rec->f = f;
  rec->limit = a.count;
  {
    std::lock_guard<std::mutex> lock(rec->mu);
    rec->write(record_file::header_line(b.url().str(), unix_us_now(), a.patterns, b.id()));
    rec->bytes = 0;  // count what was recorded, not the header
  }
  std::vector<subscription> subs;
  for (const auto& p : a.patterns) {
    subs.push_back(b.subscribe(
        p,
        [rec](const message& m) {
          std::string line = record_file::message_line(unix_us_now(), m);
          std::lock_guard<std::mutex> lock(rec->mu);
          if (!rec->open || (rec->limit > 0 && rec->messages >= rec->limit)) return;
          auto& last = rec->last_seq[m.sender().value];
          if (m.seq() <= last) return;  // this message again, through another pattern
          last = m.seq();
          rec->write(line);
          ++rec->messages;
        },
        subscribe_options{false}));
  }
  auto loss = b.on_loss([rec](const loss_event& e) {
    std::string line = record_file::loss_line(unix_us_now(), e);
    std::lock_guard<std::mutex> lock(rec->mu);
    if (!rec->open) return;
    rec->write(line);
    rec->lost += e.count();
  });

  std::string patterns_text;
  for (const auto& p : a.patterns) patterns_text += (patterns_text.empty() ? "'" : " '") + p + "'";
  const bool live = !a.quiet && isatty(STDERR_FILENO);
  if (!a.quiet)
    std::cerr << "peerbus record: recording " << patterns_text << " from " << b.url().str()
              << " to " << (to_stdout ? "standard output" : a.out) << std::endl;

  const auto until = a.duration > 0
                         ? std::optional(std::chrono::steady_clock::now() + seconds(a.duration))
                         : std::nullopt;
  auto progress = [&](bool final) {
    std::string text = fmt::format("recording: {} messages, {}, {} lost", rec->messages,
                                   monitor::human_bytes(static_cast<double>(rec->bytes)), rec->lost);
    std::fprintf(stderr, "\r%s\033[K%s", text.c_str(), final ? "\n" : "");
    std::fflush(stderr);
  };
  int rc = exit_ok;
  auto next_flush = std::chrono::steady_clock::now();
  for (;;) {
    auto wake = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
    if (until && wake > *until) wake = *until;
    const bool running = sleep_until_or_stop(wake);
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(rec->mu);
    const bool done = !running || (a.count > 0 && rec->messages >= a.count) ||
                      (until && now >= *until);
    if (now >= next_flush || done) {
      // Flushed every 200 ms: a killed recorder loses at most that much.
      if (std::fflush(f) != 0 && rec->write_errno == 0) rec->write_errno = errno ? errno : EIO;
      if (live) progress(false);
      next_flush = now + std::chrono::milliseconds(200);
    }
    if (rec->write_errno != 0) {
      if (live) progress(true);
      std::cerr << "peerbus record: cannot write " << (to_stdout ? "standard output" : a.out)
                << ": " << std::strerror(rec->write_errno) << "\n";
      rc = exit_error;
      break;
    }
    if (done) break;
  }
  subs.clear();
  loss.unsubscribe();
  {
    std::lock_guard<std::mutex> lock(rec->mu);
    rec->open = false;  // a handler still running on the bus thread writes nothing more
    if (std::fflush(f) != 0 && rc == exit_ok) {
      std::cerr << "peerbus record: cannot write " << a.out << ": " << std::strerror(errno) << "\n";
      rc = exit_error;
    }
    if (!to_stdout && std::fclose(f) != 0 && rc == exit_ok) {
      std::cerr << "peerbus record: cannot write " << a.out << ": " << std::strerror(errno) << "\n";
      rc = exit_error;
    }
    if (live) progress(true);
  }
  b.close();
  if (!a.quiet)
    std::cerr << fmt::format("peerbus record: {} messages ({}) from {} sender(s), {} lost, in {}\n",
                             rec->messages, monitor::human_bytes(static_cast<double>(rec->bytes)),
                             rec->last_seq.size(), rec->lost, to_stdout ? "standard output" : a.out);
  return rc;
}

}  // namespace

command add_record_command(CLI::App& root, global_options& g) {
  auto a = std::make_shared<record_args>();
  auto* app = root.add_subcommand(
      "record", "write every message whose topic matches to a record file (JSON lines, with "
                "receive times), complete and in order per sender");
  app->footer(
      "The record file is JSON lines: first a header {\"peerbus_record\":1,\"url\":..,"
      "\"started\":us,\"patterns\":[..],\"recorder\":id}, then one line per message "
      "{\"t\":receive time (us since the epoch),\"topic\",\"from\",\"name\",\"seq\",\"ts\","
      "\"data\":payload as it travelled} and one per loss {\"t\",\"lost\":N,\"from\",\"name\","
      "\"first\",\"last\"}. Written in order per sender, flushed every 200 ms; the count is shown "
      "live when standard error is a terminal. Exit 0, or 1 when the file cannot be written.");
  add_global_options(*app, g);
  app->add_option("-o,--output", a->out, "record file to write ('-': standard output)")->required();
  app->add_option("pattern", a->patterns, "topic patterns (default: '>', everything)");
  app->add_option("-c,--count", a->count, "stop after N messages")->check(CLI::PositiveNumber);
  app->add_option("-d,--duration", a->duration, "stop after this many seconds")
      ->check(CLI::PositiveNumber);
  app->add_flag("-q,--quiet", a->quiet, "print nothing on stderr but errors");
  return {app, [&g, a] {
            if (a->patterns.empty()) a->patterns.push_back(">");
            return run_record(g, *a);
          }};
}

}  // namespace peerbus::tools
