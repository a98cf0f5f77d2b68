// tests/net/monitor_process_test.cpp: `peerbus monitor` processes on real loopback multicast:
// --json reports every datagram exactly (malformed ones with their reason), the monitor never
// sends anything, it sees the NACKs and repairs of others and the gaps and losses of its own
// hearing, plain summaries when stdout is not a terminal, and the full-screen view under a
// pseudo-terminal (tmux): peers, topics, keys, NO_COLOR, q and Ctrl-C restoring the terminal.
#include "support/bus_address.hpp"
#include "support/observer.hpp"
#include "support/peerbus_cli.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace peerbus::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Waits for `c` to exit and fails, showing what it printed by then, unless it exits with `want`.
void require_exit(child& c, int want, std::chrono::milliseconds timeout) {
  const auto code = c.wait_exit(deadline_in(timeout));
  if (code == want) return;
  FAIL("exit " << (code ? std::to_string(*code) : std::string("none (still running)"))
               << ", wanted " << want << ": " << describe(c));
}

// Sends `bytes` as one datagram to the bus's group and port from a plain UDP socket (an
// ephemeral port, so the monitor shows it as another source), the way a foreign or broken program
// would: IP_MULTICAST_IF 127.0.0.1, TTL 0, loop on. Returns the socket's local port.
class raw_sender {
 public:
  explicit raw_sender(const std::string& url) {
    const auto gp = bus_group_port(url);
    const auto colon = gp.find(':');
    to_.sin_family = AF_INET;
    REQUIRE(::inet_pton(AF_INET, gp.substr(0, colon).c_str(), &to_.sin_addr) == 1);
    to_.sin_port = htons(static_cast<unsigned short>(std::stoi(gp.substr(colon + 1))));
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    in_addr iface{};
    ::inet_pton(AF_INET, "127.0.0.1", &iface);
    unsigned char ttl = 0, loop = 1;
    REQUIRE(::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_IF, &iface, sizeof iface) == 0);
    REQUIRE(::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) == 0);
    REQUIRE(::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) == 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr = iface;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
    socklen_t len = sizeof local;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) == 0);
    port_ = ntohs(local.sin_port);
  }
  ~raw_sender() { ::close(fd_); }
  raw_sender(const raw_sender&) = delete;
  raw_sender& operator=(const raw_sender&) = delete;

  void send(const std::string& bytes) {
    REQUIRE(::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to_),
                     sizeof to_) == static_cast<ssize_t>(bytes.size()));
  }
  // "127.0.0.1:PORT", as the monitor prints the source.
  std::string source() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  sockaddr_in to_{};
  unsigned short port_ = 0;
};

// Every line of a `monitor --json` run, parsed; a line that is not JSON fails the test.
std::vector<nlohmann::json> parse_json_lines(const std::vector<std::string>& lines) {
  std::vector<nlohmann::json> out;
  for (const auto& l : lines) {
    INFO("monitor line: " << l);
    REQUIRE_NOTHROW(out.push_back(nlohmann::json::parse(l)));
  }
  return out;
}

// The decoded envelopes of a --json run, in the order heard.
std::vector<nlohmann::json> envelopes(const std::vector<nlohmann::json>& datagrams) {
  std::vector<nlohmann::json> out;
  for (const auto& d : datagrams) {
    if (!d.value("ok", false)) continue;
    for (const auto& f : d["frames"])
      if (f.value("ok", false)) out.push_back(f["env"]);
  }
  return out;
}

// An in-process tap on an observer's bus: every frame's sender id and name, as heard by a bus
// that is not the monitor (so the monitor's own sends, if any, would show up here).
struct frame_log {
  std::mutex m;
  std::vector<std::pair<std::string, std::string>> frames;  // (type, from)
  std::set<std::string> names;
};

// One row of a plain summary's peer table, from the end (BYTES/S holds a space): NAME ID PID HOST
// UPTIME STATE MSG/S BYTES/S SEQ GAPS NACKS REPAIRS LOST HEARD.
struct peer_row_text {
  std::string name, state;
  std::uint64_t seq = 0, gaps = 0, nacks = 0, repairs = 0, lost = 0;
};

std::optional<peer_row_text> parse_peer_row(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> t;
  for (std::string w; in >> w;) t.push_back(w);
  if (t.size() < 15) return std::nullopt;
  auto n = [&](std::size_t from_end) -> std::optional<std::uint64_t> {
    const auto& s = t[t.size() - from_end];
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoull(s);
  };
  auto seq = n(6), gaps = n(5), nacks = n(4), repairs = n(3), lost = n(2);
  if (!seq || !gaps || !nacks || !repairs || !lost) return std::nullopt;
  return peer_row_text{t[0], t[5], *seq, *gaps, *nacks, *repairs, *lost};
}

}  // namespace

TEST_CASE("monitor: --json reports a known burst exactly, malformed datagrams with their reason, "
          "and sends nothing", "[net][monitor]") {
  const auto url = private_bus_url();
  const auto t_start = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();

  // Another process on the bus that taps every datagram: the monitor must never appear in it.
  observer obs(url, "mon-observer");
  auto log = std::make_shared<frame_log>();
  auto tap = obs.get().on_datagram([log](const peerbus::datagram_view& d) {
    std::lock_guard lk(log->m);
    for (const auto& f : d.frames) {
      if (!f.ok) continue;
      log->frames.emplace_back(std::string(f.type), f.from.str());
      if (!f.name.empty()) log->names.insert(std::string(f.name));
    }
  });

  child mon = spawn_peerbus({"monitor", "--json", "--url", url});
  INFO(mon.command_line());
  // The socket has joined the group once it says so: everything sent from now on is queued on it.
  REQUIRE(mon.wait_for_stderr("listening on", deadline_in(10s)));

  // The burst: 7 on one topic and 3 on another, from two processes, then the malformed datagrams.
  auto a = run_peerbus({"pub", "--url", url, "--name", "burst-a", "burst.alpha", R"({"n":"a"})",
                        "--count", "7"}, 20s);
  REQUIRE(a.code == 0);
  auto b = run_peerbus({"pub", "--url", url, "--name", "burst-b", "burst.beta", "[1,2,3]",
                        "--count", "3"}, 20s);
  REQUIRE(b.code == 0);
  raw_sender raw(url);
  const std::string not_json = "this is not json";
  const std::string sealed = "PBS1\x01\x02 sealed bytes";
  const std::string bad_id = R"({"v":1,"type":"msg","from":"zz","seq":1})";
  raw.send(not_json);
  raw.send(sealed);
  raw.send(bad_id);
  // A sentinel after everything: once the monitor printed it, it has printed all of the above
  // (one socket, one sender at a time on loopback: nothing overtakes).
  auto end = run_peerbus({"pub", "--url", url, "--name", "burst-end", "burst.end", "0"}, 20s);
  REQUIRE(end.code == 0);
  if (!mon.wait_for_line(R"("topic":"burst.end")", deadline_in(10s)))
    FAIL("the monitor did not print the sentinel: " << describe(mon));

  mon.signal(SIGINT);
  require_exit(mon, 0, 10s);
  const auto t_end = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();

  auto datagrams = parse_json_lines(mon.lines());
  REQUIRE_FALSE(datagrams.empty());
  for (const auto& d : datagrams) {
    // Receive time, source and size on every line.
    REQUIRE(d.contains("t"));
    CHECK(d["t"].get<std::int64_t>() >= t_start);
    CHECK(d["t"].get<std::int64_t>() <= t_end);
    CHECK(d["src"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
    CHECK(d["size"].get<std::size_t>() > 0);
  }

  // Messages per topic, exactly; in order per sender; nothing else published.
  std::map<std::string, std::vector<std::uint64_t>> seqs;
  std::map<std::string, std::string> payload;
  std::set<std::string> names;
  for (const auto& e : envelopes(datagrams)) {
    if (e.contains("name")) names.insert(e["name"].get<std::string>());
    if (e["type"] != "msg") continue;
    const auto topic = e["topic"].get<std::string>();
    seqs[topic].push_back(e["seq"].get<std::uint64_t>());
    payload[topic] = e["data"].dump();
  }
  CHECK(seqs == std::map<std::string, std::vector<std::uint64_t>>{
                    {"burst.alpha", {1, 2, 3, 4, 5, 6, 7}},
                    {"burst.beta", {1, 2, 3}},
                    {"burst.end", {1}}});
  CHECK(payload["burst.alpha"] == R"({"n":"a"})");
  CHECK(payload["burst.beta"] == "[1,2,3]");
  // Who spoke: the three publishers and the observer, never the monitor itself.
  CHECK(names == std::set<std::string>{"burst-a", "burst-b", "burst-end", "mon-observer"});

  // The three foreign datagrams, from the raw socket's address, each with why it was refused.
  std::vector<nlohmann::json> foreign;
  for (const auto& d : datagrams)
    if (d["src"] == raw.source()) foreign.push_back(d);
  REQUIRE(foreign.size() == 3);
  // Not JSON: the datagram splits into one frame, which is malformed.
  CHECK(foreign[0]["ok"] == true);
  CHECK(foreign[0]["size"] == not_json.size());
  REQUIRE(foreign[0]["frames"].size() == 1);
  CHECK(foreign[0]["frames"][0]["ok"] == false);
  CHECK(foreign[0]["frames"][0]["reason"] == "malformed");
  CHECK(foreign[0]["frames"][0]["text"] == not_json);
  CHECK_FALSE(foreign[0]["frames"][0]["error"].get<std::string>().empty());
  // Sealed: unusable as a whole.
  CHECK(foreign[1]["ok"] == false);
  CHECK(foreign[1]["reason"] == "unauthenticated");
  CHECK_FALSE(foreign[1]["error"].get<std::string>().empty());
  CHECK_FALSE(foreign[1].contains("frames"));
  // An envelope with a bad sender id: a bad field, saying which.
  CHECK(foreign[2]["ok"] == true);
  REQUIRE(foreign[2]["frames"].size() == 1);
  CHECK(foreign[2]["frames"][0]["reason"] == "bad_field");
  CHECK(contains(foreign[2]["frames"][0]["error"].get<std::string>(), "id"));
  CHECK(foreign[2]["frames"][0]["text"] == bad_id);

  // Passive: the observer, on the bus the whole time, heard nothing from the monitor: no
  // presence (no heartbeat), and every frame it heard has a sender it knows by name.
  tap.unsubscribe();
  for (const auto& ev : obs.events()) {
    INFO("peer event from " << ev.peer.name << " pid " << ev.peer.pid);
    CHECK(ev.peer.pid != mon.pid());
    CHECK(ev.peer.name != "peerbus-monitor");
  }
  std::lock_guard lk(log->m);
  CHECK(log->names == std::set<std::string>{"burst-a", "burst-b", "burst-end", "mon-observer"});
  std::set<std::string> known_ids;  // ids that carried one of those names in the monitor's view
  for (const auto& e : envelopes(datagrams))
    if (e.contains("name")) known_ids.insert(e["from"].get<std::string>());
  known_ids.insert(obs.get().id().str());
  for (const auto& [type, from] : log->frames) {
    INFO(type << " frame from " << from);
    CHECK(known_ids.count(from) == 1);
    CHECK(type != "nack");  // nobody lost anything, and the monitor never asks
  }
}

TEST_CASE("monitor: sees others' NACKs and repairs exactly, reports the gaps and losses of its own "
          "hearing in plain summaries, and never asks for a repair", "[net][monitor]") {
  const auto url = private_bus_url();
  // 400 messages over 1.6 s: the publisher heartbeats more than once, so even if B misses its
  // goodbye, B knows it and expires it: either way B learns that its holes can no longer fill.
  constexpr int n = 400;

  // A: hears everything (no faults), prints every datagram.
  child mon_json = spawn_peerbus({"monitor", "--json", "--url", url});
  // B: drops 20% of what it hears, and its stdout is a pipe: plain summaries every 0.2 s.
  child mon_plain = spawn_peerbus({"monitor", "--url", url, "--interval", "0.2", "--faults",
                                   "rx=0.2,seed=3"});
  INFO(mon_json.command_line() << "\n" << mon_plain.command_line());
  REQUIRE(mon_json.wait_for_stderr("listening on", deadline_in(10s)));
  REQUIRE(mon_plain.wait_for_stderr("listening on", deadline_in(10s)));

  // The subscriber loses 20% too, and NACKs: it must still get all n, in order. Seed 8 drops
  // none of the first 15 datagrams it hears: a receiver that misses both a new sender's first
  // heartbeat and its first message starts that sender's stream at the first message it does
  // hear (as a late joiner would), and this test is about the monitor, not about that.
  child sub = spawn_peerbus({"sub", "--url", url, "--name", "lossy-sub", "--faults",
                             "rx=0.2,seed=8", "--data", "--count", std::to_string(n), "--timeout",
                             "15", "lossy.>"});
  child pub = spawn_peerbus({"pub", "--url", url, "--name", "lossy-pub", "--stats", "lossy.data",
                             R"({"x":1})", "--count", std::to_string(n), "--rate", "250",
                             "--wait-subscribers", "1", "--wait-timeout", "10"});
  INFO(pub.command_line() << "\n" << sub.command_line());
  require_exit(pub, 0, 20s);
  require_exit(sub, 0, 20s);
  CHECK(sub.lines() == std::vector<std::string>(n, R"({"x":1})"));
  // The publisher's own counters (pub --stats, the last stderr line).
  auto err = pub.stderr_text();
  auto brace = err.rfind("\n{");
  auto stats = nlohmann::json::parse(err.substr(brace == std::string::npos ? 0 : brace + 1));
  INFO("pub stats: " << stats.dump());
  REQUIRE(stats["nacks_received"].get<std::uint64_t>() > 0);
  REQUIRE(stats["repairs_sent"].get<std::uint64_t>() > 0);

  // B: the publisher's row once it has left and B has given up on what it never heard.
  std::optional<peer_row_text> row;
  const bool settled = mon_plain.wait_for_line(
      [&](const std::string& l) {
        if (l.rfind("lossy-pub ", 0) != 0) return false;
        auto r = parse_peer_row(l);
        if (!r || r->state == "up" || r->lost == 0) return false;
        row = r;
        return true;
      },
      deadline_in(15s));
  if (!settled) FAIL("no summary shows lossy-pub gone with losses: " << mon_plain.stdout_text());
  CHECK(row->seq == static_cast<std::uint64_t>(n));
  CHECK(row->gaps > 0);
  CHECK(row->lost < static_cast<std::uint64_t>(n));
  CHECK(row->nacks > 0);  // the subscriber's NACKs, seen on the wire
  // Its bus line counts the drops by reason.
  CHECK(mon_plain.find_line([](const std::string& l) {
    return l.rfind("bus  ", 0) == 0 && contains(l, "injected");
  }));
  CHECK(mon_plain.find_line([](const std::string& l) { return l.rfind("--- peerbus monitor", 0) == 0; }));

  // A: a sentinel after the publisher's goodbye, then every NACK and repair is in A's output.
  auto end = run_peerbus({"pub", "--url", url, "--name", "lossy-end", "lossy.end", "0"}, 20s);
  REQUIRE(end.code == 0);
  if (!mon_json.wait_for_line(R"("topic":"lossy.end")", deadline_in(10s)))
    FAIL("the monitor did not print the sentinel: " << describe(mon_json));
  mon_json.signal(SIGINT);
  mon_plain.signal(SIGINT);
  require_exit(mon_json, 0, 10s);
  require_exit(mon_plain, 0, 10s);

  auto envs = envelopes(parse_json_lines(mon_json.lines()));
  std::map<std::string, std::string> name_of;  // id -> name
  for (const auto& e : envs)
    if (e.contains("name")) name_of[e["from"].get<std::string>()] = e["name"].get<std::string>();
  std::uint64_t nack_ranges = 0, repairs = 0;
  std::set<std::uint64_t> heard;
  bool pub_gone = false;
  for (const auto& e : envs) {
    const auto from = name_of[e["from"].get<std::string>()];
    if (e["type"] == "bye" && from == "lossy-pub") pub_gone = true;
    if (e["type"] == "nack") {
      // Only the subscriber asks; B had holes of its own and asked for nothing.
      CHECK(from == "lossy-sub");
      CHECK(name_of[e["to"].get<std::string>()] == "lossy-pub");
      // One on its way as the publisher closed is on the wire but was never read by it.
      if (!pub_gone) nack_ranges += e["ranges"].size();
    }
    if (e["type"] == "msg" && from == "lossy-pub") {
      if (!heard.insert(e["seq"].get<std::uint64_t>()).second) ++repairs;
    }
  }
  CHECK(heard.size() == static_cast<std::size_t>(n));
  // What A saw on the wire is what the publisher counted.
  CHECK(nack_ranges == stats["nacks_received"].get<std::uint64_t>());
  CHECK(repairs == stats["repairs_sent"].get<std::uint64_t>());
}

namespace {

// tmux on $PATH, or empty.
std::string find_tmux() {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  for (;;) {
    auto colon = p.find(':', start);
    auto dir = p.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!dir.empty()) {
      auto candidate = dir + "/tmux";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    if (colon == std::string::npos) return {};
    start = colon + 1;
  }
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A private tmux server (its own -L socket, no user config); kill-server on the way out.
class tmux_server {
 public:
  explicit tmux_server(std::string tmux) : tmux_(std::move(tmux)) {
    static std::atomic<int> counter{0};
    socket_ = "peerbus-mon-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    // A session that outlives the monitors: the server exits with its last session, and a new
    // session started while it is exiting fails ("server exited unexpectedly"). `cat` waits on
    // its terminal until kill-server.
    run({"new-session", "-d", "-s", "keeper", "cat"});
    socket_path_ = run({"display-message", "-p", "-t", "keeper", "#{socket_path}"});
    while (!socket_path_.empty() && socket_path_.back() == '\n') socket_path_.pop_back();
  }
  ~tmux_server() {
    // Only this test's server, by its socket name; tmux leaves the socket file behind.
    child c({tmux_, "-L", socket_, "kill-server"});
    c.wait_exit(deadline_in(5s));
    if (socket_path_.find("/" + socket_) != std::string::npos) ::unlink(socket_path_.c_str());
  }
  tmux_server(const tmux_server&) = delete;
  tmux_server& operator=(const tmux_server&) = delete;

  // Runs `tmux -L socket args...`; returns its stdout (the test fails if it does not exit 0).
  std::string run(std::vector<std::string> args) {
    args.insert(args.begin(), {tmux_, "-f", "/dev/null", "-L", socket_});
    child c(args);
    auto code = c.wait_exit(deadline_in(10s));
    INFO(c.command_line() << "\n" << c.stderr_text());
    REQUIRE(code == 0);
    return c.stdout_text();
  }
  // The visible screen of `session`, as text (or with attributes as escape sequences).
  std::string capture(const std::string& session, bool escapes = false) {
    std::vector<std::string> args{"capture-pane", "-p", "-t", session};
    if (escapes) args.push_back("-e");
    return run(args);
  }
  // Waits until the screen satisfies `pred`; returns the last capture either way.
  template <class Pred>
  std::string wait_screen(const std::string& session, Pred pred, std::chrono::milliseconds timeout) {
    std::string screen;
    wait_until([&] { return pred(screen = capture(session)); }, timeout);
    return screen;
  }

 private:
  std::string tmux_;
  std::string socket_;
  std::string socket_path_;
};

// True when the capture (with -e) sets a foreground or background colour: SGR 30-38, 40-48,
// 90-97, 100-107 (39 and 49 only restore the default and are not colours).
bool has_colour(const std::string& captured) {
  static const std::regex sgr("\x1b\\[([0-9;]*)m");
  for (auto it = std::sregex_iterator(captured.begin(), captured.end(), sgr);
       it != std::sregex_iterator(); ++it) {
    std::stringstream params((*it)[1].str());
    for (std::string p; std::getline(params, p, ';');) {
      if (p.empty()) continue;
      int v = std::stoi(p);
      if ((v >= 30 && v <= 38) || (v >= 40 && v <= 48) || (v >= 90 && v <= 97) ||
          (v >= 100 && v <= 107))
        return true;
    }
  }
  return false;
}

// The line of `screen` that starts with `prefix`, or empty.
std::string screen_line(const std::string& screen, const std::string& prefix) {
  std::istringstream in(screen);
  for (std::string l; std::getline(in, l);)
    if (l.rfind(prefix, 0) == 0) return l;
  return {};
}

}  // namespace

TEST_CASE("monitor: the full-screen view under a terminal shows peers and topics, obeys its keys "
          "and NO_COLOR, and q or Ctrl-C restore the terminal", "[net][monitor]") {
  const auto tmux = find_tmux();
  if (tmux.empty()) {
    WARN("SKIPPED: tmux not found (scripts/deps.sh installs it); the full-screen monitor is untested");
    return;
  }
  const auto url = private_bus_url();
  const fs::path dir = fs::path(PEERBUS_BINARY_DIR) / ("monitor-screen-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct remove_dir {
    fs::path p;
    ~remove_dir() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } remove_at_end{dir};
  tmux_server server(tmux);

  // Runs the monitor in a new 160x50 session; afterwards the pane's shell writes the exit code
  // and the terminal's modes (stty -a), so the test can see that the terminal was restored.
  auto start_monitor = [&](const std::string& session, const std::string& env) {
    const auto rc = dir / (session + ".rc");
    const auto stty = dir / (session + ".stty");
    fs::remove(rc);
    fs::remove(stty);
    const std::string cmd = "env -u PEERBUS_FAULTS -u PEERBUS_URL " + env + " " +
                            shell_quote(peerbus_bin()) + " monitor --url " + shell_quote(url) +
                            "; rc=$?; stty -a > " + shell_quote(stty.string()) + "; echo $rc > " +
                            shell_quote(rc.string() + ".tmp") + "; mv " +
                            shell_quote(rc.string() + ".tmp") + " " + shell_quote(rc.string());
    server.run({"new-session", "-d", "-s", session, "-x", "160", "-y", "50", cmd});
  };
  // Waits for the monitor in `session` to exit; returns its code, and its terminal's modes.
  auto wait_monitor_exit = [&](const std::string& session, std::string& stty) {
    const auto rc = dir / (session + ".rc");
    REQUIRE(wait_until([&] { return fs::exists(rc); }, 10s));
    stty = read_file(dir / (session + ".stty"));
    return std::stoi(read_file(rc));
  };
  auto restored = [](const std::string& stty) {
    // Canonical mode and echo back on: what the shell had before ncurses took the terminal.
    std::istringstream in(stty);
    std::set<std::string> flags;
    for (std::string w; in >> w;) flags.insert(w);
    return flags.count("icanon") == 1 && flags.count("echo") == 1;
  };

  // --- In colour, with q ---------------------------------------------------------------------
  start_monitor("colour", "-u NO_COLOR");
  auto screen = server.wait_screen(
      "colour", [](const std::string& s) { return contains(s, "peerbus monitor") && contains(s, "PEERS"); },
      10s);
  INFO("screen:\n" << screen);
  REQUIRE(contains(screen, "PEERS"));

  // A small bus: two subscribers, a steady publisher, and a one-shot message on another topic.
  child sub_a = spawn_peerbus({"sub", "--url", url, "--name", "screen-sub-a", "screen.>"});
  child sub_b = spawn_peerbus({"sub", "--url", url, "--name", "screen-sub-b", "other.>"});
  child pub = spawn_peerbus({"pub", "--url", url, "--name", "screen-pub", "screen.alpha",
                             R"({"hello":"screen"})", "--count", "100000", "--rate", "40"});
  auto beta = run_peerbus({"pub", "--url", url, "--name", "beta-pub", "other.beta",
                           R"({"beta":true})", "--wait-subscribers", "1", "--wait-timeout", "10"},
                          20s);
  REQUIRE(beta.code == 0);
  const auto pid_a = std::to_string(sub_a.pid());
  const auto pid_b = std::to_string(sub_b.pid());
  const auto pid_pub = std::to_string(pub.pid());
  screen = server.wait_screen(
      "colour",
      [&](const std::string& s) {
        const auto pub_row = screen_line(s, "screen-pub ");
        return contains(screen_line(s, "screen-sub-a "), pid_a) &&
               contains(screen_line(s, "screen-sub-b "), pid_b) && contains(pub_row, pid_pub) &&
               contains(pub_row, " up ") && !contains(pub_row, "  0 B ") &&  // its byte rate shows
               contains(screen_line(s, "screen.alpha "), R"({"hello":"screen"})") &&
               contains(screen_line(s, "other.beta "), R"({"beta":true})") &&
               contains(screen_line(s, "beta-pub "), "left");
      },
      10s);
  {
    std::ofstream(fs::path(PEERBUS_BINARY_DIR) / "monitor_screen.txt") << screen;
  }
  INFO("screen:\n" << screen);
  CHECK(contains(screen, url));
  CHECK(contains(screen, "passive"));
  CHECK(contains(screen, "datagrams"));
  CHECK(contains(screen, "dropped 0: none"));
  for (const char* col : {"NAME", "ID", "PID", "HOST", "UPTIME", "MSG/S", "BYTES/S", "SEQ", "GAPS",
                          "NACKS", "REPAIRS", "LOST", "HEARD"})
    CHECK(contains(screen_line(screen, "NAME "), col));
  for (const char* col : {"TOPIC", "MSG/S", "BYTES/S", "PUBS", "LAST PAYLOAD"})
    CHECK(contains(screen_line(screen, "TOPIC "), col));
  CHECK(contains(screen_line(screen, "screen-pub "), pid_pub));
  CHECK(contains(screen_line(screen, "screen-sub-a "), pid_a));
  CHECK(contains(screen_line(screen, "screen-sub-b "), pid_b));
  CHECK(contains(screen_line(screen, "screen.alpha "), R"({"hello":"screen"})"));
  CHECK(contains(screen_line(screen, "other.beta "), R"({"beta":true})"));
  CHECK(has_colour(server.capture("colour", true)));

  // Keys: a filter, sorting, pause.
  server.run({"send-keys", "-t", "colour", "/"});
  server.run({"send-keys", "-t", "colour", "-l", "screen.>"});
  server.run({"send-keys", "-t", "colour", "Enter"});
  screen = server.wait_screen("colour", [](const std::string& s) {
    return contains(s, "filter: screen.>") && screen_line(s, "other.beta ").empty() &&
           !screen_line(s, "screen.alpha ").empty();
  }, 10s);
  CHECK(contains(screen, "filter: screen.>"));
  CHECK(screen_line(screen, "other.beta ").empty());
  server.run({"send-keys", "-t", "colour", "s"});
  screen = server.wait_screen("colour", [](const std::string& s) { return contains(s, "sort: msg/s"); }, 10s);
  CHECK(contains(screen, "sort: msg/s"));
  server.run({"send-keys", "-t", "colour", "p"});
  screen = server.wait_screen("colour", [](const std::string& s) { return contains(s, "[PAUSED]"); }, 10s);
  CHECK(contains(screen, "[PAUSED]"));

  server.run({"send-keys", "-t", "colour", "q"});
  std::string stty;
  CHECK(wait_monitor_exit("colour", stty) == 0);
  INFO("stty -a after q:\n" << stty);
  CHECK(restored(stty));

  // --- NO_COLOR, with Ctrl-C -----------------------------------------------------------------
  start_monitor("plain", "NO_COLOR=1");
  screen = server.wait_screen("plain", [&](const std::string& s) {
    return contains(screen_line(s, "screen-pub "), pid_pub) && !screen_line(s, "screen.alpha ").empty();
  }, 10s);
  INFO("NO_COLOR screen:\n" << screen);
  CHECK(contains(screen_line(screen, "screen-pub "), pid_pub));
  CHECK_FALSE(has_colour(server.capture("plain", true)));
  server.run({"send-keys", "-t", "plain", "C-c"});
  CHECK(wait_monitor_exit("plain", stty) == 0);
  INFO("stty -a after Ctrl-C:\n" << stty);
  CHECK(restored(stty));

  for (auto* c : {&sub_a, &sub_b, &pub}) c->signal(SIGTERM);
  for (auto* c : {&sub_a, &sub_b, &pub}) CHECK(c->wait_exit(deadline_in(10s)).has_value());
}

TEST_CASE("monitor: --help names every mode and option, and bad sort keys and filters are usage "
          "errors", "[net][monitor]") {
  const auto url = private_bus_url();
  auto help = run_peerbus({"monitor", "--help"}, 10s, url);
  INFO(help.out << help.err);
  CHECK(help.code == 0);
  for (const char* opt : {"--json", "--plain", "--once", "--interval", "--duration", "--count",
                          "--sort-peers", "--sort-topics", "--filter", "--no-color", "--url",
                          "NO_COLOR", "passive"})
    CHECK(contains(help.out, opt));
  for (const auto& [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"monitor", "--sort-peers", "bogus"}, "sort key"},
           {{"monitor", "--sort-topics", "bogus"}, "sort key"},
           {{"monitor", "--filter", "a..b"}, "not a topic pattern"},
           {{"monitor", "--interval", "0"}, "interval"},
       }) {
    auto r = run_peerbus(args, 10s, url);
    INFO(args[1] << ": " << r.err);
    CHECK(r.code == 2);
    CHECK(contains(r.err, says));
  }
}
