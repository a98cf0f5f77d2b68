// tools/common.cpp: shared option parsing, logging, signals and JSON output of the CLI.
#include "common.hpp"

#include <nlohmann/json.hpp>

#include <csignal>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <iostream>
#include <thread>

#ifndef _WIN32
#include <pthread.h>
#include <signal.h>
#endif

namespace peerbus::tools {

std::atomic<bool> stop_requested{false};

void add_global_options(CLI::App& app, global_options& g) {
  app.add_option("--url", g.url, "bus URL, e.g. udpm://239.255.80.66:7780?ttl=0&iface=127.0.0.1 "
                                 "(default: $PEERBUS_URL, else that one)");
  app.add_option("--name", g.name, "this process's name on the bus ([A-Za-z0-9._-], 1..64)");
  app.add_option("--faults", g.faults,
                 "inject loss: rx=RATE,tx=RATE,seed=N (default: $PEERBUS_FAULTS)");
  app.add_option("--key", g.key,
                 "seal the bus with the key in FILE, or 'auto' for the per-user key (default: "
                 "key= in the URL, else $PEERBUS_KEY_FILE, else open)");
  app.add_flag("-v,--verbose", g.verbose, "also print the library's info messages");
}

options make_options(const global_options& g, std::string_view default_name) {
  options o;
  o.url = g.url;
  o.name = g.name.empty() ? std::string(default_name) : g.name;
  o.key_file = g.key;
  if (!g.faults.empty()) {
#ifdef _WIN32
    _putenv_s("PEERBUS_FAULTS", g.faults.c_str());
#else
    ::setenv("PEERBUS_FAULTS", g.faults.c_str(), 1);
#endif
  }
  bool verbose = g.verbose;
  o.log = [verbose](log_level l, std::string_view text) {
    if (l < log_level::warning && !verbose) return;
    std::cerr << "peerbus: " << to_string(l) << ": " << text << std::endl;
  };
  return o;
}

namespace {

std::mutex wait_mu;
std::condition_variable wait_cv;

#ifndef _WIN32
bool ignored_at_start(int sig) {
  struct sigaction old {};
  return ::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN;
}
#else
extern "C" void peerbus_on_signal(int) { stop_requested.store(true); }
#endif

}  // namespace

void wake_waiters() {
  // Taking the lock orders this wake-up after a waiter's check of its condition.
  { std::lock_guard<std::mutex> lock(wait_mu); }
  wait_cv.notify_all();
}

void install_signal_handlers() {
#ifdef _WIN32
  // No sigwait (untested platform): a handler sets the flag, which waits below see only when
  // they next wake for another reason.
  std::signal(SIGINT, peerbus_on_signal);
  std::signal(SIGTERM, peerbus_on_signal);
#else
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe (| head) is an error on write, not a kill
  sigset_t set;
  sigemptyset(&set);
  bool any = false;
  for (int sig : {SIGINT, SIGTERM}) {
    if (ignored_at_start(sig)) continue;
    sigaddset(&set, sig);
    any = true;
  }
  if (!any) return;
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    while (::sigwait(&set, &sig) != 0) {
    }
    stop_requested.store(true);
    wake_waiters();
  }).detach();
#endif
}

bool wait_until_or_stop(const std::function<bool()>& done,
                        std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(wait_mu);
  return wait_cv.wait_until(lock, deadline, [&] { return stop_requested.load() || done(); }) &&
         !stop_requested.load();
}

bool sleep_until_or_stop(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(wait_mu);
  wait_cv.wait_until(lock, deadline, [] { return stop_requested.load(); });
  return !stop_requested.load();
}

void print_message_json(const message& m, std::FILE* out, std::string_view extra) {
  // Built by hand so the payload is copied as it travelled, never parsed and re-serialised.
  std::string line = "{\"topic\":";
  line += nlohmann::json(std::string(m.topic())).dump();
  line += ",\"name\":\"";
  line += m.sender_name();
  line += "\",\"from\":\"";
  line += m.sender().str();
  line += "\",\"seq\":";
  line += std::to_string(m.seq());
  line += ",\"ts\":";
  line += std::to_string(m.timestamp_us());
  if (m.is_binary()) {
    line += ",\"ctype\":";
    line += nlohmann::json(std::string(m.content_type())).dump();
    line += ",\"size\":";
    line += std::to_string(m.bytes().size());
  } else {
    line += ",\"data\":";
    line += m.data_json();
  }
  line += extra;
  line += "}\n";
  std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

std::string base64(std::string_view bytes) {
  static constexpr char digits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16 |
                       static_cast<unsigned char>(bytes[i + 1]) << 8 |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += digits[v >> 18];
    out += digits[(v >> 12) & 63];
    out += digits[(v >> 6) & 63];
    out += digits[v & 63];
  }
  if (i < bytes.size()) {
    const bool two = i + 1 < bytes.size();
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16 |
                       (two ? static_cast<unsigned char>(bytes[i + 1]) << 8 : 0u);
    out += digits[v >> 18];
    out += digits[(v >> 12) & 63];
    out += two ? digits[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool from_base64(std::string_view text, std::string& out) {
  out.clear();
  unsigned acc = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') break;
    else return false;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return true;
}

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string stats_json(const bus_stats& s) {
  nlohmann::json dropped = nlohmann::json::object();
  for (std::size_t i = 0; i < drop_reason_count; ++i)
    dropped[to_string(static_cast<drop_reason>(i))] = s.dropped[i];
  nlohmann::json streams = nlohmann::json::array();
  for (const auto& st : s.streams)
    streams.push_back({{"id", st.id.str()}, {"name", st.name}, {"received", st.received},
                       {"delivered", st.delivered}, {"duplicates", st.duplicates},
                       {"gaps", st.gaps}, {"nacks_sent", st.nacks_sent},
                       {"recovered", st.recovered}, {"lost", st.lost},
                       {"highest_seq", st.highest_seq}});
  nlohmann::json subscriptions = nlohmann::json::array();
  for (const auto& sub : s.subscriptions)
    subscriptions.push_back({{"pattern", sub.pattern}, {"queue_limit", sub.queue_limit},
                             {"delivered", sub.delivered}, {"dropped", sub.dropped},
                             {"waits", sub.waits}, {"queued", sub.queued},
                             {"queued_max", sub.queued_max}, {"queued_bytes", sub.queued_bytes}});
  nlohmann::json j = {
      {"datagrams_received", s.datagrams_received}, {"bytes_received", s.bytes_received},
      {"datagrams_sent", s.datagrams_sent},         {"bytes_sent", s.bytes_sent},
      {"send_errors", s.send_errors},               {"receive_errors", s.receive_errors},
      {"published", s.published},
      {"delivered", s.delivered},                   {"dropped", dropped},
      {"nacks_received", s.nacks_received},         {"repairs_sent", s.repairs_sent},
      {"repairs_unavailable", s.repairs_unavailable},
      {"repairs_deferred", s.repairs_deferred},     {"nacks_deferred", s.nacks_deferred},
      {"goodbyes_refuted", s.goodbyes_refuted},     {"frames_shed", s.frames_shed},
      {"buffered_bytes", s.buffered_bytes},
      {"dropped_tx_injected", s.dropped_tx_injected},
      {"nacks_sent", s.nacks_sent},                 {"duplicates", s.duplicates},
      {"recovered", s.recovered},                   {"lost", s.lost},
      {"batched_frames", s.batched_frames},         {"own_datagrams", s.own_datagrams},
      {"rx_overflows", s.rx_overflows},             {"rate_cuts", s.rate_cuts},
      {"rx_backlogs", s.rx_backlogs},               {"congestion_notices", s.congestion_notices},
      {"send_rate_limit", s.send_rate_limit},       {"flow_waits", s.flow_waits},
      {"flow_stalls", s.flow_stalls},               {"flow_reports", s.flow_reports},
      {"flow_receivers", s.flow_receivers},
      {"reassembled", s.reassembled},               {"reassembly_bytes", s.reassembly_bytes},
      {"streams", streams},                         {"queue_dropped", s.queue_dropped},
      {"subscriptions", subscriptions}};
  return j.dump();
}

std::string peer_json(const peer_info& p) {
  auto uptime = std::chrono::duration<double>(std::chrono::system_clock::now() - p.started).count();
  nlohmann::json j = {{"name", p.name},
                      {"id", p.id.str()},
                      {"display", p.display},
                      {"pid", p.pid},
                      {"host", p.host},
                      {"uptime_s", uptime < 0 ? 0.0 : uptime},
                      {"subscriptions", p.subscriptions},
                      {"subscriptions_truncated", p.subscriptions_truncated},
                      {"highest_seq", p.highest_seq}};
  return j.dump();
}

std::chrono::milliseconds seconds(double s) {
  return std::chrono::milliseconds(static_cast<long long>(s * 1000.0));
}

}  // namespace peerbus::tools
