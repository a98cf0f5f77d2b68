// tools/bench_throughput.cpp: `peerbus bench throughput`: one publisher (this process) and N
// subscriber processes it starts, on a private bus and (--raw) on plain UDP multicast, the floor.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench_process.hpp"

namespace peerbus::tools::bench {

namespace {

// A raw receiver that heard nothing for this long after its first datagram takes the blast as
// over (its end marker may have been dropped with the rest).
constexpr auto raw_idle_end = std::chrono::milliseconds(1000);
// Sinks stop this long before the driver's deadline, so their partial counts still reach it.
constexpr auto sink_margin = std::chrono::milliseconds(1500);

struct failure {
  int code;
  std::string message;
};

std::string secs_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

double round2(double v) {
  return rounded(v * 100.0) / 100.0;
}

// The arguments of N sink processes sharing a deadline a little before ours.
std::vector<std::string> sink_argv(bool raw, const std::string& url, long long count,
                                   clock::time_point deadline) {
  auto left = std::chrono::duration<double>(remaining(deadline) - sink_margin).count();
  std::vector<std::string> v{"bench", "sink"};
  if (raw) v.push_back("--raw");
  v.insert(v.end(), {"--listen", url, "--count", std::to_string(count), "--deadline",
                     secs_text(std::max(1.0, left)), "--parent", std::to_string(::getpid())});
  return v;
}

// One JSON result line from each sink (the last line that parses as an object).
std::vector<nlohmann::json> collect(std::vector<std::unique_ptr<bench_child>>& sinks,
                                    clock::time_point deadline, const char* what) {
  std::vector<nlohmann::json> out;
  for (std::size_t i = 0; i < sinks.size(); ++i) {
    nlohmann::json result;
    while (auto line = sinks[i]->read_line(deadline)) {
      auto j = nlohmann::json::parse(*line, nullptr, false);
      if (j.is_object() && j.contains("received")) result = std::move(j);
    }
    auto code = sinks[i]->wait_exit(clock::now() + std::chrono::seconds(2));
    if (result.is_null())
      throw failure{
          code ? exit_error : exit_timeout,
          std::string(what) + " " + std::to_string(i + 1) + " (pid " +
              std::to_string(sinks[i]->pid()) + ") gave no result" +
              (code ? " and exited with code " + std::to_string(*code) : " by the deadline")};
    result["exit"] = code ? *code : -1;
    out.push_back(std::move(result));
  }
  return out;
}

// Rates of one subscriber's result, added to it; returns its delivered messages per second.
double add_rates(nlohmann::json& r, std::size_t size) {
  double elapsed = r.value("elapsed_s", 0.0);
  auto unique = r.value("unique", 0LL);
  double rate = elapsed > 0 ? static_cast<double>(unique) / elapsed : 0.0;
  r["msgs_per_s"] = rounded(rate);
  r["mb_per_s"] = round2(rate * static_cast<double>(size) / 1e6);
  r["cpu_us_per_msg"] =
      unique > 0 ? round2(r.value("cpu_s", 0.0) * 1e6 / static_cast<double>(unique)) : 0.0;
  return rate;
}

struct flow_run {
  double send_s = 0;
  double cpu_s = 0;  ///< CPU time of this process (the publisher) from the first send to the end
  std::vector<nlohmann::json> subs;
  bus_stats sender;
};

// The publishing loop: `send(i)` for i in 0..count-1, paced to `rate` (0: flat out).
template <class Send>
double publish_all(long long count, double rate, clock::time_point deadline, Send send) {
  auto start = clock::now();
  for (long long i = 0; i < count; ++i) {
    if (stop_requested.load(std::memory_order_relaxed)) throw failure{exit_ok, "interrupted"};
    if ((i & 255) == 0) {
      if (clock::now() >= deadline)
        throw failure{exit_timeout, "publishing: only " + std::to_string(i) + " of " +
                                        std::to_string(count) + " sent when the deadline passed"};
    }
    if (rate > 0) {
      auto due = start + std::chrono::nanoseconds(
                             static_cast<long long>(static_cast<double>(i) * 1e9 / rate));
      if (clock::now() < due) std::this_thread::sleep_until(due);
    }
    send(i);
  }
  return std::chrono::duration<double>(clock::now() - start).count();
}

flow_run bus_flow(const global_options& g, const throughput_args& a, clock::time_point deadline) {
  options o = make_options(g, "peerbus-bench");
  o.url = private_url();
  bus b(o);
  std::vector<std::unique_ptr<bench_child>> sinks;
  for (int i = 0; i < a.subscribers; ++i)
    sinks.push_back(std::make_unique<bench_child>(sink_argv(false, o.url, a.count, deadline)));
  if (!b.wait_for_subscribers("bench.data", static_cast<std::size_t>(a.subscribers),
                              remaining(startup_deadline(deadline)))) {
    for (auto& s : sinks)
      if (auto code = s->wait_exit(clock::now()))
        throw failure{exit_error, "a subscriber process (pid " + std::to_string(s->pid()) +
                                      ") exited with code " + std::to_string(*code) +
                                      " before it joined the bus " + o.url};
    throw failure{exit_timeout, "fewer than " + std::to_string(a.subscribers) +
                                    " subscriber process(es) joined the bus " + o.url + " " +
                                    startup_limit_text(deadline)};
  }
  flow_run run;
  std::string payload = make_payload(a.size);
  const double cpu0 = process_cpu_seconds();
  run.send_s = publish_all(a.count, a.rate, deadline, [&](long long i) {
    set_index(payload, static_cast<std::uint64_t>(i));
    if (auto ec = b.publish_raw("bench.data", payload))
      throw failure{exit_error, "publishing message " + std::to_string(i) + ": " + ec.message()};
  });
  // Our bus stays up until every subscriber is done: it answers their NACKs meanwhile.
  run.subs = collect(sinks, deadline + std::chrono::seconds(3), "subscriber");
  run.cpu_s = process_cpu_seconds() - cpu0;
  b.close();
  run.sender = b.stats();
  return run;
}

flow_run raw_flow(const throughput_args& a, clock::time_point deadline) {
  const std::string url = private_url();
  std::vector<std::unique_ptr<bench_child>> sinks;
  for (int i = 0; i < a.subscribers; ++i)
    sinks.push_back(std::make_unique<bench_child>(sink_argv(true, url, a.count, deadline)));
  auto ready_by = startup_deadline(deadline);
  for (auto& s : sinks) {
    auto line = s->read_line(ready_by);
    if (!line || *line != "ready")
      throw failure{exit_error, "a raw receiver process (pid " + std::to_string(s->pid()) +
                                    ") was not ready " + startup_limit_text(deadline)};
  }
  raw_socket tx(bus_url::parse(url), false);
  flow_run run;
  std::string payload = make_payload(a.size);
  const double cpu0 = process_cpu_seconds();
  run.send_s = publish_all(a.count, a.rate, deadline, [&](long long i) {
    set_index(payload, static_cast<std::uint64_t>(i));
    if (!tx.send(payload.data(), payload.size()))
      throw failure{exit_error, std::string("raw send: ") + std::strerror(errno)};
  });
  run.cpu_s = process_cpu_seconds() - cpu0;
  // Empty datagrams mark the end; a receiver whose buffer is still full may miss them and ends
  // after raw_idle_end of silence instead.
  for (int k = 0; k < 3; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    (void)tx.send("", 0);
  }
  run.subs = collect(sinks, deadline + std::chrono::seconds(3), "raw receiver");
  return run;
}

struct summary {
  double mean = 0, min = 0;
};

summary rates(std::vector<nlohmann::json>& subs, std::size_t size) {
  summary s;
  s.min = -1;
  for (auto& r : subs) {
    double v = add_rates(r, size);
    s.mean += v;
    s.min = s.min < 0 ? v : std::min(s.min, v);
  }
  if (!subs.empty()) s.mean /= static_cast<double>(subs.size());
  if (s.min < 0) s.min = 0;
  return s;
}

std::string k(double v) {
  char buf[32];
  if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

}  // namespace

int run_throughput(const global_options& g, const throughput_args& a) {
  if (!g.url.empty()) {
    std::cerr << "peerbus bench throughput: --url is not accepted: every bench runs on a private "
                 "bus of its own\n";
    return exit_usage;
  }
  if (a.raw && a.size > max_payload) {
    std::cerr << "peerbus bench throughput: --raw sends one datagram per message: --size at most "
              << max_payload << " with --raw\n";
    return exit_usage;
  }
  auto deadline = clock::now() + seconds(a.timeout);
  try {
    auto bus_run = bus_flow(g, a, deadline);
    auto bus_rate = rates(bus_run.subs, a.size);
    std::optional<flow_run> raw_run;
    summary raw_rate;
    if (a.raw) {
      raw_run = raw_flow(a, deadline);
      raw_rate = rates(raw_run->subs, a.size);
    }
    const double m = static_cast<double>(a.count);
    long long lost_total = 0;
    bool complete = true, clean = true;
    int worst_exit = exit_ok;
    for (const auto& r : bus_run.subs) {
      lost_total += r.value("lost", 0LL);
      complete = complete && r.value("complete", false);
      clean = clean && r.value("in_order", false) && r.value("duplicates", 0LL) == 0;
      worst_exit = std::max(worst_exit, r.value("exit", 0));
    }
    const auto& st = bus_run.sender;
    nlohmann::json bus_j = {
        {"sent", a.count},
        {"send_s", rounded(bus_run.send_s * 1e6) / 1e6},
        {"send_msgs_per_s", rounded(bus_run.send_s > 0 ? m / bus_run.send_s : 0)},
        {"cpu_us_per_msg", round2(bus_run.cpu_s * 1e6 / m)},
        {"datagrams_sent", st.datagrams_sent},
        {"bytes_per_datagram", st.datagrams_sent ? st.bytes_sent / st.datagrams_sent : 0},
        {"nacks_received", st.nacks_received},
        {"repairs_sent", st.repairs_sent},
        {"repairs_unavailable", st.repairs_unavailable},
        {"rate_cuts", st.rate_cuts},
        {"flow_waits", st.flow_waits},
        {"flow_reports", st.flow_reports},
        {"msgs_per_s_mean", rounded(bus_rate.mean)},
        {"msgs_per_s_min", rounded(bus_rate.min)},
        {"mb_per_s_mean", round2(bus_rate.mean * static_cast<double>(a.size) / 1e6)},
        {"lost_total", lost_total},
        {"complete", complete},
        {"subscribers", bus_run.subs}};
    nlohmann::json raw_j;
    if (raw_run) {
      long long undelivered = 0;
      double worst_fraction = 1.0;
      for (const auto& r : raw_run->subs) {
        auto got = r.value("unique", 0LL);
        undelivered += a.count - got;
        worst_fraction = std::min(worst_fraction, static_cast<double>(got) / m);
      }
      raw_j = {{"sent", a.count},
               {"send_s", rounded(raw_run->send_s * 1e6) / 1e6},
               {"send_msgs_per_s", rounded(raw_run->send_s > 0 ? m / raw_run->send_s : 0)},
               {"cpu_us_per_msg", round2(raw_run->cpu_s * 1e6 / m)},
               {"msgs_per_s_mean", rounded(raw_rate.mean)},
               {"msgs_per_s_min", rounded(raw_rate.min)},
               {"mb_per_s_mean", round2(raw_rate.mean * static_cast<double>(a.size) / 1e6)},
               {"not_delivered_total", undelivered},
               {"delivered_fraction_min", rounded(worst_fraction * 10000) / 10000},
               {"subscribers", raw_run->subs}};
    }
    auto ratio = [](double x, double y) { return y > 0 ? round2(x / y) : 0.0; };
    if (a.json) {
      nlohmann::json j = {{"bench", "throughput"}, {"subscribers", a.subscribers},
                          {"count", a.count},      {"size", a.size},
                          {"rate", a.rate},        {"bus", bus_j}};
      if (raw_run) {
        j["raw"] = raw_j;
        j["ratio"] = {{"msgs_per_s_mean", ratio(bus_rate.mean, raw_rate.mean)},
                      {"msgs_per_s_min", ratio(bus_rate.min, raw_rate.min)}};
      }
      say(j.dump());
    } else {
      std::printf(
          "peerbus bench throughput: %lld messages of %zu bytes, 1 publisher -> %d "
          "subscriber process(es)%s\n",
          a.count, a.size, a.subscribers,
          a.rate > 0 ? (", paced to " + k(a.rate) + " msg/s").c_str() : "");
      std::printf(
          "peerbus: sent in %.3f s (%s msg/s, %.1f us CPU each), %llu datagrams of %llu "
          "bytes; NACK ranges received %llu, repairs sent %llu, unavailable %llu, "
          "slow-downs %llu, waits for a receiver %llu\n",
          bus_run.send_s, k(m / bus_run.send_s).c_str(), bus_run.cpu_s * 1e6 / m,
          static_cast<unsigned long long>(st.datagrams_sent),
          static_cast<unsigned long long>(st.datagrams_sent ? st.bytes_sent / st.datagrams_sent
                                                            : 0),
          static_cast<unsigned long long>(st.nacks_received),
          static_cast<unsigned long long>(st.repairs_sent),
          static_cast<unsigned long long>(st.repairs_unavailable),
          static_cast<unsigned long long>(st.rate_cuts),
          static_cast<unsigned long long>(st.flow_waits));
      int i = 0;
      for (const auto& r : bus_run.subs)
        std::printf(
            "  subscriber %d: %lld delivered in %.3f s: %s msg/s, %.2f MB/s, %.1f us CPU "
            "each; lost %lld, recovered %lld (NACK ranges sent %lld, buffer overflows %lld, "
            "backlogs %lld)%s%s\n",
            ++i, r.value("unique", 0LL), r.value("elapsed_s", 0.0),
            k(r.value("msgs_per_s", 0.0)).c_str(), r.value("mb_per_s", 0.0),
            r.value("cpu_us_per_msg", 0.0), r.value("lost", 0LL), r.value("recovered", 0LL),
            r.value("nacks_sent", 0LL), r.value("rx_overflows", 0LL), r.value("rx_backlogs", 0LL),
            r.value("in_order", false) && r.value("duplicates", 0LL) == 0
                ? ", in order, no duplicates"
                : ", OUT OF ORDER OR DUPLICATED",
            r.value("complete", false) ? "" : ", INCOMPLETE");
      if (raw_run) {
        std::printf("udp:     sent in %.3f s (%s datagrams/s, %.1f us CPU each), %zu bytes each\n",
                    raw_run->send_s, k(m / raw_run->send_s).c_str(), raw_run->cpu_s * 1e6 / m,
                    a.size);
        i = 0;
        for (const auto& r : raw_run->subs) {
          auto got = r.value("unique", 0LL);
          std::printf(
              "  receiver %d: %lld of %lld (%.1f%%) in %.3f s: %s datagrams/s, %.2f MB/s, "
              "%.1f us CPU each\n",
              ++i, got, a.count, 100.0 * static_cast<double>(got) / m, r.value("elapsed_s", 0.0),
              k(r.value("msgs_per_s", 0.0)).c_str(), r.value("mb_per_s", 0.0),
              r.value("cpu_us_per_msg", 0.0));
        }
        std::printf("peerbus/udp, delivered per subscriber: %.2fx (mean), %.2fx (slowest)\n",
                    ratio(bus_rate.mean, raw_rate.mean), ratio(bus_rate.min, raw_rate.min));
      }
      std::fflush(stdout);
    }
    if (!clean) {
      // The bus promises in-order, exactly-once delivery: a breach is a failure, not a figure.
      std::cerr << "peerbus bench throughput: a subscriber got messages out of order or twice\n";
      return exit_error;
    }
    if (!complete) {
      std::cerr << "peerbus bench throughput: a subscriber did not account for every message ("
                << "received or reported lost) by the deadline (--timeout " << a.timeout << " s)\n";
      return worst_exit == exit_error ? exit_error : exit_timeout;
    }
    return exit_ok;
  } catch (const failure& f) {
    std::cerr << "peerbus bench throughput: " << f.message << "\n";
    return f.code;
  }
}

int run_sink(const global_options& g, const child_args& a) {
  auto deadline = clock::now() + seconds(a.deadline);
  // Counted on one thread at a time: the bus's (handlers) or ours (raw), read at the end.
  long long received = 0, duplicates = 0, out_of_order = 0, foreign = 0, lost = 0, lost_events = 0;
  bool any = false;
  std::uint64_t last_index = 0;
  clock::time_point first_at{}, last_at{};
  std::vector<bool> seen(static_cast<std::size_t>(std::max(0LL, a.count)));
  auto count_one = [&](std::string_view payload, clock::time_point now) {
    auto index = read_index(payload);
    if (!index || *index >= seen.size()) {
      ++foreign;
      return;
    }
    ++received;
    if (seen[*index]) ++duplicates;
    seen[*index] = true;
    if (any && *index <= last_index) ++out_of_order;
    if (!any) first_at = now;
    any = true;
    last_index = *index;
    last_at = now;
  };
  auto unique = [&] { return received - duplicates; };
  bool timed_out = false;
  nlohmann::json extra = nlohmann::json::object();
  double cpu0 = 0;

  if (a.raw) {
    raw_socket sock(bus_url::parse(a.listen), true);
    sock.set_timeout(std::chrono::milliseconds(100));
    extra["rcvbuf"] = sock.rcvbuf();
    say("ready");
    cpu0 = process_cpu_seconds();
    std::vector<char> buf(65536);
    for (;;) {
      long n = sock.recv(buf.data(), buf.size());
      if (n == 0) break;  // the sender's end marker
      if (n > 0) {
        count_one(std::string_view(buf.data(), static_cast<std::size_t>(n)), clock::now());
        if (a.count > 0 && unique() >= a.count) break;
        continue;
      }
      auto now = clock::now();
      if (stop_requested.load() || !parent_alive(a.parent)) break;
      if (any && now - last_at >= raw_idle_end) break;
      if (now >= deadline) {
        timed_out = true;
        break;
      }
    }
  } else {
    std::atomic<bool> done{false}, parent_gone{false};
    auto check_done = [&] {
      if (a.count > 0 && unique() + lost >= a.count && !done.exchange(true)) wake_waiters();
    };
    options o = child_options(g, "peerbus-bench-sink", a.listen);
    bus b(o);  // after everything its handlers use
    cpu0 = process_cpu_seconds();
    auto sub = b.subscribe("bench.data", [&](const message& m) {
      count_one(m.data_json(), clock::now());
      check_done();
    });
    auto losses = b.on_loss([&](const loss_event& e) {
      lost += static_cast<long long>(e.count());
      ++lost_events;
      check_done();
    });
    auto peers = b.on_peer_event([&](const peer_event& e) {
      if (e.peer.pid == a.parent && e.kind != peer_event_kind::joined) {
        parent_gone.store(true);
        wake_waiters();
      }
    });
    while (!done.load() && !stop_requested.load() && !parent_gone.load() &&
           parent_alive(a.parent)) {
      if (clock::now() >= deadline) {
        timed_out = true;
        break;
      }
      wait_until_or_stop([&] { return done.load() || parent_gone.load(); },
                         std::min(deadline, clock::now() + std::chrono::milliseconds(200)));
    }
    sub.unsubscribe();
    losses.unsubscribe();
    peers.unsubscribe();
    b.close();  // joins the bus thread: the counters above are ours alone from here
    auto s = b.stats();
    extra["nacks_sent"] = s.nacks_sent;
    extra["recovered"] = s.recovered;
    extra["bus_duplicates"] = s.duplicates;
    extra["bus_lost"] = s.lost;
    extra["datagrams_received"] = s.datagrams_received;
    extra["bytes_received"] = s.bytes_received;
    extra["dropped"] = s.dropped_total();
    extra["rx_overflows"] = s.rx_overflows;
    extra["rx_backlogs"] = s.rx_backlogs;
    extra["congestion_notices"] = s.congestion_notices;
  }
  nlohmann::json r = {
      {"received", received},
      {"unique", unique()},
      {"in_order", out_of_order == 0},
      {"out_of_order", out_of_order},
      {"duplicates", duplicates},
      {"foreign", foreign},
      {"lost", lost},
      {"lost_events", lost_events},
      {"elapsed_s",
       any ? rounded(std::chrono::duration<double>(last_at - first_at).count() * 1e6) / 1e6
           : 0.0},
      {"complete", a.count > 0 && unique() + lost >= a.count},
      {"timed_out", timed_out},
      {"cpu_s", rounded((process_cpu_seconds() - cpu0) * 1e6) / 1e6}};
  r.update(extra);
  say(r.dump());
  return timed_out ? exit_timeout : exit_ok;
}

}  // namespace peerbus::tools::bench
