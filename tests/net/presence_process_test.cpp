// tests/net/presence_process_test.cpp: presence of CLI processes as other peers see it: join on
// start, "left" on SIGINT/SIGTERM, "expired" after SIGKILL, 20 processes meeting, the
// `peers` listing and watch output, and a restarted process being a new peer. An in-process
// observer (support/observer.hpp) on the same private bus records events with arrival times.
#include "support/bus_address.hpp"
#include "support/observer.hpp"
#include "support/peerbus_cli.hpp"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <csignal>
#include <limits.h>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace peerbus::test;
using namespace std::chrono_literals;
using peerbus::peer_event_kind;

namespace {

using ms = std::chrono::milliseconds;

long long since_ms(clock::time_point from, clock::time_point to) {
  return std::chrono::duration_cast<ms>(to - from).count();
}

// A `peerbus sub` that stays until signalled: no --count, no --timeout.
child long_sub(const std::string& url, const std::string& name,
               std::vector<std::string> patterns = {}) {
  std::vector<std::string> args{"sub", "--url", url, "--name", name};
  args.insert(args.end(), patterns.begin(), patterns.end());
  return spawn_peerbus(args);
}

bool is_event(const nlohmann::json& j, const std::string& kind, const std::string& id) {
  return j.value("event", "") == kind && j.contains("peer") && j["peer"].value("id", "") == id;
}

// A `peers --watch --json` line for `kind` of the peer with id `id`.
std::function<bool(const std::string&)> watch_line(std::string kind, std::string id) {
  return [kind = std::move(kind), id = std::move(id)](const std::string& line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    return !j.is_discarded() && is_event(j, kind, id);
  };
}

// Waits until a `peers --watch --json` process prints events: it prints the peers already
// live as joined when its handler is installed (bus::on_peer_event), the observer among them.
bool wait_watcher_ready(observer& obs, const child& watcher) {
  return watcher.wait_for_line(watch_line("joined", obs.get().id().str()), deadline_in(5s));
}

// Starts `n` `peers --watch --json` processes named crowd-0.. at once and returns them with the
// id each one joined with, as `obs` saw it.
std::vector<child> start_crowd(const std::string& url, observer& obs, int n,
                               std::map<long long, std::string>& id_of_pid) {
  std::vector<child> watchers;
  for (int i = 0; i < n; ++i)
    watchers.push_back(spawn_peerbus({"peers", "--url", url, "--name", "crowd-" + std::to_string(i),
                                      "--watch", "--json", "--wait", "0"}));
  for (auto& w : watchers) {
    auto ev = obs.wait_event(peer_event_kind::joined, w.pid(), 10s);
    INFO(describe(w));
    REQUIRE(ev);
    id_of_pid[w.pid()] = ev->peer.id.str();
  }
  return watchers;
}

}  // namespace

TEST_CASE("presence: a sub process is seen joined within 100 ms of its start", "[net]") {
  const auto url = private_bus_url();
  observer obs(url);
  // The bound covers fork+exec, the dynamic loader, option parsing and opening the socket; the
  // announce goes out as the bus starts (no wait for the first heartbeat tick). That takes a few
  // ms here (~5 ms release, ~30 ms ASan); 100 ms leaves room for a busy machine. The best of
  // three starts is asserted, so one start delayed by the scheduler does not fail the test,
  // while an announce held back until the first heartbeat (1 s) always would.
  long long best = LLONG_MAX;
  for (int i = 0; i < 3; ++i) {
    auto t0 = clock::now();
    child sub = long_sub(url, "joiner-" + std::to_string(i));
    auto ev = obs.wait_event(peer_event_kind::joined, sub.pid(), 5s);
    INFO(describe(sub));
    REQUIRE(ev);
    CHECK(ev->peer.name == "joiner-" + std::to_string(i));
    best = std::min(best, since_ms(t0, ev->at));
  }
  INFO("fastest spawn-to-joined: " << best << " ms");
#if defined(__SANITIZE_ADDRESS__)
  // ASan multiplies the loader's and the start-up's cost several times over and, on two busy
  // cores, has taken over 100 ms: the promise is about real builds; here it only has to be far
  // below the heartbeat period (an announce held back until the first tick takes 1 s).
  CHECK(best < 500);
#else
  CHECK(best < 100);
#endif
}

TEST_CASE("presence: SIGTERM and SIGINT make a sub say goodbye (left, not expired)", "[net]") {
  const auto url = private_bus_url();
  observer obs(url);
  for (int sig : {SIGTERM, SIGINT}) {
    INFO("signal " << sig);
    child sub = long_sub(url, "polite");
    REQUIRE(obs.wait_event(peer_event_kind::joined, sub.pid(), 5s));
    auto t0 = clock::now();
    sub.signal(sig);
    // Expiry would take 3 s (3 x 1 s heartbeats): a "left" within 1 s can only be the goodbye.
    auto ev = obs.wait_event(
        [&](const observed_event& e) { return e.peer.pid == sub.pid() && e.kind != peer_event_kind::joined; },
        3500ms);
    INFO(describe(sub));
    REQUIRE(ev);
    CHECK(ev->kind == peer_event_kind::left);
    CHECK(since_ms(t0, ev->at) < 1000);
    CHECK(sub.wait_exit(deadline_in(5s)) == 0);
  }
}

TEST_CASE("presence: a SIGKILLed sub expires after its expiry time, not before", "[net]") {
  const auto url = private_bus_url();
  observer obs(url);
  child watcher = spawn_peerbus({"peers", "--url", url, "--watch", "--json", "--wait", "0"});
  REQUIRE(wait_watcher_ready(obs, watcher));
  child sub = long_sub(url, "doomed");
  auto joined = obs.wait_event(peer_event_kind::joined, sub.pid(), 5s);
  REQUIRE(joined);
  const auto id = joined->peer.id.str();
  REQUIRE(watcher.wait_for_line(watch_line("joined", id), deadline_in(5s)));

  auto t0 = clock::now();
  sub.signal(SIGKILL);
  REQUIRE(sub.wait_exit(deadline_in(5s)) == 128 + SIGKILL);
  // Default heartbeat 1 s, 3 misses: expiry 3 s after the last heartbeat, which was at most 1 s
  // before the kill, so 2..3 s after it. Asserted: at least 1 s (no early expiry, no goodbye) and
  // at most 3.5 s (timer slack).
  auto ev = obs.wait_event(
      [&](const observed_event& e) { return e.peer.pid == sub.pid() && e.kind != peer_event_kind::joined; },
      5s);
  REQUIRE(ev);
  CHECK(ev->kind == peer_event_kind::expired);
  auto after = since_ms(t0, ev->at);
  INFO("expired " << after << " ms after SIGKILL");
  CHECK(after >= 1000);
  CHECK(after <= 3500);
  // The watcher process saw it expire too (its own clock, so allow it a little longer).
  INFO(describe(watcher));
  CHECK(watcher.wait_for_line(watch_line("expired", id), deadline_in(2s)));
}

TEST_CASE("presence: 20 processes all see each other", "[net]") {
  const auto url = private_bus_url();
  observer obs(url);
  constexpr int n = 20;
  std::map<long long, std::string> id_of_pid;
  auto watchers = start_crowd(url, obs, n, id_of_pid);
  // Distinct ids, and the observer's table holds all 20.
  std::set<std::string> ids;
  for (auto& [pid, id] : id_of_pid) ids.insert(id);
  REQUIRE(ids.size() == static_cast<std::size_t>(n));
  CHECK(obs.get().find_peers("crowd-*").size() == static_cast<std::size_t>(n));

  // A 21st process, started after them, lists them all with the right pid for each id: it heard
  // every one of them answer its announce.
  auto r = run_peerbus({"peers", "--url", url, "--json", "--wait", "1"}, 20s);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::set<std::string> listed;
  for (const auto& l : r.lines) {
    auto j = nlohmann::json::parse(l);
    if (j["name"].get<std::string>().rfind("crowd-", 0) != 0) continue;
    listed.insert(j["id"].get<std::string>());
    CHECK(id_of_pid.at(j["pid"].get<long long>()) == j["id"]);
  }
  CHECK(listed == ids);

  // Every watcher is alive and heard the 21st process come and go (it was on the bus for 1 s).
  for (auto& w : watchers) CHECK(w.running());
}

// `peers --watch` installs its handler after its bus joined; joins heard in between reach it as
// the replay of live peers (bus::on_peer_event). Before that replay, 20 started at once on 2 CPUs
// left several watchers printing only a few of the 19 joins.
TEST_CASE("presence: every peers --watch of 20 started at once prints the other 19 joining",
          "[net]") {
  const auto url = private_bus_url();
  observer obs(url);
  constexpr int n = 20;
  std::map<long long, std::string> id_of_pid;
  auto watchers = start_crowd(url, obs, n, id_of_pid);
  auto missing = [&](const child& w) {
    std::vector<std::string> out;
    for (auto& [pid, id] : id_of_pid)
      if (pid != w.pid() && !w.find_line(watch_line("joined", id))) out.push_back(id);
    return out;
  };
  // Late joiners hear early ones answer within 30 ms (welcome) or at the next heartbeat (1 s).
  wait_until(
      [&] {
        for (auto& w : watchers)
          if (!missing(w).empty()) return false;
        return true;
      },
      2500ms);
  std::size_t watchers_missing_some = 0;
  for (auto& w : watchers) {
    auto m = missing(w);
    if (m.empty()) continue;
    ++watchers_missing_some;
    std::string list;
    for (auto& id : m) list += " " + id;
    UNSCOPED_INFO(w.command_line().substr(w.command_line().find("--name")) << " printed no join for"
                                                                           << list);
  }
  CHECK(watchers_missing_some == 0);
}

TEST_CASE("presence: peers --json describes a known sub correctly", "[net]") {
  const auto url = private_bus_url();
  observer obs(url);
  const std::vector<std::string> patterns = {"alpha.beta", "gamma.*", "delta.>"};
  child sub = long_sub(url, "known-sub", patterns);
  auto joined = obs.wait_event(peer_event_kind::joined, sub.pid(), 5s);
  REQUIRE(joined);
  // Subscriptions travel in heartbeats: wait until the bus has heard all of them.
  REQUIRE(wait_until(
      [&] {
        auto p = obs.get().find_peer(joined->peer.id);
        return p && p->subscriptions.size() == patterns.size();
      },
      5s));

  auto r = run_peerbus({"peers", "--url", url, "--json", "--wait", "0.5"}, 20s);
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  std::optional<nlohmann::json> mine;
  for (const auto& l : r.lines) {
    auto j = nlohmann::json::parse(l);
    if (j["pid"] == sub.pid()) mine = j;
  }
  REQUIRE(mine);
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host);
  CHECK((*mine)["name"] == "known-sub");
  CHECK((*mine)["id"] == joined->peer.id.str());
  CHECK((*mine)["id"].get<std::string>().size() == 16);
  CHECK((*mine)["host"] == std::string(host));
  CHECK((*mine)["uptime_s"].get<double>() >= 0.0);
  CHECK((*mine)["uptime_s"].get<double>() < 60.0);
  CHECK((*mine)["subscriptions"] == patterns);
  CHECK((*mine)["subscriptions_truncated"] == false);
  // The observer does not subscribe and is listed too, with no subscriptions.
  bool saw_observer = false;
  for (const auto& l : r.lines) {
    auto j = nlohmann::json::parse(l);
    if (j["id"] == obs.get().id().str()) {
      saw_observer = true;
      CHECK(j["subscriptions"].empty());
      CHECK(j["pid"] == static_cast<long long>(::getpid()));
    }
  }
  CHECK(saw_observer);
}

TEST_CASE("presence: peers --watch --json prints join and leave lines", "[net]") {
  const auto url = private_bus_url();
  observer obs(url);
  child watcher = spawn_peerbus({"peers", "--url", url, "--watch", "--json", "--wait", "0"});
  REQUIRE(wait_watcher_ready(obs, watcher));
  child visitor = long_sub(url, "visitor", {"v.>"});
  auto joined = obs.wait_event(peer_event_kind::joined, visitor.pid(), 5s);
  REQUIRE(joined);
  const auto id = joined->peer.id.str();
  INFO(describe(watcher));
  REQUIRE(watcher.wait_for_line(watch_line("joined", id), deadline_in(5s)));
  visitor.signal(SIGTERM);
  REQUIRE(visitor.wait_exit(deadline_in(5s)) == 0);
  REQUIRE(watcher.wait_for_line(watch_line("left", id), deadline_in(1s)));

  auto line = watcher.find_line(watch_line("joined", id));
  auto j = nlohmann::json::parse(*line);
  CHECK(j["peer"]["name"] == "visitor");
  CHECK(j["peer"]["pid"] == visitor.pid());
  // Lines are in event order: the join before the leave.
  auto lines = watcher.lines();
  auto pos = [&](const std::string& kind) {
    return std::find_if(lines.begin(), lines.end(), watch_line(kind, id)) - lines.begin();
  };
  CHECK(pos("joined") < pos("left"));

  // SIGINT ends the watcher cleanly, and the observer hears its goodbye.
  watcher.signal(SIGINT);
  CHECK(watcher.wait_exit(deadline_in(5s)) == 0);
  CHECK(obs.wait_event(peer_event_kind::left, watcher.pid(), 1s));
}

TEST_CASE("presence: pub --wait-subscribers 1 started together with sub --count 1 delivers", "[net]") {
  // Both spawned back to back, pub first, nothing in between, several times over to catch a
  // race between the sub's subscription and the pub's wait.
  for (int round = 0; round < 5; ++round) {
    INFO("round " << round);
    const auto url = private_bus_url();
    child pub = spawn_peerbus({"pub", "--url", url, "race.t", "{\"round\":" + std::to_string(round) + "}",
                               "--wait-subscribers", "1", "--wait-timeout", "10"});
    child sub = spawn_peerbus({"sub", "--url", url, "--count", "1", "--timeout", "10", "race.*"});
    INFO(describe(pub) << "\n" << describe(sub));
    REQUIRE(sub.wait_exit(deadline_in(15s)) == 0);
    REQUIRE(pub.wait_exit(deadline_in(15s)) == 0);
    auto lines = sub.lines();
    REQUIRE(lines.size() == 1);
    auto j = nlohmann::json::parse(lines[0]);
    CHECK(j["data"]["round"] == round);
    CHECK(j["seq"] == 1);
  }
}

TEST_CASE("presence: a restarted process with the same name is a new peer", "[net]") {
  const auto url = private_bus_url();
  observer obs(url);
  std::string first_id;
  {
    child first = long_sub(url, "phoenix");
    auto ev = obs.wait_event(peer_event_kind::joined, first.pid(), 5s);
    REQUIRE(ev);
    first_id = ev->peer.id.str();
    first.signal(SIGTERM);
    REQUIRE(first.wait_exit(deadline_in(5s)) == 0);
    REQUIRE(obs.wait_event(peer_event_kind::left, first.pid(), 1s));
  }
  child second = long_sub(url, "phoenix");
  auto ev = obs.wait_event(peer_event_kind::joined, second.pid(), 5s);
  REQUIRE(ev);
  CHECK(ev->peer.name == "phoenix");
  CHECK(ev->peer.id.str() != first_id);
  auto now = obs.get().find_peers("phoenix");
  REQUIRE(now.size() == 1);
  CHECK(now[0].id == ev->peer.id);
}
