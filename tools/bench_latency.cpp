// tools/bench_latency.cpp: `peerbus bench latency`: ping-pong round trips between this process and
// an echo process it starts, on a private bus and (--raw) on plain UDP multicast, the floor.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "bench_process.hpp"

namespace peerbus::tools::bench {

namespace {

// A raw ping or pong can be lost (no repair there): resend after this long without the pong.
constexpr auto raw_resend_after = std::chrono::milliseconds(200);
constexpr long long raw_max_resends = 1000;

struct failure {
  int code;
  std::string message;
};

struct rtt_run {
  std::vector<double> us;  ///< measured round trips, microseconds
  long long resends = 0;   ///< raw only: pings sent again after a lost datagram
  double seconds = 0;      ///< wall time of the whole measured run, warm-up included
  long long echoed = -1;   ///< what the echo process says it echoed
  double cpu_s = 0;        ///< CPU time this process used for the run
  double echo_cpu_s = -1;  ///< CPU time the echo process used for it (-1 unknown)
};

std::string secs_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

// The echo's result line, {"echoed":N,"cpu_s":S}, into `run`.
void read_echoed(bench_child& echo, clock::time_point deadline, rtt_run& run) {
  while (auto line = echo.read_line(deadline)) {
    auto j = nlohmann::json::parse(*line, nullptr, false);
    if (!j.is_object() || !j.contains("echoed")) continue;
    run.echoed = j.value("echoed", -1LL);
    run.echo_cpu_s = j.value("cpu_s", -1.0);
    return;
  }
}

rtt_run bus_round_trips(const global_options& g, const latency_args& a, int echo_cpu,
                        clock::time_point deadline) {
  const long long total = a.warmup + a.count;
  rtt_run run;
  run.us.reserve(static_cast<std::size_t>(std::min(a.count, 1LL << 20)));
  // The round trips run in the pong handler, on the bus's thread: each pong sends the next
  // ping from there, so no thread hand-off of this program's making is measured.
  std::mutex mu;
  std::string payload = make_payload(a.size);
  long long next = 0;
  clock::time_point sent_at;
  std::error_code send_error;
  std::atomic<bool> done{false};
  // After the state its handler uses: leaving by an exception destroys (closes) the bus first,
  // so no handler runs on destroyed state.
  options o = make_options(g, "peerbus-bench");
  o.url = private_url();
  bus b(o);
  auto sub = b.subscribe("bench.pong", [&](const message& m) {
    auto now = clock::now();
    auto index = read_index(m.data_json());
    std::lock_guard<std::mutex> lock(mu);
    if (done.load() || !index || static_cast<long long>(*index) != next) return;
    if (next >= a.warmup)
      run.us.push_back(std::chrono::duration<double, std::micro>(now - sent_at).count());
    if (++next == total) {
      done.store(true);
      wake_waiters();
      return;
    }
    set_index(payload, static_cast<std::uint64_t>(next));
    sent_at = clock::now();
    if (auto ec = b.publish_raw("bench.ping", payload)) {
      send_error = ec;
      done.store(true);
      wake_waiters();
    }
  });

  bench_child echo({"bench", "echo", "--listen", o.url, "--count", std::to_string(total),
                    "--deadline",
                    secs_text(std::chrono::duration<double>(remaining(deadline)).count() + 5),
                    "--parent", std::to_string(::getpid()), "--cpu", std::to_string(echo_cpu)});
  if (!b.wait_for_subscribers("bench.ping", 1, remaining(startup_deadline(deadline)))) {
    if (auto code = echo.wait_exit(clock::now()))
      throw failure{exit_error, "the echo process exited (code " + std::to_string(*code) +
                                    ") before it joined the bus " + o.url};
    throw failure{exit_timeout, "the echo process did not join the bus " + o.url + " " +
                                    startup_limit_text(deadline)};
  }

  auto start = clock::now();
  const double cpu0 = process_cpu_seconds();
  {
    std::lock_guard<std::mutex> lock(mu);
    set_index(payload, 0);
    sent_at = clock::now();
    if (auto ec = b.publish_raw("bench.ping", payload))
      throw failure{exit_error, "publishing a ping: " + ec.message()};
  }
  wait_until_or_stop([&] { return done.load(); }, deadline);
  run.seconds = std::chrono::duration<double>(clock::now() - start).count();
  run.cpu_s = process_cpu_seconds() - cpu0;
  sub.unsubscribe();
  if (stop_requested.load()) throw failure{exit_ok, "interrupted"};
  {
    std::lock_guard<std::mutex> lock(mu);
    if (send_error) throw failure{exit_error, "publishing a ping: " + send_error.message()};
    if (!done.load())
      throw failure{exit_timeout, "bus round trips: only " + std::to_string(next) + " of " +
                                      std::to_string(total) +
                                      " done when the deadline (--timeout " + secs_text(a.timeout) +
                                      " s) passed"};
  }
  // The echo stops once it has echoed `total` pings (its last pong is the one we just had).
  read_echoed(echo, clock::now() + std::chrono::seconds(5), run);
  echo.stop();
  b.close();
  return run;
}

rtt_run raw_round_trips(const latency_args& a, int echo_cpu, clock::time_point deadline) {
  const long long total = a.warmup + a.count;
  const std::string ping_url = private_url();
  const std::string pong_url = with_free_port(ping_url);  // own port: we never hear our pings
  raw_socket sock(bus_url::parse(pong_url), true);
  sock.set_destination(bus_url::parse(ping_url));
  sock.set_timeout(raw_resend_after);

  bench_child echo({"bench", "echo", "--raw", "--listen", ping_url, "--reply", pong_url,
                    "--deadline",
                    secs_text(std::chrono::duration<double>(remaining(deadline)).count() + 5),
                    "--parent", std::to_string(::getpid()), "--cpu", std::to_string(echo_cpu)});
  auto ready = echo.read_line(startup_deadline(deadline));
  if (!ready || *ready != "ready") {
    if (auto code = echo.wait_exit(clock::now() + std::chrono::milliseconds(100)))
      throw failure{exit_error, "the raw echo process exited (code " + std::to_string(*code) +
                                    ") before it was ready"};
    throw failure{exit_timeout,
                  "the raw echo process was not ready " + startup_limit_text(deadline)};
  }

  rtt_run run;
  run.us.reserve(static_cast<std::size_t>(std::min(a.count, 1LL << 20)));
  std::string payload = make_payload(a.size);
  std::vector<char> buf(65536);
  std::uint64_t sent = 0;  // every ping has an index of its own, resends included
  auto start = clock::now();
  const double cpu0 = process_cpu_seconds();
  for (long long i = 0; i < total;) {
    if (stop_requested.load()) throw failure{exit_ok, "interrupted"};
    if (clock::now() >= deadline)
      throw failure{exit_timeout, "raw round trips: only " + std::to_string(i) + " of " +
                                      std::to_string(total) +
                                      " done when the deadline (--timeout " + secs_text(a.timeout) +
                                      " s) passed"};
    std::uint64_t index = sent++;
    set_index(payload, index);
    auto t0 = clock::now();
    if (!sock.send(payload.data(), payload.size()))
      throw failure{exit_error, std::string("raw send: ") + std::strerror(errno)};
    for (;;) {
      long n = sock.recv(buf.data(), buf.size());
      auto t1 = clock::now();
      if (n < 0) {  // nothing within raw_resend_after: the ping or the pong was lost
        if (++run.resends > raw_max_resends)
          throw failure{exit_error, "raw round trips: more than " +
                                        std::to_string(raw_max_resends) +
                                        " datagrams lost; is the echo process alive?"};
        break;
      }
      auto got = read_index(std::string_view(buf.data(), static_cast<std::size_t>(n)));
      if (!got || *got != index) continue;  // a late pong of an earlier ping
      if (i >= a.warmup)
        run.us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      ++i;
      break;
    }
  }
  run.seconds = std::chrono::duration<double>(clock::now() - start).count();
  run.cpu_s = process_cpu_seconds() - cpu0;
  // An empty datagram tells the echo to stop; sent thrice in case one is lost.
  for (int k = 0; k < 3; ++k) (void)sock.send("", 0);
  read_echoed(echo, clock::now() + std::chrono::seconds(2), run);
  echo.stop();
  return run;
}

double r2(double v) {
  return rounded(v * 100.0) / 100.0;
}

// CPU microseconds per round trip (warm-up included, as the CPU time is), both processes.
double cpu_us_per_trip(const rtt_run& r, const latency_args& a) {
  if (r.echo_cpu_s < 0) return -1;
  return (r.cpu_s + r.echo_cpu_s) * 1e6 / static_cast<double>(a.warmup + a.count);
}

nlohmann::json figures_json(const percentiles& p, const rtt_run& r, const latency_args& a) {
  nlohmann::json j = {
      {"round_trips", r.us.size()}, {"p50_us", r2(p.p50)},
      {"p90_us", r2(p.p90)},        {"p99_us", r2(p.p99)},
      {"max_us", r2(p.max)},        {"mean_us", r2(p.mean)},
      {"elapsed_s", r2(r.seconds)}, {"cpu_us_per_round_trip", r2(cpu_us_per_trip(r, a))}};
  return j;
}

}  // namespace

int run_latency(const global_options& g, const latency_args& a) {
  if (!g.url.empty()) {
    std::cerr << "peerbus bench latency: --url is not accepted: every bench runs on a private bus "
                 "of its own\n";
    return exit_usage;
  }
  auto deadline = clock::now() + seconds(a.timeout);
  int echo_cpu = -1;
  if (a.pin != "none") {
    auto cpus = allowed_cpus();
    if (cpus.empty() || (a.pin == "split" && cpus.size() < 2)) {
      std::cerr << "peerbus bench latency: --pin " << a.pin << " needs "
                << (a.pin == "split" ? 2 : 1) << " CPU(s) this process may run on; it has "
                << cpus.size() << "\n";
      return exit_usage;
    }
    // Before the bus exists, so its thread inherits the pinning.
    pin_to_cpu(cpus[0]);
    echo_cpu = a.pin == "split" ? cpus[1] : cpus[0];
  }
  try {
    auto bus_run = bus_round_trips(g, a, echo_cpu, deadline);
    auto bus_p = summarize(bus_run.us);
    std::optional<rtt_run> raw_run;
    percentiles raw_p;
    if (a.raw) {
      raw_run = raw_round_trips(a, echo_cpu, deadline);
      raw_p = summarize(raw_run->us);
    }
    auto ratio = [](double x, double y) { return y > 0 ? rounded(x / y * 100.0) / 100.0 : 0.0; };
    if (a.json) {
      nlohmann::json j = {{"bench", "latency"}, {"count", a.count},
                          {"warmup", a.warmup}, {"size", a.size},
                          {"pin", a.pin},       {"bus", figures_json(bus_p, bus_run, a)}};
      if (raw_run) {
        j["raw"] = figures_json(raw_p, *raw_run, a);
        j["raw"]["resends"] = raw_run->resends;
        j["ratio"] = {{"p50", ratio(bus_p.p50, raw_p.p50)},
                      {"p90", ratio(bus_p.p90, raw_p.p90)},
                      {"p99", ratio(bus_p.p99, raw_p.p99)},
                      {"max", ratio(bus_p.max, raw_p.max)}};
      }
      say(j.dump());
      return exit_ok;
    }
    std::printf(
        "peerbus bench latency: %lld round trips after %lld warm-up, %zu-byte payload, "
        "between 2 processes%s\n",
        a.count, a.warmup, a.size,
        a.pin == "same"    ? " on one CPU"
        : a.pin == "split" ? " on two CPUs"
                           : "");
    std::printf("%-9s %9s %9s %9s %9s %9s   round trip, us\n", "", "p50", "p90", "p99", "max",
                "mean");
    auto row = [](const char* name, const percentiles& p) {
      std::printf("%-9s %9.1f %9.1f %9.1f %9.1f %9.1f\n", name, p.p50, p.p90, p.p99, p.max, p.mean);
    };
    row("peerbus", bus_p);
    if (raw_run) {
      row("udp", raw_p);
      std::printf("%-9s %8.2fx %8.2fx %8.2fx %8.2fx %8.2fx\n", "ratio", ratio(bus_p.p50, raw_p.p50),
                  ratio(bus_p.p90, raw_p.p90), ratio(bus_p.p99, raw_p.p99),
                  ratio(bus_p.max, raw_p.max), ratio(bus_p.mean, raw_p.mean));
    }
    std::printf("CPU per round trip, both processes: peerbus %.1f us", cpu_us_per_trip(bus_run, a));
    if (raw_run) std::printf(", udp %.1f us", cpu_us_per_trip(*raw_run, a));
    std::printf("\n");
    if (raw_run && raw_run->resends > 0)
      std::printf("udp: %lld ping(s) sent again after a lost datagram\n", raw_run->resends);
    std::fflush(stdout);
    return exit_ok;
  } catch (const failure& f) {
    std::cerr << "peerbus bench latency: " << f.message << "\n";
    return f.code;
  }
}

int run_echo(const global_options& g, const child_args& a) {
  auto deadline = clock::now() + seconds(a.deadline);
  if (a.cpu >= 0) pin_to_cpu(a.cpu);
  long long echoed = 0;
  int rc = exit_ok;
  double cpu0 = 0;
  if (a.raw) {
    raw_socket sock(bus_url::parse(a.listen), true);
    sock.set_destination(bus_url::parse(a.reply));
    sock.set_timeout(std::chrono::milliseconds(100));
    say("ready");
    cpu0 = process_cpu_seconds();
    std::vector<char> buf(65536);
    for (;;) {
      long n = sock.recv(buf.data(), buf.size());
      if (n == 0) break;  // the driver's "stop"
      if (n > 0) {
        (void)sock.send(buf.data(), static_cast<std::size_t>(n));
        ++echoed;
        continue;
      }
      if (stop_requested.load() || !parent_alive(a.parent)) break;
      if (clock::now() >= deadline) {
        rc = exit_timeout;
        break;
      }
    }
  } else {
    std::atomic<long long> count{0};
    std::atomic<bool> parent_gone{false}, failed{false};
    options o = child_options(g, "peerbus-bench-echo", a.listen);
    bus b(o);
    cpu0 = process_cpu_seconds();
    auto peers = b.on_peer_event([&](const peer_event& e) {
      if (e.peer.pid == a.parent && e.kind != peer_event_kind::joined) {
        parent_gone.store(true);
        wake_waiters();
      }
    });
    auto sub = b.subscribe("bench.ping", [&](const message& m) {
      if (b.publish_raw("bench.pong", m.data_json())) failed.store(true);
      if (++count == a.count) wake_waiters();
    });
    auto finished = [&] {
      return (a.count > 0 && count.load() >= a.count) || parent_gone.load() || failed.load();
    };
    while (!finished() && !stop_requested.load()) {
      if (!parent_alive(a.parent)) break;
      if (clock::now() >= deadline) {
        rc = exit_timeout;
        break;
      }
      // Wakes for the count; every 200 ms it also looks whether the driver is still there.
      wait_until_or_stop(finished,
                         std::min(deadline, clock::now() + std::chrono::milliseconds(200)));
    }
    sub.unsubscribe();
    b.close();  // lingers while the driver still asks for repairs of the last pongs
    echoed = count.load();
    if (failed.load()) rc = exit_error;
  }
  say(nlohmann::json({{"echoed", echoed}, {"cpu_s", process_cpu_seconds() - cpu0}}).dump());
  return rc;
}

}  // namespace peerbus::tools::bench
