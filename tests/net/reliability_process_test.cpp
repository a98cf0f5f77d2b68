// tests/net/reliability_process_test.cpp: reliable delivery between real `peerbus` processes:
// one `pub` to three `sub`s on a private bus with 0%, 1%, 10% and 30% of every kind of datagram
// dropped by fault injection (data, NACKs, repairs, heartbeats, adverts: each datagram misses
// each process with that probability), and with 10% dropped by the kernel (iptables in a network
// namespace, root only). Each subscriber must print every message exactly once and in order; the
// elapsed times and the `--stats` counters are printed (WARN) so they can be quoted next to the
// loss-free time.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "reliability/fault_injector.hpp"
#include "support/bus_address.hpp"
#include "support/netns.hpp"
#include "support/peerbus_cli.hpp"

using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

// 100,000 messages as the issue asks. Under AddressSanitizer every process runs several times
// slower and the suite must still finish in minutes, so the sanitizer build sends 20,000: the
// same protocol paths, a fifth of the time.
constexpr long long messages = sanitized ? 20000 : 100000;
// The publisher is paced. There is no flow control: a sender keeps its last 16384 messages
// (options::window_messages) and a message that leaves that window before its repair arrives is
// lost by design (an explicit loss event). At 10,000/s the window spans 1.6 s: about 30 NACKs of
// a gap (retried every 50 ms at most), where the unluckiest of the ~60,000 gaps at 30% loss
// needs about 25. A sender racing at full speed (50,000/s or more here) moves its window in
// 0.3 s, too short under loss: its subscribers then report losses, as designed.
constexpr int rate = 10000;
constexpr int subscribers = 3;
const std::string payload = R"({"n":1})";

// A subscriber that misses both the publisher's announce and its first message cannot tell that
// from a late join (it would start at the first message it hears: a protocol limitation, not
// something repairs fix). The seeds are therefore chosen so that each process's first
// `rendezvous_rx` received and `rendezvous_tx` sent datagrams pass: the processes meet without
// loss (announces, the first heartbeats, the first few dozen messages), then every datagram of
// every kind is dropped at the full rate for the rest of the run.
constexpr int rendezvous_rx = 40;
constexpr int rendezvous_tx = 8;

std::string fixed(double v, int decimals) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(decimals) << v;
  return o.str();
}

// $PEERBUS_FAULTS for one process such that `loss` of the datagrams addressed to any process
// never arrive: a datagram crosses two injectors (the sender's tx, the receiver's rx), so each
// drops 1 - sqrt(1 - loss). The seed is the first from `first_seed` on whose rx and tx decisions
// let the rendezvous through (see rendezvous_rx).
std::string fault_spec(double loss, std::uint64_t first_seed) {
  using peerbus::detail::fault_config;
  using peerbus::detail::fault_injector;
  const std::string rate_text = fixed(1.0 - std::sqrt(1.0 - loss), 6);
  const double r = std::strtod(rate_text.c_str(), nullptr);  // exactly what the process parses
  for (std::uint64_t seed = first_seed;; ++seed) {
    const fault_config cfg{r, r, seed};
    auto rx = fault_injector::for_rx(cfg);
    auto tx = fault_injector::for_tx(cfg);
    bool ok = true;
    for (int i = 0; ok && i < rendezvous_rx; ++i) ok = !rx.drop();
    for (int i = 0; ok && i < rendezvous_tx; ++i) ok = !tx.drop();
    if (ok) return "rx=" + rate_text + ",tx=" + rate_text + ",seed=" + std::to_string(seed);
  }
}

// The seq printed on one `sub` output line, 0 if none.
std::uint64_t seq_of(const std::string& line) {
  constexpr std::string_view key = "\"seq\":";
  const auto at = line.find(key);
  if (at == std::string::npos) return 0;
  std::uint64_t v = 0;
  const char* begin = line.data() + at + key.size();
  std::from_chars(begin, line.data() + line.size(), v);
  return v;
}

std::int64_t ts_of(const std::string& line) {
  return nlohmann::json::parse(line).at("ts").get<std::int64_t>();
}

// Empty when `lines` are seq 1..n from one sender, each once, in order; else what is wrong.
std::string sequence_problem(const std::vector<std::string>& lines, std::uint64_t n) {
  if (lines.empty()) return "no output";
  const auto first = nlohmann::json::parse(lines.front());
  const std::string from = "\"from\":\"" + first.at("from").get<std::string>() + "\"";
  std::string problem;
  std::size_t bad = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::uint64_t seq = seq_of(lines[i]);
    const bool same_sender = lines[i].find(from) != std::string::npos;
    if (seq == i + 1 && same_sender) continue;
    if (++bad <= 5)
      problem += "line " + std::to_string(i + 1) + ": seq " + std::to_string(seq) +
                 (same_sender ? "" : " from another sender") + "\n";
  }
  if (lines.size() != n)
    problem += std::to_string(lines.size()) + " lines, expected " + std::to_string(n) + "\n";
  if (bad > 5) problem += "... " + std::to_string(bad) + " lines out of place\n";
  return problem;
}

// The counters a `--stats` command printed on exit: the last JSON object with "streams" on its
// standard error (loss reports and warnings are other lines).
nlohmann::json stats_of(const std::string& err) {
  nlohmann::json found;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.front() != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("streams")) found = std::move(j);
  }
  return found;
}

// The per-peer entry of `stats` for the sender named `name`, or null.
nlohmann::json stream_of(const nlohmann::json& stats, const std::string& name) {
  for (const auto& s : stats.at("streams"))
    if (s.at("name") == name) return s;
  return nullptr;
}

double seconds_between(std::int64_t from_us, std::int64_t to_us) {
  return static_cast<double>(to_us - from_us) / 1e6;
}

std::int64_t system_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Checks one subscriber's output and counters; returns its per-peer entry for the publisher.
nlohmann::json check_subscriber(const std::vector<std::string>& lines, const std::string& err,
                                bool lossy) {
  const std::string problem = sequence_problem(lines, messages);
  INFO(problem);
  CHECK(problem.empty());
  // --stats on exit: the totals, and the publisher's own entry (it is still on the bus when the
  // subscribers leave, so the entry is there).
  const auto stats = stats_of(err);
  INFO("stats: " << stats.dump());
  REQUIRE(stats.is_object());
  CHECK(stats.at("delivered") == messages);  // handler calls: each message once
  CHECK(stats.at("lost") == 0);
  CHECK(err.find("{\"lost\":") == std::string::npos);  // no loss report either
  const auto pub = stream_of(stats, "rel-pub");
  REQUIRE(pub.is_object());
  CHECK(pub.at("delivered") == messages);
  CHECK(pub.at("lost") == 0);
  CHECK(pub.at("highest_seq") == messages);
  CHECK(pub.at("received").get<long long>() >= messages);
  CHECK(pub.at("received").get<long long>() - pub.at("duplicates").get<long long>() == messages);
  if (lossy) {
    CHECK(stats.at("dropped").at("injected").get<long long>() > 0);
    CHECK(pub.at("gaps").get<long long>() > 0);
    CHECK(pub.at("nacks_sent").get<long long>() > 0);
    CHECK(pub.at("recovered").get<long long>() > 0);
    CHECK(stats.at("nacks_sent").get<long long>() >= pub.at("nacks_sent").get<long long>());
  } else {
    CHECK(stats.at("dropped").at("injected") == 0);
  }
  return pub;
}

// One `pub` to three `sub`s, `loss` of the datagrams addressed to each process dropped by fault
// injection (0: none). Prints what happened, with times.
void run_loss_level(double loss, const std::string& label) {
  const auto url = private_bus_url();
  const bool lossy = loss > 0;
  auto env_for = [&](std::uint64_t seed_base) {
    return std::map<std::string, std::string>{
        {"PEERBUS_URL", url}, {"PEERBUS_FAULTS", lossy ? fault_spec(loss, seed_base) : ""}};
  };

  std::vector<child> subs;
  std::vector<std::string> specs;
  for (int i = 0; i < subscribers; ++i) {
    auto env = env_for(1000000 * static_cast<std::uint64_t>(i + 1));
    specs.push_back(env["PEERBUS_FAULTS"]);
    subs.emplace_back(
        peerbus_cmd({"sub", "--url", url, "--name", "rel-sub-" + std::to_string(i), "--count",
                     std::to_string(messages), "--timeout", "20", "--stats", "rel.>"}),
        std::move(env));
  }
  // stdin mode: the payload line is published --count times, then the publisher waits for more
  // input, so it is still on the bus (answering NACKs, in the subscribers' --stats) until the
  // test closes its stdin once every subscriber is done.
  auto pub_env = env_for(7000000);
  specs.push_back(pub_env["PEERBUS_FAULTS"]);
  child pub(
      peerbus_cmd({"pub", "--url", url, "--name", "rel-pub", "rel.data", "--count",
                   std::to_string(messages), "--rate", std::to_string(rate), "--wait-subscribers",
                   std::to_string(subscribers), "--wait-timeout", "30", "--stats"}),
      std::move(pub_env), stdin_mode::pipe);
  pub.write_stdin(payload + "\n");
  INFO("faults (subs, pub): " << specs[0] << " " << specs[1] << " " << specs[2] << " " << specs[3]);

  // When each subscriber had everything (system clock, comparable with the messages' ts).
  const auto deadline = deadline_in(std::chrono::seconds(messages / rate + 60));
  std::vector<std::int64_t> done_us(subscribers, 0);
  {
    std::vector<std::thread> waiters;
    for (int i = 0; i < subscribers; ++i)
      waiters.emplace_back([&, i] {
        if (subs[static_cast<std::size_t>(i)].wait_for_lines(static_cast<std::size_t>(messages),
                                                             deadline))
          done_us[static_cast<std::size_t>(i)] = system_now_us();
      });
    for (auto& w : waiters) w.join();
  }
  for (auto& s : subs) {
    INFO(describe(s));
    REQUIRE(s.wait_exit(deadline_in(30s)) == 0);
  }
  pub.close_stdin();
  INFO(describe(pub));
  REQUIRE(pub.wait_exit(deadline_in(30s)) == 0);

  std::vector<nlohmann::json> entries;
  std::int64_t first_ts = 0, last_ts = 0;
  for (int i = 0; i < subscribers; ++i) {
    auto& s = subs[static_cast<std::size_t>(i)];
    INFO("subscriber " << i << ": " << describe(s));
    const auto lines = s.lines();
    REQUIRE(done_us[static_cast<std::size_t>(i)] != 0);
    entries.push_back(check_subscriber(lines, s.stderr_text(), lossy));
    if (i == 0 && !lines.empty()) {
      first_ts = ts_of(lines.front());
      last_ts = ts_of(lines.back());
    }
  }
  const auto pub_stats = stats_of(pub.stderr_text());
  INFO("publisher stats: " << pub_stats.dump());
  REQUIRE(pub_stats.is_object());
  CHECK(pub_stats.at("published") == messages);
  if (lossy) {
    CHECK(pub_stats.at("nacks_received").get<long long>() > 0);
    CHECK(pub_stats.at("repairs_sent").get<long long>() > 0);
    CHECK(pub_stats.at("dropped_tx_injected").get<long long>() > 0);
  }

  std::int64_t all_done = 0;
  for (auto t : done_us) all_done = std::max(all_done, t);
  std::ostringstream report;
  report << "reliability " << label << ": " << messages << " messages at " << rate << "/s to "
         << subscribers << " subs, all delivered once in order "
         << fixed(seconds_between(first_ts, all_done), 2) << " s after the first publish"
         << " (publishing took " << fixed(seconds_between(first_ts, last_ts), 2)
         << " s; the last sub was complete " << fixed(seconds_between(last_ts, all_done), 3)
         << " s after the last publish). Publisher: nacks_received "
         << pub_stats.at("nacks_received") << ", repairs_sent " << pub_stats.at("repairs_sent")
         << ", repairs_unavailable " << pub_stats.at("repairs_unavailable") << ", datagrams_sent "
         << pub_stats.at("datagrams_sent") << ", dropped_tx_injected "
         << pub_stats.at("dropped_tx_injected") << ". Subs (gaps/nacks_sent/recovered/"
         << "duplicates):";
  for (const auto& e : entries)
    report << " " << e.at("gaps") << "/" << e.at("nacks_sent") << "/" << e.at("recovered") << "/"
           << e.at("duplicates");
  WARN(report.str());
}

}  // namespace

TEST_CASE("reliability: pub to three subs without loss: every message once and in order",
          "[net][reliability]") {
  run_loss_level(0.0, "loss-free");
}

TEST_CASE(
    "reliability: pub to three subs with 1% of all datagrams dropped: every message once "
    "and in order",
    "[net][reliability]") {
  run_loss_level(0.01, "1% loss");
}

TEST_CASE(
    "reliability: pub to three subs with 10% of all datagrams dropped: every message once "
    "and in order",
    "[net][reliability]") {
  run_loss_level(0.10, "10% loss");
}

TEST_CASE(
    "reliability: pub to three subs with 30% of all datagrams dropped: every message once "
    "and in order",
    "[net][reliability]") {
  run_loss_level(0.30, "30% loss");
}

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Runs `sh -c script` (optionally inside `unshare -n`) to completion; exit code, or nullopt on
// timeout (then killed).
std::optional<int> run_shell(const std::string& script,
                             const std::map<std::string, std::string>& env, bool own_netns,
                             std::chrono::milliseconds timeout, std::string* output = nullptr) {
  std::vector<std::string> argv;
  if (own_netns) argv = {"unshare", "-n"};
  argv.insert(argv.end(), {"sh", "-c", script});
  child c(argv, env);
  auto rc = c.wait_exit(deadline_in(timeout));
  if (!rc) {
    c.signal(SIGKILL);
    c.wait_exit(deadline_in(5s));
  }
  if (output) *output = c.stdout_text() + c.stderr_text();
  return rc;
}

// Removes a scratch directory on the way out.
struct scratch_dir {
  std::string path;
  scratch_dir() {
    char tmpl[] = "/tmp/peerbus-netns-XXXXXX";
    if (::mkdtemp(tmpl)) path = tmpl;
  }
  ~scratch_dir() {
    if (!path.empty()) run_shell("rm -rf \"$D\"", {{"D", path}}, false, 10s);
  }
};

// The pub, three subs and the iptables rule, all inside a new network namespace. They meet
// without loss (a `peers` listener must see all four twice in a row), then the rule drops 10% of
// the UDP datagrams entering any socket of the namespace, and the payload line goes to the
// publisher's stdin. Results land in $D.
constexpr const char* netns_script = R"sh(
set -u
ip link set lo up || exit 90
for i in 0 1 2; do
  ( "$B" sub --url "$URL" --name "ns-sub-$i" --count "$N" --timeout 20 --stats 'rel.>' \
      >"$D/sub$i.out" 2>"$D/sub$i.err"
    echo $? >"$D/sub$i.rc"
    date +%s%N >"$D/sub$i.done" ) &
  eval "sub$i=\$!"
done
mkfifo "$D/pub.in" || exit 91
"$B" pub --url "$URL" --name ns-pub rel.data --count "$N" --rate "$RATE" \
    --wait-subscribers 3 --wait-timeout 30 --stats <"$D/pub.in" >"$D/pub.out" 2>"$D/pub.err" &
pub=$!
exec 3>"$D/pub.in"
seen=0 tries=0
while [ "$seen" -lt 2 ]; do
  tries=$((tries + 1))
  [ "$tries" -le 60 ] || exit 92
  if [ "$("$B" peers --url "$URL" --json --wait 0.3 | grep -c '"name":"ns-')" -ge 4 ]; then
    seen=$((seen + 1))
  else
    seen=0
  fi
done
iptables -A INPUT -p udp -m statistic --mode random --probability 0.1 -j DROP || exit 93
printf '%s\n' "$PAYLOAD" >&3
wait "$sub0" "$sub1" "$sub2"
exec 3>&-
wait "$pub"
echo $? >"$D/pub.rc"
iptables -L INPUT -n -v -x >"$D/iptables.txt"
exit 0
)sh";

}  // namespace

// Hidden: it needs root, and runs as its own ctest entry that reports a skip elsewhere (see the
// ctest lines in tests/CMakeLists.txt). Run it by name or with "[netns]".
TEST_CASE(
    "reliability: the kernel drops 10% of datagrams in a network namespace: every "
    "message once and in order",
    "[.][netns]") {
  if (::geteuid() != 0) return report_skip("not root: unshare -n and iptables need root");
  std::string out;
  if (run_shell("command -v unshare && command -v iptables && command -v ip", {}, false, 10s,
                &out) != 0)
    return report_skip(
        "unshare, iptables or ip is not installed (Debian: util-linux, iptables, "
        "iproute2): " +
        out);
  if (run_shell("ip link set lo up && iptables -A INPUT -p udp -m statistic --mode random "
                "--probability 0.1 -j DROP",
                {}, true, 20s, &out) != 0)
    return report_skip(
        "cannot create a network namespace with an iptables statistic rule "
        "here: " +
        out);

  scratch_dir dir;
  REQUIRE(!dir.path.empty());
  const auto url = private_bus_url();
  const std::map<std::string, std::string> env{{"B", peerbus_bin()},
                                               {"URL", url},
                                               {"D", dir.path},
                                               {"N", std::to_string(messages)},
                                               {"RATE", std::to_string(rate)},
                                               {"PAYLOAD", payload},
                                               {"PEERBUS_FAULTS", ""}};
  const auto rc =
      run_shell(netns_script, env, true, std::chrono::seconds(messages / rate + 120), &out);
  INFO("script output:\n" << out);
  const std::string d = dir.path + "/";
  for (int i = 0; i < subscribers; ++i)
    INFO("sub" << i << " stderr (tail): " << [&] {
      auto e = read_file(d + "sub" + std::to_string(i) + ".err");
      return e.size() > 2000 ? e.substr(e.size() - 2000) : e;
    }());
  INFO("pub stderr: " << read_file(d + "pub.err"));
  REQUIRE(rc == 0);

  std::vector<nlohmann::json> entries;
  std::int64_t first_ts = 0, last_ts = 0, all_done = 0;
  for (int i = 0; i < subscribers; ++i) {
    const std::string n = std::to_string(i);
    INFO("subscriber " << i);
    CHECK(split_lines(read_file(d + "sub" + n + ".rc")) == std::vector<std::string>{"0"});
    const auto lines = split_lines(read_file(d + "sub" + n + ".out"));
    REQUIRE(!lines.empty());
    const std::string problem = sequence_problem(lines, messages);
    INFO(problem);
    CHECK(problem.empty());
    const auto stats = stats_of(read_file(d + "sub" + n + ".err"));
    INFO("stats: " << stats.dump());
    REQUIRE(stats.is_object());
    CHECK(stats.at("delivered") == messages);
    CHECK(stats.at("lost") == 0);
    const auto pub = stream_of(stats, "ns-pub");
    REQUIRE(pub.is_object());
    CHECK(pub.at("delivered") == messages);
    CHECK(pub.at("lost") == 0);
    CHECK(pub.at("gaps").get<long long>() > 0);  // the kernel dropped some of its messages
    CHECK(pub.at("recovered").get<long long>() > 0);
    entries.push_back(pub);
    if (i == 0) {
      first_ts = ts_of(lines.front());
      last_ts = ts_of(lines.back());
    }
    const auto done_ns = split_lines(read_file(d + "sub" + n + ".done"));
    REQUIRE(done_ns.size() == 1);
    all_done = std::max<std::int64_t>(all_done, std::stoll(done_ns[0]) / 1000);
  }
  CHECK(split_lines(read_file(d + "pub.rc")) == std::vector<std::string>{"0"});
  const auto pub_stats = stats_of(read_file(d + "pub.err"));
  INFO("publisher stats: " << pub_stats.dump());
  REQUIRE(pub_stats.is_object());
  CHECK(pub_stats.at("published") == messages);
  CHECK(pub_stats.at("nacks_received").get<long long>() > 0);
  CHECK(pub_stats.at("repairs_sent").get<long long>() > 0);
  CHECK(pub_stats.at("dropped").at("injected") == 0);  // the kernel dropped, not the library

  // "DROP ... statistic": its packet counter is the first number of the rule's line.
  long long kernel_drops = -1;
  for (const auto& line : split_lines(read_file(d + "iptables.txt")))
    if (line.find("DROP") != std::string::npos && line.find("statistic") != std::string::npos)
      kernel_drops = std::atoll(line.c_str() + line.find_first_not_of(' '));
  CHECK(kernel_drops > 0);

  std::ostringstream report;
  report << "reliability kernel 10% (netns): " << messages << " messages at " << rate << "/s to "
         << subscribers << " subs, all delivered once in order "
         << fixed(seconds_between(first_ts, all_done), 2)
         << " s after the first publish (publishing took "
         << fixed(seconds_between(first_ts, last_ts), 2) << " s, the last sub exited "
         << fixed(seconds_between(last_ts, all_done), 3)
         << " s after the last publish). Kernel drops " << kernel_drops
         << ". Publisher: nacks_received " << pub_stats.at("nacks_received") << ", repairs_sent "
         << pub_stats.at("repairs_sent") << ", repairs_unavailable "
         << pub_stats.at("repairs_unavailable") << ". Subs (gaps/nacks_sent/recovered/"
         << "duplicates):";
  for (const auto& e : entries)
    report << " " << e.at("gaps") << "/" << e.at("nacks_sent") << "/" << e.at("recovered") << "/"
           << e.at("duplicates");
  WARN(report.str());
}
