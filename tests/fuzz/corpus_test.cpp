// fuzz/corpus_test.cpp: the fuzz seed corpus holds valid datagrams, one of each frame type.
//
// libFuzzer mutates its seeds: seeds the decoder refuses would keep it in the shallow error paths,
// so a seed that stops decoding (after a wire change) must fail here, not rot silently.
#include "wire/envelope.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

using namespace peerbus::detail::wire;

TEST_CASE("fuzz corpus: every seed decodes and every frame type is seeded", "[wire][fuzz]") {
  const std::filesystem::path dir = std::filesystem::path(PEERBUS_SOURCE_DIR) / "fuzz/corpus/datagram";
  REQUIRE(std::filesystem::is_directory(dir));
  std::set<frame_type> seen;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    INFO("seed " << f.path().filename().string());
    std::ifstream in(f.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t frames = 0;
    auto r = for_each_frame(bytes, [&](std::string_view frame) {
      envelope e;
      auto d = decode_frame(frame, e);
      INFO("frame " << std::string(frame) << ": " << d.detail);
      CHECK(d.ok);
      if (d) seen.insert(e.type);
      ++frames;
    });
    CHECK(r.ok);
    CHECK(frames > 0);
  }
  CHECK(seen.size() == 7);  // msg, hb, bye, nack, adv, call, reply
}
