// tests/net/sealed_process_test.cpp: sealed buses with real `peerbus` processes on real multicast:
// keygen, two sealed processes talking, another key and an open process hearing nothing usable
// (and their datagrams counted as unauthenticated), and captured datagrams replayed from a raw
// socket refused as replayed. Each test on its own private bus with `&key=PATH`.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/bus_address.hpp"
#include "support/observer.hpp"
#include "support/peerbus_cli.hpp"

using namespace peerbus::test;
using namespace std::chrono_literals;

namespace {

// A private directory for key files, removed at the end.
struct key_dir {
  std::string path;
  key_dir() {
    char tmpl[] = "/tmp/peerbus-sealed-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~key_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  // Creates `name` with `peerbus keygen` and returns its path.
  std::string keygen(const std::string& name) const {
    const std::string file = path + "/" + name;
    auto r = run_peerbus({"keygen", file}, 10s);
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    return file;
  }
};

// The JSON object `--stats` printed: the last stderr line that is an object with "dropped".
// The --stats JSON a finished `peerbus pub --stats` printed to stderr.
nlohmann::json stats_of(const run_result& r) {
  std::istringstream err(r.err);
  nlohmann::json found;
  for (std::string line; std::getline(err, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("datagrams_sent")) found = j;
  }
  INFO(r.err);
  REQUIRE(found.is_object());
  return found;
}

nlohmann::json stats_of(child& c) {
  std::istringstream err(c.stderr_text());
  nlohmann::json found;
  for (std::string line; std::getline(err, line);) {
    if (line.empty() || line.front() != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("dropped")) found = j;
  }
  INFO(describe(c));
  REQUIRE(found.is_object());
  return found;
}

std::uint64_t dropped(const nlohmann::json& stats, const char* reason) {
  return stats.at("dropped").at(reason).get<std::uint64_t>();
}

sockaddr_in group_address(const std::string& url) {
  const auto gp = bus_group_port(url);
  const auto colon = gp.find(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  REQUIRE(::inet_pton(AF_INET, gp.substr(0, colon).c_str(), &a.sin_addr) == 1);
  a.sin_port = htons(static_cast<unsigned short>(std::stoi(gp.substr(colon + 1))));
  return a;
}

// A raw UDP socket joined to the bus's group on 127.0.0.1, as an eavesdropper on this machine
// would open it: it records every datagram the bus carries, byte for byte.
class capture {
 public:
  explicit capture(const std::string& url) {
    const sockaddr_in group = group_address(url);
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    int one = 1, zero = 0;
    REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    REQUIRE(::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
    REQUIRE(::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero) == 0);
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&group), sizeof group) == 0);
    ip_mreq m{};
    m.imr_multiaddr = group.sin_addr;
    REQUIRE(::inet_pton(AF_INET, "127.0.0.1", &m.imr_interface) == 1);
    REQUIRE(::setsockopt(fd_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m) == 0);
  }
  ~capture() { ::close(fd_); }
  capture(const capture&) = delete;
  capture& operator=(const capture&) = delete;

  // Reads whatever arrives until `quiet` passes without a datagram.
  void drain(std::chrono::milliseconds quiet) {
    std::vector<char> buf(65536);
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(quiet.count())) <= 0) return;
      ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n > 0) datagrams.emplace_back(buf.data(), static_cast<std::size_t>(n));
    }
  }

  std::vector<std::string> datagrams;

 private:
  int fd_ = -1;
};

// Sends datagrams to the group from a plain socket: IP_MULTICAST_IF 127.0.0.1, TTL 0, loop on.
void resend(const std::string& url, const std::vector<std::string>& datagrams) {
  const sockaddr_in group = group_address(url);
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  in_addr iface{};
  ::inet_pton(AF_INET, "127.0.0.1", &iface);
  unsigned char ttl = 0, loop = 1;
  REQUIRE(::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &iface, sizeof iface) == 0);
  REQUIRE(::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) == 0);
  REQUIRE(::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) == 0);
  for (const auto& d : datagrams) {
    CHECK(::sendto(fd, d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&group),
                   sizeof group) == static_cast<ssize_t>(d.size()));
  }
  ::close(fd);
}

// Stops a long-running `sub` and waits for it to print its counters.
void stop(child& c) {
  c.signal(SIGTERM);
  INFO(describe(c));
  REQUIRE(c.wait_exit(deadline_in(10s)) == 0);
}

}  // namespace

TEST_CASE("sealed: keygen writes a 0600 key and never overwrites one without --force", "[cli]") {
  key_dir d;
  const std::string file = d.path + "/bus.key";
  auto r = run_peerbus({"keygen", file}, 10s);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.find("written to " + file) != std::string::npos);
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  r = run_peerbus({"keygen", file}, 10s);
  CHECK(r.code == 1);
  CHECK(r.err.find("--force") != std::string::npos);
  r = run_peerbus({"keygen", file, "--force"}, 10s);
  CHECK(r.code == 0);

  // A key file others can read is refused by every command, naming the fix.
  REQUIRE(::chmod(file.c_str(), 0644) == 0);
  r = run_peerbus({"sub", "--url", private_bus_url() + "&key=" + file, "--timeout", "0.2"}, 10s);
  CHECK(r.code == 2);
  CHECK(r.err.find("chmod 600 " + file) != std::string::npos);
}

TEST_CASE("sealed: two sealed processes talk, through the URL, --key or the environment", "[net]") {
  key_dir d;
  const std::string key = d.keygen("bus.key");
  const std::string bare = private_bus_url();
  const std::string url = bare + "&key=" + key;
  constexpr int n = 200;
  child sub = spawn_peerbus({"sub", "--url", url, "--count", std::to_string(n + 2), "--timeout",
                             "20", "--stats", "sealed.>"});
  auto r =
      run_peerbus({"pub", "--url", url, "sealed.data", R"({"secret":"attack at dawn"})", "--count",
                   std::to_string(n), "--wait-subscribers", "1", "--wait-timeout", "10"},
                  30s);
  INFO(r.err);
  REQUIRE(r.code == 0);
  r = run_peerbus({"pub", "--url", bare, "--key", key, "sealed.flag", "1", "--wait-subscribers",
                   "1", "--wait-timeout", "10"},
                  30s);
  REQUIRE(r.code == 0);
  {
    child env_pub({peerbus_bin(), "pub", "--url", bare, "sealed.env", "2", "--wait-subscribers",
                   "1", "--wait-timeout", "10"},
                  {{"PEERBUS_KEY_FILE", key}, {"PEERBUS_FAULTS", ""}});
    INFO(describe(env_pub));
    REQUIRE(env_pub.wait_exit(deadline_in(30s)) == 0);
  }
  INFO(describe(sub));
  REQUIRE(sub.wait_exit(deadline_in(20s)) == 0);
  const auto lines = sub.lines();
  REQUIRE(lines.size() == n + 2);
  for (int i = 0; i < n; ++i) {
    auto m = nlohmann::json::parse(lines[static_cast<std::size_t>(i)]);
    CHECK(m["seq"] == i + 1);
    CHECK(m["data"]["secret"] == "attack at dawn");
  }
  CHECK(nlohmann::json::parse(lines[n])["topic"] == "sealed.flag");
  CHECK(nlohmann::json::parse(lines[n + 1])["topic"] == "sealed.env");
  const auto stats = stats_of(sub);
  CHECK(dropped(stats, "unauthenticated") == 0);
  CHECK(dropped(stats, "replayed") == 0);
}

TEST_CASE("sealed: a process with another key hears nothing and is not heard", "[net]") {
  key_dir d;
  const std::string key_a = d.keygen("a.key"), key_b = d.keygen("b.key");
  const std::string bare = private_bus_url();
  const std::string url_a = bare + "&key=" + key_a, url_b = bare + "&key=" + key_b;
  constexpr int n = 30;
  child sub_a = spawn_peerbus({"sub", "--url", url_a, "--stats", "t.>"});
  child sub_b = spawn_peerbus({"sub", "--url", url_b, "--stats", "t.>"});
  {
    // Both listen before either pub sends: each must hear every datagram of the other key's pub.
    observer ready_a(url_a, "ready-a"), ready_b(url_b, "ready-b");
    REQUIRE(ready_a.wait_event(peerbus::peer_event_kind::joined, sub_a.pid(), 10s));
    REQUIRE(ready_b.wait_event(peerbus::peer_event_kind::joined, sub_b.pid(), 10s));
  }
  std::map<std::string, std::uint64_t> sent;  // datagrams each pub sent (messages go batched)
  for (const auto& [url, tag] : {std::pair{url_a, "a"}, std::pair{url_b, "b"}}) {
    // Each pub waits for the one subscriber it can hear: its own key's.
    auto r = run_peerbus({"pub", "--url", url, "--name", std::string("pub-") + tag, "t.x",
                          std::string("\"") + tag + "\"", "--count", std::to_string(n),
                          "--wait-subscribers", "1", "--wait-timeout", "10", "--stats"},
                         30s);
    INFO(tag << ": " << r.err);
    REQUIRE(r.code == 0);
    sent[std::string("pub-") + tag] = stats_of(r).at("datagrams_sent").get<std::uint64_t>();
  }
  // A marker on key a after pub-b is done: once sub_a printed it, it has read everything pub-b
  // sent, goodbye included (one socket's queue is first in, first out). sub_b read all of
  // pub-a's datagrams before pub-b's messages, which it printed.
  auto mark = run_peerbus({"pub", "--url", url_a, "--name", "pub-a", "t.x", "\"mark\"",
                           "--wait-subscribers", "1", "--wait-timeout", "10"},
                          30s);
  REQUIRE(mark.code == 0);
  REQUIRE(sub_a.wait_for_lines(n + 1, deadline_in(10s)));
  REQUIRE(sub_b.wait_for_lines(n, deadline_in(10s)));
  stop(sub_a);
  stop(sub_b);
  for (auto* c : {&sub_a, &sub_b}) {
    const std::string own = c == &sub_a ? "pub-a" : "pub-b";
    const std::string other = c == &sub_a ? "pub-b" : "pub-a";
    const int expected = c == &sub_a ? n + 1 : n;
    INFO(describe(*c));
    const auto lines = c->lines();
    CHECK(lines.size() == static_cast<std::size_t>(expected));
    for (const auto& l : lines) CHECK(nlohmann::json::parse(l)["name"] == own);
    // The other key's datagrams: every one its pub sent (messages, adverts, heartbeats,
    // goodbye), and the other sub's heartbeats, all refused.
    const auto stats = stats_of(*c);
    CHECK(dropped(stats, "unauthenticated") >= sent.at(other));
    CHECK(dropped(stats, "replayed") == 0);
    CHECK(stats.at("delivered") == expected);
  }
}

TEST_CASE("sealed: an open process on the same group hears nothing usable", "[net]") {
  key_dir d;
  const std::string key = d.keygen("bus.key");
  const std::string bare = private_bus_url();
  const std::string sealed_url = bare + "&key=" + key;
  constexpr int n = 30;
  child open_sub = spawn_peerbus({"sub", "--url", bare, "--stats", ">"});
  child sealed_sub = spawn_peerbus({"sub", "--url", sealed_url, "--stats", ">"});
  // Both subs must listen before either pub sends, or one misses datagrams it is expected to
  // count: each pub waits only for the sub of its own kind. The sealed pub goes first (so the
  // sealed sub is up for the open pub's datagrams) once the open sub has been seen joining.
  {
    observer ready(bare, "ready-probe");
    REQUIRE(ready.wait_event(peerbus::peer_event_kind::joined, open_sub.pid(), 10s));
  }
  auto r = run_peerbus(
      {"pub", "--url", sealed_url, "--name", "sealed-pub", "secret.x", R"({"pin":1234})", "--count",
       std::to_string(n), "--wait-subscribers", "1", "--wait-timeout", "10", "--stats"},
      30s);
  INFO(r.err);
  REQUIRE(r.code == 0);
  const auto sealed_sent = stats_of(r).at("datagrams_sent").get<std::uint64_t>();
  r = run_peerbus({"pub", "--url", bare, "--name", "open-pub", "plain.x", "1", "--count",
                   std::to_string(n), "--wait-subscribers", "1", "--wait-timeout", "10", "--stats"},
                  30s);
  INFO(r.err);
  REQUIRE(r.code == 0);
  const auto open_sent = stats_of(r).at("datagrams_sent").get<std::uint64_t>();
  // A sealed marker after the open pub is done: once the sealed sub printed it, it has read
  // every datagram the open pub sent (its socket's queue is first in, first out).
  r = run_peerbus({"pub", "--url", sealed_url, "--name", "sealed-pub", "secret.x", R"({"mark":1})",
                   "--wait-subscribers", "1", "--wait-timeout", "10"},
                  30s);
  REQUIRE(r.code == 0);
  REQUIRE(sealed_sub.wait_for_lines(n + 1, deadline_in(10s)));
  REQUIRE(open_sub.wait_for_lines(n, deadline_in(10s)));
  // An open observer sees the open sub join, never the sealed one, whose heartbeats (answering
  // the observer's announce, as the open sub's do) it drops.
  {
    observer obs(bare);
    REQUIRE(obs.wait_event(peerbus::peer_event_kind::joined, open_sub.pid(), 5s));
    REQUIRE(wait_until(
        [&] { return obs.get().stats().drops(peerbus::drop_reason::unauthenticated) > 0; }, 5s));
    for (const auto& e : obs.events()) CHECK(e.peer.pid != sealed_sub.pid());
  }
  stop(open_sub);
  stop(sealed_sub);

  for (const auto& l : open_sub.lines()) {
    const auto j = nlohmann::json::parse(l);
    CHECK(j["name"] == "open-pub");
    CHECK_FALSE(j["data"].contains("pin"));  // the sealed payload never shows (ids and times may hold "1234")
  }
  CHECK(open_sub.lines().size() == static_cast<std::size_t>(n));
  CHECK(dropped(stats_of(open_sub), "unauthenticated") >= sealed_sent);

  for (const auto& l : sealed_sub.lines()) CHECK(nlohmann::json::parse(l)["name"] == "sealed-pub");
  CHECK(sealed_sub.lines().size() == static_cast<std::size_t>(n + 1));
  CHECK(dropped(stats_of(sealed_sub), "unauthenticated") >= open_sent);
}

TEST_CASE("sealed: captured datagrams sent again are refused and counted as replayed", "[net]") {
  key_dir d;
  const std::string key = d.keygen("bus.key");
  const std::string url = private_bus_url() + "&key=" + key;
  constexpr int n = 20;
  // n messages and the final marker; a replay delivered by mistake would take the marker's place.
  child sub = spawn_peerbus(
      {"sub", "--url", url, "--stats", "--count", std::to_string(n + 1), "--timeout", "20", "r.>"});
  observer obs(url);
  INFO(describe(sub));
  REQUIRE(obs.wait_event(peerbus::peer_event_kind::joined, sub.pid(), 5s));
  // From here on the sub hears everything the capture does.
  capture cap(url);
  auto r = run_peerbus({"pub", "--url", url, "r.x", R"({"transfer":100})", "--count",
                        std::to_string(n), "--wait-subscribers", "1", "--wait-timeout", "10",
                        "--stats"},
                       30s);
  INFO(r.err);
  REQUIRE(r.code == 0);
  REQUIRE(sub.wait_for_lines(n, deadline_in(10s)));
  cap.drain(300ms);
  // Everything on the bus while the pub ran: its heartbeats, messages, adverts and goodbye, the
  // sub's and the observer's heartbeats. Each of them is genuine and was heard by the sub,
  // except the sub's own, which it sets aside unread (own_datagrams), replayed or not.
  const auto captured = cap.datagrams;
  INFO(captured.size() << " datagrams captured");
  REQUIRE(captured.size() >= stats_of(r).at("datagrams_sent").get<std::size_t>());
  std::uint64_t sub_id = 0;
  for (const auto& e : obs.events())
    if (e.peer.pid == sub.pid()) sub_id = e.peer.id.value;
  REQUIRE(sub_id != 0);
  // The sealed header's sender id: bytes 8..15, big-endian (docs/protocol.md, section 16).
  const auto sealed_by = [](const std::string& dg) {
    std::uint64_t v = 0;
    for (std::size_t i = 8; i < 16 && i < dg.size(); ++i) v = (v << 8) | static_cast<unsigned char>(dg[i]);
    return v;
  };
  const auto sub_own = static_cast<std::uint64_t>(
      std::count_if(captured.begin(), captured.end(), [&](const auto& dg) { return sealed_by(dg) == sub_id; }));
  for (const auto& dg : captured) {
    CHECK(dg.compare(0, 4, "PBS1") == 0);
    CHECK(dg.find("transfer") == std::string::npos);
  }

  // A second sub starting now never heard them: they were sealed before it started, by more than
  // the 100 ms grace of its floor (drain() returned after 300 ms without a datagram).
  child late = spawn_peerbus({"sub", "--url", url, "--stats", "r.>"});
  REQUIRE(obs.wait_event(peerbus::peer_event_kind::joined, late.pid(), 5s));

  resend(url, captured);
  // A genuine message after the replays: once a sub printed it, it has processed them too (one
  // socket's queue is first in, first out).
  r = run_peerbus({"pub", "--url", url, "r.mark", "\"mark\"", "--wait-subscribers", "2",
                   "--wait-timeout", "10"},
                  30s);
  REQUIRE(r.code == 0);
  REQUIRE(late.wait_for_lines(1, deadline_in(10s)));
  stop(late);
  INFO(describe(late));
  REQUIRE(late.lines().size() == 1);
  CHECK(nlohmann::json::parse(late.lines()[0])["topic"] == "r.mark");
  auto stats = stats_of(late);
  CHECK(dropped(stats, "replayed") == captured.size());
  CHECK(dropped(stats, "unauthenticated") == 0);
  CHECK(stats.at("delivered") == 1);

  INFO(describe(sub));
  REQUIRE(sub.wait_exit(deadline_in(20s)) == 0);
  REQUIRE(sub.lines().size() == static_cast<std::size_t>(n + 1));  // nothing delivered twice
  CHECK(nlohmann::json::parse(sub.lines()[n])["topic"] == "r.mark");
  stats = stats_of(sub);
  CHECK(dropped(stats, "replayed") == captured.size() - sub_own);
  CHECK(stats.at("own_datagrams").get<std::uint64_t>() >= sub_own);
  CHECK(dropped(stats, "unauthenticated") == 0);
  CHECK(stats.at("delivered") == n + 1);
}

TEST_CASE("sealed: options key_file seals an in-process bus whose tap sees the opened datagrams",
          "[net]") {
  key_dir d;
  const std::string key = d.keygen("bus.key");
  const std::string url = private_bus_url();
  peerbus::options so;
  so.url = url;
  so.name = "sealed-tap";
  so.key_file = key;
  peerbus::options oo = so;
  oo.name = "open-tap";
  oo.key_file.clear();
  struct heard {
    bool ok, sealed;
    peerbus::drop_reason reason;
  };
  struct seen {
    std::mutex m;
    std::vector<heard> views;        // what the tap said of each datagram
    std::vector<std::string> texts;  // and its bytes
  } sealed_seen, open_seen;
  peerbus::bus sealed_bus(so), open_bus(oo);
  CHECK(sealed_bus.url().key == key);  // the URL a bus reports names the key it took
  CHECK(open_bus.url().key.empty());
  auto record = [](seen& s) {
    return [&s](const peerbus::datagram_view& v) {
      std::lock_guard<std::mutex> lock(s.m);
      s.views.push_back({v.ok, v.sealed, v.reason});
      s.texts.emplace_back(v.bytes);
    };
  };
  auto tap_sealed = sealed_bus.on_datagram(record(sealed_seen));
  auto tap_open = open_bus.on_datagram(record(open_seen));
  auto r = run_peerbus(
      {"pub", "--url", url + "&key=" + key, "tap.x", R"({"k":"v"})", "--wait-subscribers", "0"},
      20s);
  REQUIRE(r.code == 0);
  auto heard_msg = [](seen& s) {
    std::lock_guard<std::mutex> lock(s.m);
    for (std::size_t i = 0; i < s.views.size(); ++i)
      if (s.views[i].ok && s.texts[i].find("\"tap.x\"") != std::string::npos) return true;
    return false;
  };
  REQUIRE(wait_until([&] { return heard_msg(sealed_seen); }, 5s));
  {
    std::lock_guard<std::mutex> lock(sealed_seen.m);
    for (std::size_t i = 0; i < sealed_seen.views.size(); ++i) {
      INFO(sealed_seen.texts[i]);
      if (sealed_seen.views[i].ok) {
        CHECK(sealed_seen.views[i].sealed);
        CHECK(sealed_seen.texts[i].front() == '{');  // the plaintext, not PBS1...
      } else {                                       // the open bus's heartbeats
        CHECK_FALSE(sealed_seen.views[i].sealed);
        CHECK(sealed_seen.views[i].reason == peerbus::drop_reason::unauthenticated);
        CHECK(sealed_seen.texts[i].find("open-tap") != std::string::npos);
      }
    }
  }
  REQUIRE(wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(open_seen.m);
        for (std::size_t i = 0; i < open_seen.views.size(); ++i)
          if (open_seen.texts[i].compare(0, 4, "PBS1") == 0) return true;
        return false;
      },
      5s));
  CHECK_FALSE(heard_msg(open_seen));
  std::lock_guard<std::mutex> lock(open_seen.m);
  for (std::size_t i = 0; i < open_seen.views.size(); ++i) {
    const auto& v = open_seen.views[i];
    if (open_seen.texts[i].compare(0, 4, "PBS1") != 0) continue;  // the open bus's own
    CHECK_FALSE(v.ok);
    CHECK_FALSE(v.sealed);
    CHECK(v.reason == peerbus::drop_reason::unauthenticated);
  }
}

TEST_CASE("sealed: a message that fits an open datagram but not a sealed one goes in sealed fragments", "[cli]") {
  key_dir d;
  const std::string key = d.keygen("bus.key");
  const std::string url = private_bus_url() + "&key=" + key;
  // The msg frame: 104 bytes + name (peerbus-pub, 11) + topic (1) + seq (1 digit) + payload.
  // 65450 bytes: under 65507 (open), over 65435 (sealed): it travels as two sealed fragments.
  const std::string payload = "\"" + std::string(65450 - 117 - 2, 'a') + "\"";
  child sub = spawn_peerbus({"sub", "--url", url, "--count", "1", "--timeout", "20", "--stats",
                             "--data", "t"});
  auto r = run_peerbus({"pub", "--url", url, "t", payload, "--wait-subscribers", "1",
                        "--wait-timeout", "10"},
                       20s);
  INFO(r.err);
  CHECK(r.code == 0);
  INFO(describe(sub));
  REQUIRE(sub.wait_exit(deadline_in(20s)) == 0);
  const auto lines = sub.lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == payload);
  CHECK(contains(describe(sub), "\"reassembled\":1"));
}
