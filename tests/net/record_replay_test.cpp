// tests/net/record_replay_test.cpp: `peerbus record` and `peerbus replay` processes on real
// loopback multicast: a recording under injected loss is complete and in order, replaying it
// gives a subscriber the same payloads byte for byte, timing follows --speed, --loop and patterns
// work, and a cut-off or corrupted file replays up to the damage and says where it stopped.
#include "support/bus_address.hpp"
#include "support/peerbus_cli.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
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

// A scratch directory under the build tree, removed afterwards.
struct scratch_dir {
  fs::path path;
  scratch_dir() {
    static std::atomic<int> counter{0};
    path = fs::path(PEERBUS_BINARY_DIR) /
           ("record-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// The text of the "data" member exactly as written: the CLI copies payloads as they travelled
// and puts "data" last, so it is everything after ,"data": up to the closing brace.
std::string raw_data(const std::string& line) {
  auto at = line.find(",\"data\":");
  REQUIRE(at != std::string::npos);
  REQUIRE(line.back() == '}');
  at += 8;
  return line.substr(at, line.size() - 1 - at);
}

// Payloads of several JSON kinds and spacings, so "the same payload" means byte for byte.
std::string payload(int i) {
  switch (i % 4) {
    case 0: return "{\"i\":" + std::to_string(i) + ",\"s\":\"x y\"}";
    case 1: return "[" + std::to_string(i) + ", true, null]";
    case 2: return "\"str " + std::to_string(i) + "\"";
    default: return "{ \"i\" : " + std::to_string(i) + " , \"nested\" : {\"a\":[1.5e3]} }";
  }
}

// A record file written by hand, in the documented format.
std::string header_line() {
  return "{\"peerbus_record\":1,\"url\":\"udpm://239.255.1.1:7000?ttl=0&iface=127.0.0.1\","
         "\"started\":1700000000000000,\"patterns\":[\">\"],\"recorder\":\"00000000000000aa\"}\n";
}
std::string message_line(std::int64_t t, const std::string& topic, std::uint64_t seq,
                         const std::string& data) {
  return "{\"t\":" + std::to_string(t) + ",\"topic\":\"" + topic +
         "\",\"from\":\"00000000000000bb\",\"name\":\"orig\",\"seq\":" + std::to_string(seq) +
         ",\"ts\":" + std::to_string(t - 50) + ",\"data\":" + data + "}\n";
}

// Publishes one sentinel message on `topic` (a new sender): it arrives after everything the
// replayer sent, since the replayer has exited, and closing lingers until no receiver still
// asks for repairs.
void sentinel(const std::string& url, const std::string& topic) {
  auto r = run_peerbus({"pub", "--url", url, "--name", "sentinel", topic, "\"sentinel\""}, 20s);
  INFO(r.err);
  REQUIRE(r.code == 0);
}

// The payloads a `sub` (full JSON lines) printed from senders named `name`, in order.
std::vector<std::string> payloads_from(const std::vector<std::string>& lines, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& l : lines) {
    auto j = nlohmann::json::parse(l);
    if (j["name"] == name) out.push_back(raw_data(l));
  }
  return out;
}

}  // namespace

TEST_CASE("record: 10000 messages under 10% injected loss are recorded complete and in order, "
          "replay gives a subscriber the same payloads and a cut-off file replays up to the cut",
          "[net][record]") {
  constexpr int n = 10000;
  scratch_dir dir;
  const auto file = dir / "bulk.jsonl";
  std::vector<std::string> sent;
  std::string input;
  for (int i = 0; i < n; ++i) {
    sent.push_back(payload(i));
    input += sent.back() + "\n";
  }

  // --- record ---------------------------------------------------------------------------------
  {
    const auto url = private_bus_url();
    child rec = spawn_peerbus({"record", "--url", url, "--name", "recorder", "-o", file.string(),
                               "--count", std::to_string(n), "rec.>"});
    // The publisher loses 10% of everything it sends (messages, repairs, adverts): the recorder
    // must NACK its way to every message. Seed 11 drops none of the first 16 sends: a receiver
    // that misses both a new sender's first heartbeat and its first message starts the stream
    // at the first message it hears, as a late joiner does, and would wait for seq 1 forever.
    child pub = spawn_peerbus({"pub", "--url", url, "--name", "rec-pub", "--faults",
                               "tx=0.1,seed=11", "--stats", "rec.data", "--wait-subscribers", "1",
                               "--wait-timeout", "10"},
                              {}, stdin_mode::pipe);
    INFO(rec.command_line() << "\n" << pub.command_line());
    pub.write_stdin(input);
    pub.close_stdin();
    require_exit(pub, 0, 30s);
    require_exit(rec, 0, 20s);
    // The loss was real, and repaired.
    const auto err = pub.stderr_text();
    const auto brace = err.rfind("\n{");  // --stats: the last line, one JSON object
    const auto stats = nlohmann::json::parse(err.substr(brace == std::string::npos ? 0 : brace + 1));
    INFO("pub stats: " << stats.dump());
    // Drops are per datagram (messages travel batched): about a tenth of what was sent.
    const auto tx_dropped = stats["dropped_tx_injected"].get<std::uint64_t>();
    CHECK(tx_dropped >= (stats["datagrams_sent"].get<std::uint64_t>() + tx_dropped) / 20);
    CHECK(stats["repairs_sent"].get<std::uint64_t>() >= tx_dropped / 2);  // some were heartbeats
    CHECK(contains(rec.stderr_text(), std::to_string(n) + " messages"));
    CHECK(contains(rec.stderr_text(), "0 lost"));
  }

  const auto text = read_file(file);
  const auto lines = split_lines(text);
  REQUIRE(text.back() == '\n');
  REQUIRE(lines.size() == static_cast<std::size_t>(n) + 1);
  {
    auto h = nlohmann::json::parse(lines[0]);
    CHECK(lines[0].rfind("{\"peerbus_record\":1,", 0) == 0);
    CHECK(h["patterns"] == nlohmann::json::array({"rec.>"}));
    CHECK(h["url"].get<std::string>().rfind("udpm://", 0) == 0);
    CHECK(h["started"].get<std::int64_t>() > 0);
  }
  std::int64_t last_t = 0;
  std::string from;
  std::size_t bad = 0;
  for (int i = 0; i < n && bad < 5; ++i) {
    const auto& l = lines[static_cast<std::size_t>(i) + 1];
    auto j = nlohmann::json::parse(l);
    const bool ok = j["topic"] == "rec.data" && j["name"] == "rec-pub" && j["seq"] == i + 1 &&
                    raw_data(l) == sent[static_cast<std::size_t>(i)] &&
                    j["t"].get<std::int64_t>() >= last_t && j["ts"].get<std::int64_t>() > 0 &&
                    (from.empty() || j["from"] == from);
    if (!ok) {
      ++bad;
      FAIL_CHECK("record line " << i + 2 << " is not message " << i + 1 << ": " << l);
    }
    last_t = j["t"].get<std::int64_t>();
    if (from.empty()) from = j["from"].get<std::string>();
  }
  CHECK(bad == 0);

  // --- replay as fast as possible -------------------------------------------------------------
  {
    const auto url = private_bus_url();
    child sub = spawn_peerbus({"sub", "--url", url, "--data", "--count", std::to_string(n),
                               "--timeout", "20", "rec.>"});
    child rep = spawn_peerbus({"replay", "--url", url, file.string(), "--fast",
                               "--wait-subscribers", "1", "--wait-timeout", "10"});
    INFO(rep.command_line() << "\n" << sub.command_line());
    require_exit(rep, 0, 30s);
    require_exit(sub, 0, 20s);
    CHECK(sub.lines() == sent);
    CHECK(contains(rep.stderr_text(), "published " + std::to_string(n) + " messages"));
  }

  // --- a file cut in the middle of a line -----------------------------------------------------
  {
    constexpr std::size_t kept = 5000;  // complete message lines before the cut
    std::size_t cut_line_start = 0;
    for (std::size_t i = 0; i < kept + 1; ++i) cut_line_start += lines[i].size() + 1;
    const std::size_t cut_at = cut_line_start + lines[kept + 1].size() / 2;
    const auto cut = dir / "cut.jsonl";
    write_file(cut, text.substr(0, cut_at));

    const auto url = private_bus_url();
    child sub = spawn_peerbus({"sub", "--url", url, "--count", std::to_string(kept + 1),
                               "--timeout", "20", "rec.>"});
    child rep = spawn_peerbus({"replay", "--url", url, "--name", "replayer", cut.string(),
                               "--fast", "--wait-subscribers", "1", "--wait-timeout", "10"});
    INFO(rep.command_line() << "\n" << sub.command_line());
    require_exit(rep, 1, 30s);
    const auto err = rep.stderr_text();
    // 1-based line number of the damaged line, the byte offset where it starts, and why.
    CHECK(contains(err, "stopped at line " + std::to_string(kept + 2) + " (byte offset " +
                            std::to_string(cut_line_start) + ")"));
    CHECK(contains(err, "cut off"));
    CHECK(contains(err, "published " + std::to_string(kept) + " message(s) before it"));
    sentinel(url, "rec.data");
    require_exit(sub, 0, 20s);
    const auto got = payloads_from(sub.lines(), "replayer");
    CHECK(got == std::vector<std::string>(sent.begin(), sent.begin() + kept));
    CHECK(payloads_from(sub.lines(), "sentinel") == std::vector<std::string>{"\"sentinel\""});
  }
}

TEST_CASE("replay: keeps the recorded timing scaled by --speed, filters by pattern, loops, and "
          "stops at a corrupted line saying where", "[net][record]") {
  scratch_dir dir;
  const std::int64_t t0 = 1700000000000000;
  // 200 ms apart; a loss line and a line of an unknown kind are skipped; skip.* is filtered out.
  std::string good = header_line();
  good += message_line(t0, "keep.a", 1, "{\"k\":1}");
  good += message_line(t0 + 100000, "skip.b", 2, "{\"s\":2}");
  good += "{\"t\":" + std::to_string(t0 + 150000) +
          ",\"lost\":2,\"from\":\"00000000000000bb\",\"name\":\"orig\",\"first\":3,\"last\":4}\n";
  good += message_line(t0 + 200000, "keep.a", 5, "[ 2 ,3 ]");
  good += "{\"future_kind\":true}\n";
  good += message_line(t0 + 400000, "keep.c", 6, "\"three\"");
  const auto file = dir / "timed.jsonl";
  write_file(file, good);

  SECTION("--speed 2 halves the gaps; a pattern replays only its topics") {
    const auto url = private_bus_url();
    child sub = spawn_peerbus({"sub", "--url", url, "--count", "3", "--timeout", "20", ">"});
    child rep = spawn_peerbus({"replay", "--url", url, file.string(), "keep.>", "--speed", "2",
                               "--wait-subscribers", "1", "--wait-timeout", "10"});
    INFO(rep.command_line() << "\n" << sub.command_line());
    require_exit(rep, 0, 20s);
    require_exit(sub, 0, 20s);
    auto lines = sub.lines();
    REQUIRE(lines.size() == 3);
    std::vector<std::string> data;
    std::vector<std::int64_t> ts;
    for (const auto& l : lines) {
      data.push_back(raw_data(l));
      ts.push_back(nlohmann::json::parse(l)["ts"].get<std::int64_t>());
    }
    CHECK(data == std::vector<std::string>{"{\"k\":1}", "[ 2 ,3 ]", "\"three\""});
    CHECK(nlohmann::json::parse(lines[2])["topic"] == "keep.c");
    // Publish times (the replayer's clock) never run ahead of the recording's offsets / 2; a
    // little slack for the first message's own delay after the schedule started.
    constexpr std::int64_t slack = 20000;
    CHECK(ts[1] - ts[0] >= 100000 - slack);
    CHECK(ts[2] - ts[0] >= 200000 - slack);
    CHECK(contains(rep.stderr_text(), "1 not matching skipped"));
  }

  SECTION("--loop starts again at the end until interrupted") {
    const auto url = private_bus_url();
    child sub = spawn_peerbus({"sub", "--url", url, "--data", "--count", "9", "--timeout", "20",
                               "keep.>"});
    child rep = spawn_peerbus({"replay", "--url", url, file.string(), "keep.>", "--loop",
                               "--speed", "4", "--wait-subscribers", "1", "--wait-timeout", "10"});
    INFO(rep.command_line() << "\n" << sub.command_line());
    require_exit(sub, 0, 20s);
    rep.signal(SIGINT);
    require_exit(rep, 0, 10s);
    const std::vector<std::string> pass = {"{\"k\":1}", "[ 2 ,3 ]", "\"three\""};
    std::vector<std::string> want;
    for (int i = 0; i < 3; ++i) want.insert(want.end(), pass.begin(), pass.end());
    CHECK(sub.lines() == want);
  }

  SECTION("a corrupted line in the middle stops the replay there, exit 1") {
    std::string damaged = header_line();
    damaged += message_line(t0, "keep.a", 1, "1");
    damaged += message_line(t0 + 1, "keep.a", 2, "2");
    damaged += message_line(t0 + 2, "keep.a", 3, "3");
    const auto bad_offset = damaged.size();
    damaged += "{\"t\":17000000,\"topic\":\"keep.a\",\"da\x01ta\": garbage}\n";
    damaged += message_line(t0 + 3, "keep.a", 4, "4");
    const auto bad = dir / "corrupt.jsonl";
    write_file(bad, damaged);

    const auto url = private_bus_url();
    child sub = spawn_peerbus({"sub", "--url", url, "--count", "4", "--timeout", "20", "keep.>"});
    child rep = spawn_peerbus({"replay", "--url", url, "--name", "replayer", bad.string(), "--fast",
                               "--wait-subscribers", "1", "--wait-timeout", "10"});
    INFO(rep.command_line() << "\n" << sub.command_line());
    require_exit(rep, 1, 20s);
    const auto err = rep.stderr_text();
    CHECK(contains(err, "stopped at line 5 (byte offset " + std::to_string(bad_offset) + ")"));
    CHECK(contains(err, "not JSON"));
    CHECK(contains(err, "published 3 message(s) before it"));
    sentinel(url, "keep.end");
    require_exit(sub, 0, 20s);
    CHECK(payloads_from(sub.lines(), "replayer") == std::vector<std::string>{"1", "2", "3"});
  }

  SECTION("not a record file, an empty file, and a missing file are refused clearly") {
    const auto url = private_bus_url();
    const auto not_record = dir / "other.json";
    write_file(not_record, "{\"hello\":1}\n");
    const auto empty = dir / "empty.jsonl";
    write_file(empty, "");
    auto r = run_peerbus({"replay", "--url", url, not_record.string(), "--fast"}, 20s);
    INFO(r.err);
    CHECK(r.code == 1);
    CHECK(contains(r.err, "not a peerbus record file"));
    r = run_peerbus({"replay", "--url", url, empty.string(), "--fast"}, 20s);
    INFO(r.err);
    CHECK(r.code == 1);
    CHECK(contains(r.err, "empty file"));
    r = run_peerbus({"replay", "--url", url, (dir / "missing.jsonl").string()}, 20s);
    INFO(r.err);
    CHECK(r.code == 1);
    CHECK(contains(r.err, "cannot open"));
  }
}

TEST_CASE("record, replay: --help says what each option does and bad arguments are usage errors",
          "[net][record]") {
  const auto url = private_bus_url();
  struct help_case {
    std::string cmd;
    std::vector<std::string> mentions;
  };
  for (const auto& [cmd, mentions] : std::vector<help_case>{
           {"record", {"--output", "--count", "--duration", "--quiet", "pattern", "--url"}},
           {"replay", {"--speed", "--fast", "--loop", "--wait-subscribers", "pattern", "damage"}},
       }) {
    auto r = run_peerbus({cmd, "--help"}, 10s, url);
    INFO(cmd << ": " << r.out << r.err);
    CHECK(r.code == 0);
    for (const auto& m : mentions) CHECK(contains(r.out, m));
  }
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"record"},                                   // no -o
           {"record", "-o", "/dev/null", "a..b"},        // bad pattern
           {"record", "-o", "/dev/null", "--count", "0"},
           {"replay"},                                   // no file
           {"replay", "f.jsonl", "--speed", "-1"},
           {"replay", "f.jsonl", "a..b"},
           {"replay", "-", "--loop"},                    // nothing to start again from
       }) {
    auto r = run_peerbus(args, 10s, url);
    INFO(args.size() << " args, " << args.back() << ": " << r.err);
    CHECK(r.code == 2);
    CHECK_FALSE(r.err.empty());
  }
}
