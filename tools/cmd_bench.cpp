// tools/cmd_bench.cpp: `peerbus bench latency|throughput`: measure the bus against plain UDP
// multicast on a private bus; `bench echo` and `bench sink` are the hidden roles it starts.
#include <memory>

#include "bench_common.hpp"
#include "commands.hpp"

namespace peerbus::tools {

command add_bench_command(CLI::App& root, global_options& g) {
  auto* app =
      root.add_subcommand("bench", "measure round-trip latency and throughput on a private bus");
  app->require_subcommand(1);
  auto lat = std::make_shared<bench::latency_args>();
  auto thr = std::make_shared<bench::throughput_args>();
  auto child = std::make_shared<bench::child_args>();
  const auto payload_range = CLI::Range(bench::min_payload, bench::max_payload);

  // Of the global options only these two: a bench always runs on a private bus of its own, and
  // its processes name themselves.
  auto add_bench_globals = [&g](CLI::App& c) {
    c.add_option("--faults", g.faults,
                 "inject loss in every process of the bench: rx=RATE,tx=RATE,seed=N");
    c.add_flag("-v,--verbose", g.verbose, "also print the library's info messages");
  };

  auto* l = app->add_subcommand("latency", "ping-pong round trips between two processes it starts");
  add_bench_globals(*l);
  l->add_option("-c,--count", lat->count, "round trips measured (default 20000)")
      ->check(CLI::Range(1LL, 100000000LL));
  l->add_option("-w,--warmup", lat->warmup, "round trips before measuring (default 1000)")
      ->check(CLI::Range(0LL, 100000000LL));
  l->add_option("-s,--size", lat->size, "payload bytes, a JSON object (default 64)")
      ->check(payload_range);
  l->add_option("-t,--timeout", lat->timeout,
                "end everything after this many seconds (default 120)")
      ->check(CLI::PositiveNumber);
  l->add_flag("--raw", lat->raw, "also measure plain UDP multicast, the floor");
  l->add_option("--pin", lat->pin,
                "none (the scheduler places both processes), same (both on one CPU), split (one "
                "CPU each) (default none)")
      ->check(CLI::IsMember({"none", "same", "split"}));
  l->add_flag("--json", lat->json, "print one JSON object");

  auto* t = app->add_subcommand("throughput", "one publisher, N subscriber processes it starts");
  add_bench_globals(*t);
  t->add_option("-n,--subscribers", thr->subscribers, "subscriber processes (default 1)")
      ->check(CLI::Range(1, 64));
  t->add_option("-c,--count", thr->count, "messages published (default 200000)")
      ->check(CLI::Range(1LL, 100000000LL));
  t->add_option("-s,--size", thr->size,
                "payload bytes, a JSON object (default 64; above one datagram, up to 16 MiB, "
                "messages travel in fragments; --raw: at most 60000)")
      ->check(CLI::Range(bench::min_payload, std::size_t{16} << 20));
  t->add_option("-r,--rate", thr->rate, "pace the publisher to R messages/s (default: flat out)")
      ->check(CLI::PositiveNumber);
  t->add_option("-t,--timeout", thr->timeout,
                "end everything after this many seconds (default 120)")
      ->check(CLI::PositiveNumber);
  t->add_flag("--raw", thr->raw, "also measure plain UDP multicast, the floor");
  t->add_flag("--json", thr->json, "print one JSON object");

  // The roles the drivers start (this binary again): not for people, so not in --help.
  auto hidden_role = [&](const char* name) {
    auto* c = app->add_subcommand(name, "")->group("");
    add_bench_globals(*c);
    c->add_flag("--raw", child->raw);
    c->add_option("--listen", child->listen)->required();
    c->add_option("--reply", child->reply);
    c->add_option("--count", child->count);
    c->add_option("--deadline", child->deadline);
    c->add_option("--parent", child->parent);
    c->add_option("--cpu", child->cpu);
    return c;
  };
  auto* echo = hidden_role("echo");
  auto* sink = hidden_role("sink");

  return {app, [&g, lat, thr, child, l, t, echo, sink]() -> int {
            if (l->parsed()) return bench::run_latency(g, *lat);
            if (t->parsed()) return bench::run_throughput(g, *thr);
            if (echo->parsed()) return bench::run_echo(g, *child);
            if (sink->parsed()) return bench::run_sink(g, *child);
            return exit_usage;
          }};
}

}  // namespace peerbus::tools
