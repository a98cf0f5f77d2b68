// wire/body_test.cpp: frames with a body ("~N" and N raw bytes after the JSON text): splitting
// datagrams, decoding, fragments' fields, and every way a body line can be broken.
#include "wire/encode.hpp"
#include "wire/envelope.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using namespace peerbus::detail::wire;
using peerbus::drop_reason;

namespace {

constexpr std::uint64_t alice = 0x0123456789abcdefULL;

std::string binary_msg(std::string_view body, std::uint64_t seq = 1) {
  std::string f;
  frame_writer(f, frame_type::msg, alice).str("name", "a").uint("seq", seq).str("topic", "t.b")
      .str("ctype", "application/octet-stream").finish();
  append_body(f, body);
  return f;
}

std::string fragment(std::string_view body, std::uint64_t frag, std::uint64_t nfrag,
                     std::uint64_t size) {
  std::string f;
  frame_writer(f, frame_type::msg, alice).uint("seq", 5 + frag).str("topic", "t.b")
      .str("ctype", "image/png").uint("frag", frag).uint("nfrag", nfrag).uint("size", size).finish();
  append_body(f, body);
  return f;
}

struct split {
  decode_result r;
  std::vector<std::string> frames;
  std::vector<decode_result> verdicts;
  std::vector<std::string> bodies;
};

split run(std::string_view dgram) {
  split out;
  out.r = for_each_frame(dgram, [&](std::string_view f) {
    out.frames.emplace_back(f);
    envelope e;
    out.verdicts.push_back(decode_frame(f, e));
    out.bodies.emplace_back(e.body);
  });
  return out;
}

}  // namespace

TEST_CASE("body: a binary msg decodes with its bytes, line feeds and NULs included", "[wire]") {
  const std::string bytes("a\nb\0~3\n{x}\n", 12);
  const std::string f = binary_msg(bytes);
  envelope e;
  auto r = decode_frame(f, e);
  INFO(r.detail);
  REQUIRE(r);
  CHECK(e.has_body);
  CHECK(e.body == bytes);
  CHECK(e.ctype == "application/octet-stream");
  CHECK(e.data.empty());
  CHECK(e.nfrag == 0);
  CHECK(e.frame == f);
}

TEST_CASE("body: for_each_frame hands a frame and its body on as one view", "[wire]") {
  const std::string bytes("\n\n~5\n{\"v\":1}\n", 14);
  std::string hb;
  frame_writer(hb, frame_type::adv, alice).uint("seq", 3).finish();
  const std::string dgram = binary_msg(bytes) + "\n" + hb + "\n" + binary_msg("", 2);
  auto s = run(dgram);
  REQUIRE(s.r);
  REQUIRE(s.frames.size() == 3);
  CHECK(s.frames[0] == binary_msg(bytes));
  CHECK(s.bodies[0] == bytes);
  CHECK(s.frames[1] == hb);
  CHECK(s.frames[2] == binary_msg("", 2));
  for (auto& v : s.verdicts) CHECK(v.ok);
}

TEST_CASE("body: a datagram full of line feeds inside one body is not too many frames", "[wire]") {
  const std::string bytes(60000, '\n');
  auto s = run(binary_msg(bytes));
  REQUIRE(s.r);
  REQUIRE(s.frames.size() == 1);
  CHECK(s.bodies[0].size() == 60000);
}

TEST_CASE("body: broken body lines are one malformed frame, frames before them still count", "[wire]") {
  std::string adv;
  frame_writer(adv, frame_type::adv, alice).uint("seq", 3).finish();
  const std::string head = binary_msg("").substr(0, binary_msg("").find('\n'));
  for (std::string tail : {"~", "~x\nabc", "~01\na", "~5\nabc", "~\nabc", "~-1\n", "~123456\n",
                           "~99999\nabc", "~3"}) {
    INFO(tail);
    auto s = run(adv + "\n" + head + "\n" + tail);
    REQUIRE(s.r);
    REQUIRE(s.frames.size() == 2);
    CHECK(s.verdicts[0].ok);
    CHECK_FALSE(s.verdicts[1].ok);
    CHECK(s.verdicts[1].reason == drop_reason::malformed);
  }
  // A body line with no frame before it: skipped as one malformed frame, what follows is used.
  auto s = run("~3\nabc\n" + adv);
  REQUIRE(s.frames.size() == 2);
  CHECK(s.verdicts[0].reason == drop_reason::malformed);
  CHECK(s.verdicts[1].ok);
  // After an empty frame a body line has nothing to belong to either.
  s = run(adv + "\n\n~3\nabc");
  REQUIRE(s.frames.size() == 2);
  CHECK(s.verdicts[1].reason == drop_reason::malformed);
}

TEST_CASE("body: field rules of a msg with a body", "[wire]") {
  auto verdict = [](const std::string& header, std::string_view body) {
    std::string f = header;
    append_body(f, body);
    envelope e;
    return decode_frame(f, e);
  };
  const std::string base = R"({"v":1,"type":"msg","from":"0123456789abcdef","seq":1,"topic":"t")";
  CHECK(verdict(base + R"(,"ctype":"a/b"})", "x"));
  CHECK(verdict(base + R"(,"ctype":"a/b","data":1})", "x").reason == drop_reason::bad_field);
  CHECK(verdict(base + "}", "x").reason == drop_reason::bad_field);  // no ctype
  CHECK(verdict(base + R"(,"ctype":""})", "x").reason == drop_reason::bad_field);
  CHECK(verdict(base + R"(,"ctype":"a\u0041"})", "x").reason == drop_reason::bad_field);
  CHECK(verdict(base + R"(,"ctype":")" + std::string(128, 'c') + "\"}", "x").reason ==
        drop_reason::oversized);
  // Only a msg carries a body.
  CHECK(verdict(R"({"v":1,"type":"adv","from":"0123456789abcdef","seq":1,"ctype":"a/b"})", "x")
            .reason == drop_reason::bad_field);
  // A msg without a body still needs data.
  envelope e;
  CHECK(decode_frame(base + R"(,"ctype":"a/b"})", e).reason == drop_reason::bad_field);
}

TEST_CASE("body: fragments carry frag, nfrag and size, within range", "[wire]") {
  envelope e;
  const std::string frame = fragment("abc", 1, 3, 9);  // the envelope views it: keep it alive
  REQUIRE(decode_frame(frame, e));
  CHECK(e.frag == 1);
  CHECK(e.nfrag == 3);
  CHECK(e.size == 9);
  CHECK(e.ctype == "image/png");
  CHECK(e.body == "abc");
  CHECK(decode_frame(fragment("abc", 3, 3, 9), e).reason == drop_reason::bad_field);  // frag >= nfrag
  CHECK(decode_frame(fragment("abc", 0, 1, 9), e).reason == drop_reason::bad_field);  // one fragment
  CHECK(decode_frame(fragment("abc", 0, 2, 2), e).reason == drop_reason::bad_field);  // body > size
  CHECK(decode_frame(fragment("", 0, 2, 2), e).reason == drop_reason::bad_field);     // empty chunk
  CHECK(decode_frame(fragment("a", 0, 3, 2), e).reason == drop_reason::bad_field);    // nfrag > size
  // All three fields or none.
  std::string f;
  frame_writer(f, frame_type::msg, alice).uint("seq", 1).str("topic", "t").str("ctype", "a/b")
      .uint("frag", 0).uint("nfrag", 2).finish();
  append_body(f, "ab");
  CHECK(decode_frame(f, e).reason == drop_reason::bad_field);
}

TEST_CASE("body: body_overhead is what append_body adds", "[wire]") {
  for (std::size_t n : {0, 9, 10, 99, 100, 65507}) {
    std::string out;
    append_body(out, std::string(n, 'x'));
    CHECK(out.size() - n == body_overhead(n));
  }
}
