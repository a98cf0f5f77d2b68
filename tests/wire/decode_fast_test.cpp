// wire/decode_fast_test.cpp: the decoder's fast path for the canonical msg frame (the one every
// peerbus sender writes) gives the same envelope, and the same verdict, as the general decoder.
// A leading space is legal JSON white space that the fast path does not take, so decoding
// " " + frame exercises the general path on the same frame.
#include "wire/encode.hpp"
#include "wire/envelope.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace peerbus::detail::wire;
using peerbus::drop_reason;

namespace {

std::string canonical(std::string_view name, std::uint64_t seq, std::int64_t ts,
                      std::string_view topic, std::string_view data) {
  std::string f;
  frame_writer(f, frame_type::msg, 0xc298de776ddf61dfULL)
      .str("name", name)
      .uint("seq", seq)
      .int64("ts", ts)
      .str("topic", topic)
      .raw("data", data)
      .finish();
  return f;
}

// Decodes `frame` both ways; they must agree. Returns the fast (ordinary) verdict.
decode_result both_ways(const std::string& frame, envelope& out) {
  envelope general;
  const auto fast = decode_frame(frame, out);
  const std::string spaced = " " + frame;
  const auto slow = decode_frame(spaced, general);
  INFO(frame);
  REQUIRE(fast.ok == slow.ok);
  if (fast.ok) CHECK(same_decoding(out, general));
  else CHECK(fast.reason == slow.reason);
  return fast;
}

}  // namespace

TEST_CASE("decode fast path: the canonical msg frame decodes as the general decoder reads it",
          "[wire]") {
  const std::string f =
      canonical("peerbus-pub", 123456, 1796130238897324, "bench.x", R"({"n":1,"s":"abc"})");
  REQUIRE(f.rfind(R"({"v":1,"type":"msg","from":")", 0) == 0);  // the shape the fast path takes
  envelope e;
  REQUIRE(both_ways(f, e));
  CHECK(e.type == frame_type::msg);
  CHECK(e.from == 0xc298de776ddf61dfULL);
  CHECK(e.name == "peerbus-pub");
  CHECK(e.seq == 123456);
  CHECK(e.ts == 1796130238897324);
  CHECK(e.topic == "bench.x");
  CHECK(e.data == R"({"n":1,"s":"abc"})");
  CHECK(e.frame == f);
  CHECK_FALSE(e.has_body);
}

TEST_CASE("decode fast path: payloads of every JSON kind and negative times agree", "[wire]") {
  for (const char* data : {"1", "-2.5e3", "\"x\"", "null", "true", "[]", "{}", "[1,{\"a\":[null]}]",
                           "\"\\u00e9\\n\\\"q\\\"\"", "\"\xc3\xa9t\xc3\xa9\"", " { \"a\" : 1 } "}) {
    envelope e;
    CHECK(both_ways(canonical("n", 1, -5, "a.b", data), e));
  }
}

TEST_CASE("decode fast path: frames it must refuse get the general decoder's verdict", "[wire]") {
  const std::vector<std::string> frames = {
      canonical("n", 0, 1, "a", "1"),                      // seq 0: bad_field
      canonical(std::string(65, 'n'), 1, 1, "a", "1"),     // name too long: oversized
      canonical("n", 1, 1, std::string(256, 't'), "1"),    // topic too long: oversized
      canonical("n", 1, 1, "a..b", "1"),                   // empty segment: bad_field
      canonical("n", 1, 1, "a", "[1,"),                    // broken payload: malformed
      canonical("n", 1, 1, "a", "1") + "x",                // trailing bytes: malformed
      canonical("n", 1, 1, "a", "1") + "\n~1\nz",          // a body beside data: bad_field
      R"({"v":1,"type":"msg","from":"c298de776ddf61df","name":"n","seq":1,"ts":1,"topic":"a\"b","data":1})",
      R"({"v":1,"type":"msg","from":"c298de776ddf61df","name":"n\u0041","seq":1,"ts":1,"topic":"a","data":1})",
      R"({"v":1,"type":"msg","from":"c298de776ddf61dg","name":"n","seq":1,"ts":1,"topic":"a","data":1})",
      R"({"v":1,"type":"msg","from":"c298de776ddf61df","name":"n","seq":01,"ts":1,"topic":"a","data":1})",
      R"({"v":1,"type":"msg","from":"c298de776ddf61df","name":"n","seq":1,"ts":1,"topic":"a","data":1,"seq":2})",
      R"({"v":1,"type":"msg","from":"c298de776ddf61df","name":"n","seq":18446744073709551616,"ts":1,"topic":"a","data":1})",
  };
  for (const auto& f : frames) {
    envelope e;
    CHECK_FALSE(both_ways(f, e));
  }
}

TEST_CASE("decode fast path: other field orders and extra fields still decode, by the general path",
          "[wire]") {
  // The envelope views its frame: the frames live as long as it is read.
  const std::string reordered =
      R"({"v":1,"type":"msg","from":"c298de776ddf61df","seq":7,"name":"n","ts":1,"topic":"a","data":2})";
  const std::string extra =
      R"({"v":1,"type":"msg","from":"c298de776ddf61df","name":"n","seq":7,"ts":1,"topic":"a","data":2,"x":[1]})";
  envelope e;
  CHECK(both_ways(reordered, e));
  CHECK(e.seq == 7);
  CHECK(both_ways(extra, e));
  CHECK(e.data == "2");
}
