// wire/encode_test.cpp: frame_writer output decodes back to what was written, for every frame
// type; escaping of free text; hex ids; the name and method grammars.
#include "wire/encode.hpp"
#include "wire/envelope.hpp"
#include "wire/json_scan.hpp"

#include <peerbus/peer.hpp>

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <cctype>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using namespace peerbus::detail::wire;

namespace {

constexpr std::uint64_t alice = 0x0123456789abcdefULL;
constexpr std::uint64_t bob = 0xfedcba9876543210ULL;

// Decodes the single frame in `buf`, requiring success.
envelope decoded(const std::string& buf) {
  INFO("frame: " << buf);
  envelope e;
  auto r = decode_frame(buf, e);
  INFO("detail: " << r.detail);
  REQUIRE(r.ok);
  return e;
}

}  // namespace

TEST_CASE("frame_writer: msg round trip", "[wire]") {
  std::string buf;
  const std::string data = R"({"path":"/tmp/a.txt","list":[1,2.5,null,"x"]})";
  const std::size_t n = frame_writer(buf, frame_type::msg, alice)
                            .str("name", "editor")
                            .uint("seq", 1)
                            .int64("ts", 1700000000123456)
                            .str("topic", "file.saved")
                            .raw("data", data)
                            .finish();
  CHECK(n == buf.size());
  CHECK(buf.rfind("{\"v\":1,\"type\":\"msg\",\"from\":\"0123456789abcdef\"", 0) == 0);
  CHECK(nlohmann::json::accept(buf));
  const envelope e = decoded(buf);
  CHECK(e.type == frame_type::msg);
  CHECK(e.from == alice);
  CHECK(e.name == "editor");
  CHECK(e.seq == 1);
  CHECK(e.ts == 1700000000123456);
  CHECK(e.topic == "file.saved");
  CHECK(e.data == data);  // written and read back byte for byte
}

TEST_CASE("write_msg: the same bytes as frame_writer, within msg_bound", "[wire]") {
  // The send path writes msg frames with write_msg; receivers' fast path (decode_canonical_msg)
  // and every other implementation read them as frame_writer's: they must not differ by a byte.
  std::mt19937_64 rng(7);
  const std::vector<std::string> names{"a", "editor", "build-server_2.x"};
  const std::vector<std::string> topics{"t", "file.saved", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p"};
  const std::vector<std::string> datas{"0", "{}", R"({"path":"/tmp/a.txt","n":[1,2.5,null]})",
                                       std::string(5000, ' ') + "[]"};
  const std::vector<std::uint64_t> seqs{1, 9, 10, 1234567, UINT64_MAX};
  const std::vector<std::int64_t> tss{0, -1, 1700000000123456, INT64_MIN, INT64_MAX};
  for (const auto& name : names)
    for (const auto& topic : topics)
      for (const auto& data : datas)
        for (auto seq : seqs)
          for (auto ts : tss) {
            const std::uint64_t from = rng();
            std::string expected;
            frame_writer(expected, frame_type::msg, from)
                .str("name", name)
                .uint("seq", seq)
                .int64("ts", ts)
                .str("topic", topic)
                .raw("data", data)
                .finish();
            const std::string head = msg_head(from, name);
            const std::size_t bound = msg_bound(head.size(), topic.size(), data.size());
            std::string got(bound, '\0');
            const std::size_t n = write_msg(got.data(), head, seq, ts, topic, data);
            REQUIRE(n <= bound);
            got.resize(n);
            REQUIRE(got == expected);
          }
}

TEST_CASE("frame_writer: hb round trip", "[wire]") {
  std::string buf;
  frame_writer(buf, frame_type::hb, alice)
      .str("name", "builder")
      .uint("seq", 42)
      .uint("lo", 3)
      .text("host", "box-1.local")
      .int64("pid", 4242)
      .int64("start", 1699999999000000)
      .uint("ivl", 1000)
      .raw("subs", R"(["file.*","build.>"])")
      .boolean("trunc", true)
      .int64("ts", -1)
      .finish();
  const envelope e = decoded(buf);
  CHECK(e.type == frame_type::hb);
  CHECK(e.from == alice);
  CHECK(e.name == "builder");
  CHECK(e.seq == 42);
  CHECK(e.lo == 3);
  CHECK(e.host == "box-1.local");
  CHECK_FALSE(e.host_escaped);
  CHECK(e.pid == 4242);
  CHECK(e.start == 1699999999000000);
  CHECK(e.ivl == 1000);
  CHECK(e.subs == R"(["file.*","build.>"])");
  CHECK(e.trunc);
  CHECK(e.ts == -1);

  buf.clear();
  frame_writer(buf, frame_type::hb, alice).str("name", "b").uint("seq", 0).boolean("trunc", false).finish();
  CHECK_FALSE(decoded(buf).trunc);
}

TEST_CASE("frame_writer: bye, adv and nack round trip", "[wire]") {
  std::string buf;
  frame_writer(buf, frame_type::bye, bob).str("name", "server").uint("seq", 9).finish();
  envelope e = decoded(buf);
  CHECK(e.type == frame_type::bye);
  CHECK(e.from == bob);
  CHECK(e.name == "server");
  CHECK(e.seq == 9);

  buf.clear();
  frame_writer(buf, frame_type::adv, bob).uint("seq", 100).uint("lo", 50).finish();
  e = decoded(buf);
  CHECK(e.type == frame_type::adv);
  CHECK(e.from == bob);
  CHECK(e.seq == 100);
  CHECK(e.lo == 50);

  buf.clear();
  frame_writer(buf, frame_type::nack, alice)
      .id("to", bob)
      .raw("ranges", "[[1,3],[7,7],[18446744073709551615,18446744073709551615]]")
      .finish();
  e = decoded(buf);
  CHECK(e.type == frame_type::nack);
  CHECK(e.from == alice);
  CHECK(e.to == bob);
  REQUIRE(e.range_count == 3);
  CHECK(e.ranges[0].first == 1);
  CHECK(e.ranges[0].last == 3);
  CHECK(e.ranges[1].first == 7);
  CHECK(e.ranges[1].last == 7);
  CHECK(e.ranges[2].first == UINT64_MAX);
  CHECK(e.ranges[2].last == UINT64_MAX);
}

TEST_CASE("frame_writer: call and reply round trip", "[wire]") {
  std::string buf;
  frame_writer(buf, frame_type::call, alice)
      .str("name", "cli")
      .uint("seq", 2)
      .int64("ts", 5)
      .id("to", bob)
      .str("method", "files/open:v2")
      .uint("cid", UINT64_MAX)
      .raw("data", R"(["a.txt"])")
      .finish();
  envelope e = decoded(buf);
  CHECK(e.type == frame_type::call);
  CHECK(e.from == alice);
  CHECK(e.name == "cli");
  CHECK(e.seq == 2);
  CHECK(e.ts == 5);
  CHECK(e.to == bob);
  CHECK(e.method == "files/open:v2");
  CHECK(e.cid == UINT64_MAX);
  CHECK(e.data == R"(["a.txt"])");

  buf.clear();
  frame_writer(buf, frame_type::reply, bob)
      .str("name", "server")
      .uint("seq", 3)
      .id("to", alice)
      .uint("cid", 77)
      .raw("data", "true")
      .finish();
  e = decoded(buf);
  CHECK(e.type == frame_type::reply);
  CHECK(e.to == alice);
  CHECK(e.cid == 77);
  CHECK(e.data == "true");
  CHECK(e.error.empty());

  // An error reply: the caller builds the error object, escaping its free-text message.
  std::string error = "{\"code\":500,\"message\":";
  json_escape_append(error, "boom: \"disk\" full\n");
  error += "}";
  buf.clear();
  frame_writer(buf, frame_type::reply, bob)
      .uint("seq", 4)
      .id("to", alice)
      .uint("cid", 78)
      .raw("error", error)
      .finish();
  e = decoded(buf);
  CHECK(e.error == error);
  CHECK(e.data.empty());
  auto parsed = nlohmann::json::parse(e.error);
  CHECK(parsed["code"] == 500);
  CHECK(parsed["message"] == "boom: \"disk\" full\n");
}

TEST_CASE("frame_writer: integer extremes", "[wire]") {
  std::string buf;
  frame_writer(buf, frame_type::hb, UINT64_MAX)
      .str("name", "x")
      .uint("seq", UINT64_MAX)
      .uint("lo", 0)
      .int64("pid", INT64_MIN)
      .int64("start", INT64_MAX)
      .int64("ts", 0)
      .uint("ivl", 0)
      .finish();
  const envelope e = decoded(buf);
  CHECK(e.from == UINT64_MAX);
  CHECK(e.seq == UINT64_MAX);
  CHECK(e.lo == 0);
  CHECK(e.pid == INT64_MIN);
  CHECK(e.start == INT64_MAX);
  CHECK(e.ts == 0);
  CHECK(e.ivl == 0);

  buf.clear();
  frame_writer(buf, frame_type::bye, 0).finish();
  CHECK(buf == R"({"v":1,"type":"bye","from":"0000000000000000"})");
  CHECK(decoded(buf).from == 0);
}

TEST_CASE("frame_writer: appends to a buffer and reports this frame's size", "[wire]") {
  std::string buf = "leftover";
  buf.clear();
  const std::size_t a = frame_writer(buf, frame_type::adv, alice).uint("seq", 1).finish();
  buf += '\n';
  const std::size_t before = buf.size();
  const std::size_t b = frame_writer(buf, frame_type::adv, bob).uint("seq", 2).finish();
  CHECK(a == before - 1);
  CHECK(b == buf.size() - before);

  // Packed frames (as repairs are) split and decode one by one.
  std::vector<envelope> frames;
  auto r = for_each_frame(buf, [&](std::string_view f) {
    envelope e;
    REQUIRE(decode_frame(f, e));
    frames.push_back(e);
  });
  REQUIRE(r);
  REQUIRE(frames.size() == 2);
  CHECK(frames[0].from == alice);
  CHECK(frames[0].seq == 1);
  CHECK(frames[1].from == bob);
  CHECK(frames[1].seq == 2);
}

TEST_CASE("frame_writer: free text is escaped and reads back unchanged", "[wire]") {
  const std::vector<std::string> texts = {
      "plain",
      "quote\" and backslash\\",
      "new\nline and\r\ncrlf",
      "tab\there",
      std::string("nul\0byte", 8),
      "\x01\x02\x1f\x7f",
      "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
      "}\n{\"v\":1,\"type\":\"bye\",\"from\":\"0000000000000000\"}",  // a frame injection try
      "\\u0041 is not an escape here",
      std::string(120, '"'),  // 240 bytes once escaped: size limits count the wire form
  };
  for (const auto& t : texts) {
    INFO("text: " << t);
    std::string buf;
    frame_writer(buf, frame_type::hb, alice)
        .str("name", "n")
        .uint("seq", 0)
        .text("host", t)
        .finish();
    // One frame, whatever the text: no raw newline or control character survives.
    CHECK(buf.find('\n') == std::string::npos);
    for (char c : buf) CHECK(static_cast<unsigned char>(c) >= 0x20);
    std::size_t frames = 0;
    REQUIRE(for_each_frame(buf, [&](std::string_view) { ++frames; }));
    CHECK(frames == 1);
    const envelope e = decoded(buf);
    const std::string host = e.host_escaped ? json_unescape(e.host) : std::string(e.host);
    CHECK(host == t);
    // Flagged exactly when something needed escaping: a quote, a backslash, a control byte.
    bool needs_escape = false;
    for (char c : t) needs_escape |= c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
    CHECK(e.host_escaped == needs_escape);
    CHECK(nlohmann::json::parse(buf)["host"] == t);
  }
}

TEST_CASE("frame_writer: free text with ill-formed UTF-8 still makes a decodable frame",
          "[wire]") {
  // A host name or an error message is whatever bytes the OS or the user gave; a frame that
  // every receiver drops would make the sender invisible.
  for (const std::string& t : {std::string("\xFF"), std::string("box\xC3"),
                               std::string("\xED\xA0\x80"), std::string("a\x80" "b")}) {
    std::string buf;
    frame_writer(buf, frame_type::hb, alice).str("name", "n").uint("seq", 0).text("host", t).finish();
    const envelope e = decoded(buf);
    const std::string host = json_unescape(e.host);
    CHECK(host.find("\xEF\xBF\xBD") != std::string::npos);  // U+FFFD marks the bad bytes
    CHECK(nlohmann::json::accept(buf));
  }
}

TEST_CASE("hex ids: format_hex_id and parse_hex_id", "[wire]") {
  std::mt19937_64 rng(42);
  std::vector<std::uint64_t> ids = {0, 1, 0xf, 0x10, 0xdeadbeef, alice, bob, UINT64_MAX,
                                    UINT64_MAX - 1, 1ULL << 63};
  for (int i = 0; i < 1000; ++i) ids.push_back(rng());
  for (auto id : ids) {
    char buf[16];
    format_hex_id(id, buf);
    const std::string text(buf, 16);
    INFO(text);
    CHECK(text.find_first_not_of("0123456789abcdef") == std::string::npos);  // lowercase
    std::uint64_t back = 0;
    REQUIRE(parse_hex_id(text, back));
    CHECK(back == id);
    // Upper case parses to the same id.
    std::string upper = text;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    REQUIRE(parse_hex_id(upper, back));
    CHECK(back == id);
    // The public form is the same text.
    CHECK(peerbus::peer_id{id}.str() == text);
    REQUIRE(peerbus::peer_id::parse(text));
    CHECK(peerbus::peer_id::parse(text)->value == id);
  }
  {
    char buf[16];
    format_hex_id(0x0123456789abcdefULL, buf);
    CHECK(std::string(buf, 16) == "0123456789abcdef");
    format_hex_id(0, buf);
    CHECK(std::string(buf, 16) == "0000000000000000");
  }
  for (const char* bad : {"", "0", "0123456789abcde", "0123456789abcdef0", "0123456789abcdeg",
                          "0x23456789abcdef", " 123456789abcdef", "0123456789abcde ",
                          "-123456789abcdef", "+123456789abcdef", "0123456789abcd\xC3\xA9"}) {
    INFO("'" << bad << "'");
    std::uint64_t out = 12345;
    CHECK_FALSE(parse_hex_id(bad, out));
    CHECK(out == 12345);  // untouched on failure
    CHECK_FALSE(peerbus::peer_id::parse(bad));
  }
}

TEST_CASE("valid_name and valid_method", "[wire]") {
  for (const std::string& n : {std::string("a"), std::string("editor"), std::string("my-app_2.0"),
                               std::string("A.B-C_D"), std::string(".hidden"), std::string("-"),
                               std::string(max_name, 'n')}) {
    INFO("'" << n << "'");
    CHECK(valid_name(n));
    CHECK(valid_method(n));  // every name is a method too
  }
  for (const std::string& n :
       {std::string(""), std::string(max_name + 1, 'n'), std::string("a b"), std::string("a/b"),
        std::string("a:b"), std::string("caf\xC3\xA9"), std::string("a\"b"), std::string("a\\b"),
        std::string("a*b"), std::string("tab\t"), std::string("nul\0", 4), std::string("a@b")}) {
    INFO("'" << n << "'");
    CHECK_FALSE(valid_name(n));
  }
  for (const std::string& m : {std::string("files/open"), std::string("svc:v2"),
                               std::string("a/b:c.d-e_f"), std::string(max_method, 'm'),
                               std::string("/"), std::string(":")}) {
    INFO("'" << m << "'");
    CHECK(valid_method(m));
  }
  for (const std::string& m :
       {std::string(""), std::string(max_method + 1, 'm'), std::string("a b"),
        std::string("a\"b"), std::string("a\\b"), std::string("caf\xC3\xA9"),
        std::string("a?b"), std::string("a\nb")}) {
    INFO("'" << m << "'");
    CHECK_FALSE(valid_method(m));
  }
  // A valid name or method is written unescaped and decodes as such.
  std::string buf;
  frame_writer(buf, frame_type::call, alice)
      .str("name", std::string(max_name, 'n'))
      .uint("seq", 1)
      .id("to", bob)
      .str("method", std::string(max_method, 'm'))
      .uint("cid", 1)
      .raw("data", "null")
      .finish();
  const envelope e = decoded(buf);
  CHECK(e.name == std::string(max_name, 'n'));
  CHECK(e.method == std::string(max_method, 'm'));
}

TEST_CASE("frame type names", "[wire]") {
  CHECK(std::string(to_string(frame_type::msg)) == "msg");
  CHECK(std::string(to_string(frame_type::hb)) == "hb");
  CHECK(std::string(to_string(frame_type::bye)) == "bye");
  CHECK(std::string(to_string(frame_type::nack)) == "nack");
  CHECK(std::string(to_string(frame_type::adv)) == "adv");
  CHECK(std::string(to_string(frame_type::call)) == "call");
  CHECK(std::string(to_string(frame_type::reply)) == "reply");
  CHECK(is_sequenced(frame_type::msg));
  CHECK(is_sequenced(frame_type::call));
  CHECK(is_sequenced(frame_type::reply));
  CHECK_FALSE(is_sequenced(frame_type::hb));
  CHECK_FALSE(is_sequenced(frame_type::bye));
  CHECK_FALSE(is_sequenced(frame_type::nack));
  CHECK_FALSE(is_sequenced(frame_type::adv));
}
