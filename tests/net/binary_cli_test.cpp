// tests/net/binary_cli_test.cpp: `peerbus pub --file/--binary` and `peerbus sub` with binary
// messages, processes on real loopback multicast: a large file byte for byte under injected
// loss, stdin bytes shown as base64 and hex, and a file over the 16 MiB limit refused.
#include "support/bus_address.hpp"
#include "support/peerbus_cli.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

using namespace peerbus::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A directory of its own for one test, removed afterwards.
struct scratch_dir {
  fs::path path;
  scratch_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("peerbus-binary-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string write_random(const fs::path& p, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  std::ofstream(p, std::ios::binary).write(s.data(), static_cast<std::streamsize>(s.size()));
  return s;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("binary cli: pub --file reaches sub --save-dir byte for byte under 10% injected loss",
          "[cli][fragments]") {
  scratch_dir d;
  const std::string url = private_bus_url();
  const std::string bytes = write_random(d.path / "in.bin", 3000000, 11);
  fs::create_directories(d.path / "out");
  child sub = spawn_peerbus({"sub", "--url", url, "--count", "1", "--timeout", "30", "--faults",
                             "rx=0.1,seed=7", "--save-dir", (d.path / "out").string(), "blob.>"});
  auto r = run_peerbus({"pub", "--url", url, "blob.file", "--file", (d.path / "in.bin").string(),
                        "--type", "application/x-test", "--wait-subscribers", "1",
                        "--wait-timeout", "10"},
                       30s);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  INFO(describe(sub));
  REQUIRE(sub.wait_exit(deadline_in(30s)) == 0);
  const auto lines = sub.lines();
  REQUIRE(lines.size() == 1);
  const auto j = nlohmann::json::parse(lines[0]);
  CHECK(j["topic"] == "blob.file");
  CHECK(j["ctype"] == "application/x-test");
  CHECK(j["size"] == 3000000);
  CHECK_FALSE(j.contains("data"));
  REQUIRE(j.contains("file"));
  CHECK(read_file(j["file"].get<std::string>()) == bytes);
}

TEST_CASE("binary cli: pub --binary reads stdin, sub shows the bytes as base64 or hex", "[cli]") {
  const std::string url = private_bus_url();
  const std::string bytes("a\0\n~1\nb\xff", 8);
  for (const std::string enc : {"base64", "hex"}) {
    INFO(enc);
    child sub = spawn_peerbus({"sub", "--url", url, "--count", "1", "--timeout", "20", "--bytes",
                               enc, "raw.>"});
    child pub = spawn_peerbus({"pub", "--url", url, "raw.t", "--binary", "--type", "text/x-odd",
                               "--wait-subscribers", "1", "--wait-timeout", "10"},
                              {}, stdin_mode::pipe);
    pub.write_stdin(bytes);
    pub.close_stdin();
    INFO(describe(pub));
    REQUIRE(pub.wait_exit(deadline_in(20s)) == 0);
    INFO(describe(sub));
    REQUIRE(sub.wait_exit(deadline_in(20s)) == 0);
    const auto lines = sub.lines();
    REQUIRE(lines.size() == 1);
    const auto j = nlohmann::json::parse(lines[0]);
    CHECK(j["ctype"] == "text/x-odd");
    CHECK(j["size"] == 8);
    CHECK(j["bytes"] == (enc == "base64" ? "YQAKfjEKYv8=" : "61000a7e310a62ff"));
  }
}

TEST_CASE("binary cli: a file one byte over 16 MiB is refused naming the limit", "[cli]") {
  scratch_dir d;
  write_random(d.path / "big.bin", (std::size_t{16} << 20) + 1, 3);
  auto r = run_peerbus({"pub", "--url", private_bus_url(), "big.t", "--file",
                        (d.path / "big.bin").string()},
                       30s);
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(contains(r.err, "max_message_size"));
  CHECK(contains(r.err, "16777217 bytes"));
}
