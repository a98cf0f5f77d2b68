// tools/cmd_sub.cpp: `peerbus sub PATTERN...`: print each matching message as one JSON line.
#include "commands.hpp"

#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace peerbus::tools {

namespace {

struct sub_args {
  std::vector<std::string> patterns;
  long long count = 0;
  double timeout = 0;
  bool stats = false;
  bool data_only = false;
  bool include_self = false;
  std::string bytes = "none";  // binary messages: none, base64, hex, raw
  std::string save_dir;
  std::size_t queue = 0;  // 0: unqueued (the library's default)
  overflow_policy overflow = overflow_policy::drop_oldest;
  double delay_ms = 0;  // a deliberately slow consumer, for demonstrations and tests
};

// A binary message: its JSON line (ctype, size, and the bytes or the file they went to), or,
// with --bytes raw, just the bytes.
void print_binary(const message& m, const sub_args& a) {
  if (a.bytes == "raw") {
    std::fwrite(m.bytes().data(), 1, m.bytes().size(), stdout);
    std::fflush(stdout);
    return;
  }
  std::string extra;
  if (a.bytes == "base64") extra = ",\"bytes\":\"" + base64(m.bytes()) + "\"";
  if (a.bytes == "hex") extra = ",\"bytes\":\"" + hex(m.bytes()) + "\"";
  if (!a.save_dir.empty()) {
    const std::string path = a.save_dir + "/" + m.sender().str() + "-" + std::to_string(m.seq());
    std::FILE* f = std::fopen(path.c_str(), "wb");
    const bool ok = f && std::fwrite(m.bytes().data(), 1, m.bytes().size(), f) == m.bytes().size();
    if (f && std::fclose(f) != 0) f = nullptr;
    if (ok && f) extra += ",\"file\":" + nlohmann::json(path).dump();
    else std::cerr << "peerbus sub: cannot write " << path << "\n";
  }
  print_message_json(m, stdout, extra);
}

int run_sub(const global_options& g, const sub_args& a) {
  bus b(make_options(g, "peerbus-sub"));
  std::mutex mu;  // guards the three below (handlers run on the bus thread)
  long long received = 0;
  auto last = std::chrono::steady_clock::now();
  // A message matching several of the patterns reaches one handler per pattern, one right
  // after the other: print it once.
  std::pair<peer_id, std::uint64_t> last_printed{};
  std::vector<subscription> subs;
  subscribe_options so;
  so.include_self = a.include_self;
  so.queue_limit = a.queue;
  so.overflow = a.overflow;
  const auto delay = std::chrono::microseconds(static_cast<long long>(a.delay_ms * 1000.0));
  for (const auto& p : a.patterns) {
    subs.push_back(b.subscribe(
        p,
        [&](const message& m) {
          bool finished = false;
          {
            std::lock_guard<std::mutex> lock(mu);
            if (a.count > 0 && received >= a.count) return;  // --count reached: print no more
            if (last_printed == std::make_pair(m.sender(), m.seq())) return;
            last_printed = {m.sender(), m.seq()};
            if (m.is_binary()) {
              print_binary(m, a);
            } else if (a.data_only) {
              std::string line(m.data_json());
              line += '\n';
              std::fwrite(line.data(), 1, line.size(), stdout);
              std::fflush(stdout);
            } else {
              print_message_json(m);
            }
            ++received;
            last = std::chrono::steady_clock::now();
            finished = a.count > 0 && received >= a.count;
          }
          // Only the end of --count needs the main thread now; a --timeout deadline that moved
          // is seen when the old one passes. (Outside `mu`: the waiter takes it inside.)
          if (finished) wake_waiters();
          if (delay.count() > 0) std::this_thread::sleep_for(delay);  // --delay-ms
        },
        so));
  }
  auto loss = b.on_loss([](const loss_event& e) {
    std::string line = "{\"lost\":" + std::to_string(e.count()) + ",\"from\":\"" + e.sender.str() +
                       "\",\"name\":\"" + e.sender_name + "\",\"first\":" +
                       std::to_string(e.first) + ",\"last\":" + std::to_string(e.last) +
                       ",\"cause\":\"" + to_string(e.cause) + "\"";
    if (e.cause == loss_cause::queue_overflow)
      line += ",\"pattern\":" + nlohmann::json(e.pattern).dump();
    line += "}\n";
    std::cerr << line;
  });
  // Blocks without polling until --count is reached, --timeout passes or a signal comes.
  int rc = exit_ok;
  const auto idle = seconds(a.timeout);
  auto count_reached = [&] { return a.count > 0 && received >= a.count; };
  for (;;) {
    auto deadline = std::chrono::steady_clock::time_point::max();
    if (a.timeout > 0) {
      std::lock_guard<std::mutex> lock(mu);
      deadline = last + idle;
    }
    wait_until_or_stop(
        [&] {
          std::lock_guard<std::mutex> lock(mu);
          return count_reached();
        },
        deadline);
    if (stop_requested.load()) break;
    std::lock_guard<std::mutex> lock(mu);
    if (count_reached()) break;
    if (a.timeout > 0 && std::chrono::steady_clock::now() - last >= idle) {
      rc = a.count > 0 ? exit_timeout : exit_ok;
      if (a.count > 0)
        std::cerr << "peerbus sub: timed out after " << a.timeout << " s without a message ("
                  << received << " of " << a.count << " received)\n";
      break;
    }
  }
  // The subscriptions' counters as they stood when the command stopped: ending them (which
  // discards what their queues still hold) removes them from the stats.
  auto per_subscription = b.stats().subscriptions;
  subs.clear();
  b.close();
  if (a.stats) {
    auto st = b.stats();
    st.subscriptions = std::move(per_subscription);
    std::cerr << stats_json(st) << "\n";
  }
  return rc;
}

}  // namespace

command add_sub_command(CLI::App& root, global_options& g) {
  auto a = std::make_shared<sub_args>();
  auto* app = root.add_subcommand("sub", "print messages whose topic matches, one JSON line each");
  add_global_options(*app, g);
  app->add_option("pattern", a->patterns,
                  "topic patterns: '.'-separated, '*' one segment, '>' the rest (default: '>')");
  app->add_option("-c,--count", a->count, "exit after N messages")->check(CLI::PositiveNumber);
  app->add_option("-t,--timeout", a->timeout,
                  "exit after this many seconds without a message (exit code 3 if --count was "
                  "not reached)")
      ->check(CLI::PositiveNumber);
  app->add_flag("--stats", a->stats, "print the bus counters as JSON to stderr on exit");
  app->add_flag("--data", a->data_only, "print only each message's payload");
  app->add_flag("--self", a->include_self, "also print this process's own messages");
  app->add_option("--bytes", a->bytes,
                  "binary messages: add their bytes to the line as base64 or hex, or write only "
                  "the raw bytes to stdout (raw); default none: just ctype and size")
      ->check(CLI::IsMember({"none", "base64", "hex", "raw"}));
  app->add_option("--save-dir", a->save_dir,
                  "write each binary message's bytes to DIR/FROM-SEQ (the line names the file)")
      ->check(CLI::ExistingDirectory);
  app->add_option("--queue", a->queue,
                  "queue up to N messages per pattern and print from a thread of its own "
                  "(default 0: no queue)")
      ->check(CLI::PositiveNumber);
  const std::map<std::string, overflow_policy> policies = {
      {"drop-oldest", overflow_policy::drop_oldest},
      {"drop-newest", overflow_policy::drop_newest},
      {"block", overflow_policy::block}};
  app->add_option("--overflow", a->overflow,
                  "what a full --queue does: drop-oldest, drop-newest, or block (back-pressure)")
      ->transform(CLI::CheckedTransformer(policies))
      ->needs("--queue");
  app->add_option("--delay-ms", a->delay_ms,
                  "wait this long after each message: a deliberately slow consumer")
      ->check(CLI::NonNegativeNumber);
  return {app, [&g, a] {
            if (a->patterns.empty()) a->patterns.push_back(">");
            return run_sub(g, *a);
          }};
}

}  // namespace peerbus::tools
