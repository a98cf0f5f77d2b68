// seal/key_file_test.cpp: key files: creation (0600, never overwritten by accident), the format,
// refusing files others can reach, key=auto under a temporary XDG_RUNTIME_DIR, races.
#include "seal/key_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <peerbus/error.hpp>
#include <peerbus/key_file.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace peerbus::detail::seal;
using peerbus::config_error;

namespace {

// A fresh private directory under /tmp, removed (with what the test left in it) at the end.
struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/peerbus-key-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<unsigned>(st.st_mode) & 07777u;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The message of the config_error `f` throws; fails when it throws nothing or something else.
template <class F>
std::string config_error_of(F&& f) {
  try {
    f();
  } catch (const config_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("threw something other than config_error: " << e.what());
  }
  FAIL("no error");
  return {};
}

}  // namespace

TEST_CASE("key_file: keygen writes a 0600 file of 64 hex digits that loads back", "[seal]") {
  temp_dir d;
  const std::string path = d.path + "/bus.key";
  const mode_t old_mask = ::umask(022);  // the usual one: the file must still be 0600, not 0644
  auto k = try_create_key_file(path, false);
  ::umask(old_mask);
  REQUIRE(k);
  CHECK(mode_of(path) == 0600u);
  const std::string text = read_all(path);
  REQUIRE(text.size() == 65);
  CHECK(text.back() == '\n');
  CHECK(text.find_first_not_of("0123456789abcdef") == 64);
  CHECK(load_key_file(path) == *k);
  // No temporary file is left behind.
  std::size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(d.path)) entries += !e.path().empty();
  CHECK(entries == 1);
}

TEST_CASE("key_file: an existing file is never replaced without overwrite", "[seal]") {
  temp_dir d;
  const std::string path = d.path + "/bus.key";
  auto first = try_create_key_file(path, false);
  REQUIRE(first);
  CHECK_FALSE(try_create_key_file(path, false));
  CHECK(load_key_file(path) == *first);
  // The public form says so with a value, not an exception.
  CHECK_FALSE(peerbus::create_key_file(path));
  // With overwrite: a new key, still 0600, even if the old file had become looser.
  ::chmod(path.c_str(), 0644);
  auto second = try_create_key_file(path, true);
  REQUIRE(second);
  CHECK_FALSE(*second == *first);
  CHECK(mode_of(path) == 0600u);
  CHECK(load_key_file(path) == *second);
  // The public form returns the key id, the one key_file_id reports.
  const std::string other = d.path + "/other.key";
  auto id = peerbus::create_key_file(other);
  REQUIRE(id);
  CHECK(id->size() == 8);
  CHECK(peerbus::key_file_id(other) == *id);
  CHECK(peerbus::key_file_id(path) != *id);
}

TEST_CASE("key_file: a file open to group or others is refused, naming the chmod", "[seal]") {
  temp_dir d;
  const std::string path = d.path + "/bus.key";
  REQUIRE(try_create_key_file(path, false));
  for (unsigned mode : {0644u, 0604u, 0640u, 0620u, 0602u, 0660u, 0666u, 0601u}) {
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    INFO("mode " << std::oct << mode);
    const auto msg = config_error_of([&] { load_key_file(path); });
    CHECK_THAT(msg, Catch::Contains(path));
    CHECK_THAT(msg, Catch::Contains("chmod 600 " + path));
  }
  // Tighter than 0600 is fine.
  REQUIRE(::chmod(path.c_str(), 0400) == 0);
  CHECK_NOTHROW(load_key_file(path));
}

TEST_CASE("key_file: missing, unreadable as a key, or not a regular file is refused", "[seal]") {
  temp_dir d;
  const std::string missing = d.path + "/none.key";
  auto msg = config_error_of([&] { load_key_file(missing); });
  CHECK_THAT(msg, Catch::Contains(missing));
  CHECK_THAT(msg, Catch::Contains("peerbus keygen"));

  const std::string junk = d.path + "/junk.key";
  for (std::string content : {std::string("not a key\n"), std::string(63, 'a'),
                              std::string(65, 'a'), std::string(64, 'g'), std::string()}) {
    { std::ofstream(junk) << content; }
    ::chmod(junk.c_str(), 0600);
    INFO("content <" << content << ">");
    msg = config_error_of([&] { load_key_file(junk); });
    CHECK_THAT(msg, Catch::Contains(junk));
    CHECK_THAT(msg, Catch::Contains("64 hex digits"));
  }
  msg = config_error_of([&] { load_key_file(d.path); });  // a directory
  CHECK_THAT(msg, Catch::Contains("not a regular file"));
}

TEST_CASE("key_file: a file owned by another user is refused", "[seal]") {
  if (::geteuid() != 0) {
    WARN("not root: cannot give a file to another user; skipped");
    return;
  }
  temp_dir d;
  const std::string path = d.path + "/bus.key";
  REQUIRE(try_create_key_file(path, false));
  REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);
  const auto msg = config_error_of([&] { load_key_file(path); });
  CHECK_THAT(msg, Catch::Contains(path));
  CHECK_THAT(msg, Catch::Contains("uid 65534"));
}

TEST_CASE("key_file: the text format accepts either case and surrounding white space", "[seal]") {
  const std::string hex(64, 'A');
  auto a = parse_key_text(hex);
  auto b = parse_key_text("  " + std::string(64, 'a') + "\r\n");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a == *b);
  CHECK(key_file_text(*a) == std::string(64, 'a') + "\n");
  CHECK_FALSE(parse_key_text(std::string(32, 'a') + " " + std::string(32, 'a')));
  CHECK(key_id_text(0x0003f9a1u) == "0003f9a1");
}

TEST_CASE("key_file: key=auto creates a 0600 key in a 0700 directory, then reuses it", "[seal]") {
  temp_dir d;
  auto k1 = load_auto_key(d.path.c_str());
  const std::string dir = d.path + "/peerbus", path = dir + "/bus.key";
  CHECK(auto_key_path(d.path.c_str()) == path);
  CHECK(mode_of(dir) == 0700u);
  CHECK(mode_of(path) == 0600u);
  auto k2 = load_auto_key(d.path.c_str());
  CHECK(k1 == k2);
  CHECK(load_key_file(path) == k1);
  // The directory opened up: refused, naming the chmod.
  ::chmod(dir.c_str(), 0755);
  const auto msg = config_error_of([&] { load_auto_key(d.path.c_str()); });
  CHECK_THAT(msg, Catch::Contains("chmod 700 " + dir));
}

TEST_CASE("key_file: key=auto started by many at once gives all of them one key", "[seal]") {
  for (int round = 0; round < 20; ++round) {
    temp_dir d;
    constexpr int n = 8;
    std::vector<key> keys(n);
    std::vector<std::string> errors(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i)
      threads.emplace_back([&, i] {
        try {
          keys[static_cast<std::size_t>(i)] = load_auto_key(d.path.c_str());
        } catch (const std::exception& e) {
          errors[static_cast<std::size_t>(i)] = e.what();
        }
      });
    for (auto& t : threads) t.join();
    for (int i = 0; i < n; ++i) {
      INFO("round " << round << " thread " << i << ": " << errors[static_cast<std::size_t>(i)]);
      CHECK(errors[static_cast<std::size_t>(i)].empty());
      CHECK(keys[static_cast<std::size_t>(i)] == keys[0]);
    }
    CHECK_FALSE(keys[0] == key{});
  }
}

TEST_CASE("key_file: key=auto without XDG_RUNTIME_DIR is a clear error", "[seal]") {
  for (const char* dir : {static_cast<const char*>(nullptr), ""}) {
    const auto msg = config_error_of([&] { load_auto_key(dir); });
    CHECK_THAT(msg, Catch::Contains("XDG_RUNTIME_DIR"));
    CHECK_THAT(msg, Catch::Contains("not set"));
    CHECK_THAT(msg, Catch::Contains("key=PATH"));
  }
  CHECK_THAT(config_error_of([] { load_auto_key("relative/dir"); }),
             Catch::Contains("not an absolute path"));
  // Through the spec a bus uses, with the variable really unset.
  const char* saved = std::getenv("XDG_RUNTIME_DIR");
  const std::string keep = saved ? saved : "";
  ::unsetenv("XDG_RUNTIME_DIR");
  const auto msg = config_error_of([] { load_key("auto"); });
  if (saved) ::setenv("XDG_RUNTIME_DIR", keep.c_str(), 1);
  CHECK_THAT(msg, Catch::Contains("XDG_RUNTIME_DIR"));
}
