// wire/decode_test.cpp: decode_frame and for_each_frame on valid frames of every type and on every
// class of hostile or broken input, each with the drop reason the bus counts.
#include "wire/envelope.hpp"
#include "wire/json_scan.hpp"
#include "wire/limits.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace peerbus::detail::wire;
using peerbus::drop_reason;

namespace {

// ---------------------------------------------------------------------------------------------
// Frame building: a frame is a list of (key, raw JSON value) so one field can be replaced,
// removed, or given a wrong type without retyping the rest.

using field = std::pair<std::string, std::string>;
using fields = std::vector<field>;

std::string obj(const fields& fs) {
  std::string s = "{";
  for (std::size_t i = 0; i < fs.size(); ++i) {
    if (i) s += ',';
    s += '"' + fs[i].first + "\":" + fs[i].second;
  }
  return s + "}";
}

fields with(fields fs, const std::string& key, const std::string& raw) {
  for (auto& f : fs)
    if (f.first == key) {
      f.second = raw;
      return fs;
    }
  fs.emplace_back(key, raw);
  return fs;
}

fields without(fields fs, const std::string& key) {
  fields out;
  for (auto& f : fs)
    if (f.first != key) out.push_back(f);
  return out;
}

std::string q(const std::string& s) { return '"' + s + '"'; }

const std::string id_a = "0123456789abcdef";
constexpr std::uint64_t id_a_value = 0x0123456789abcdefULL;
const std::string id_b = "fedcba9876543210";
constexpr std::uint64_t id_b_value = 0xfedcba9876543210ULL;

const std::string msg_data = R"({"path":"/tmp/a.txt","n":[1,2.5,-3e2],"ok":true,"nil":null,"s":"\u00e9\n"})";

fields msg_fields() {
  return {{"v", "1"},           {"type", q("msg")},        {"from", q(id_a)},
          {"name", q("editor")}, {"seq", "7"},             {"ts", "1700000000000000"},
          {"topic", q("file.saved")}, {"data", msg_data}};
}
fields hb_fields() {
  return {{"v", "1"},           {"type", q("hb")},          {"from", q(id_a)},
          {"name", q("builder")}, {"seq", "42"},            {"lo", "3"},
          {"host", q(R"(box \"1\" \\ \u00e9)")},            {"pid", "4242"},
          {"start", "1699999999000000"}, {"ivl", "1000"},
          {"subs", R"(["file.*","build.>"])"},              {"trunc", "true"},
          {"ts", "1700000000000001"}};
}
fields bye_fields() {
  return {{"v", "1"}, {"type", q("bye")}, {"from", q(id_a)}, {"name", q("editor")}, {"seq", "9"}};
}
fields nack_fields() {
  return {{"v", "1"},
          {"type", q("nack")},
          {"from", q(id_a)},
          {"to", q("FEDCBA9876543210")},  // ids parse in either case
          {"ranges", "[[1,3],[5,5],[18446744073709551614,18446744073709551615]]"}};
}
fields adv_fields() {
  return {{"v", "1"}, {"type", q("adv")}, {"from", q(id_a)}, {"seq", "100"}, {"lo", "50"}};
}
fields call_fields() {
  return {{"v", "1"},        {"type", q("call")},          {"from", q(id_a)},
          {"name", q("cli")}, {"seq", "2"},                {"ts", "5"},
          {"to", q(id_b)},   {"method", q("files/open:v2")}, {"cid", "77"},
          {"data", R"([1,"two",null])"}};
}
fields reply_fields() {
  return {{"v", "1"},   {"type", q("reply")}, {"from", q(id_b)}, {"name", q("server")},
          {"seq", "3"}, {"ts", "6"},          {"to", q(id_a)},   {"cid", "77"},
          {"data", R"({"opened":true})"}};
}
fields reply_error_fields() {
  return with(without(reply_fields(), "data"), "error",
              R"({"code":404,"message":"no such method"})");
}

struct named_frame {
  const char* type;
  fields f;
};
std::vector<named_frame> every_type() {
  return {{"msg", msg_fields()},   {"hb", hb_fields()},     {"bye", bye_fields()},
          {"nack", nack_fields()}, {"adv", adv_fields()},   {"call", call_fields()},
          {"reply", reply_fields()}, {"reply", reply_error_fields()}};
}

// ---------------------------------------------------------------------------------------------
// Decoding helpers

// The bytes in a heap block of exactly their size, so that AddressSanitizer catches a read one
// byte past the end (a std::string keeps a terminating NUL there).
struct exact_bytes {
  std::unique_ptr<char[]> p;
  std::size_t n;
  explicit exact_bytes(std::string_view s) : p(new char[s.size() ? s.size() : 1]), n(s.size()) {
    if (n) std::memcpy(p.get(), s.data(), n);
  }
  std::string_view view() const { return {p.get(), n}; }
};

std::string printable(std::string_view s) {
  std::string out;
  for (char ch : s.substr(0, 160)) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    }
  }
  if (s.size() > 160) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

struct outcome {
  bool ok;
  std::string reason;  // "ok" or the drop reason's name
  std::string detail;
};

outcome decode(std::string_view frame) {
  exact_bytes b(frame);
  envelope e;
  auto r = decode_frame(b.view(), e);
  return {r.ok, r.ok ? "ok" : peerbus::to_string(r.reason), r.detail};
}

// The frame is refused for `reason`, with a detail a user can read (containing `detail_has`).
void check_drop(const std::string& frame, const char* reason, std::string_view detail_has = {}) {
  INFO("frame: " << printable(frame));
  auto o = decode(frame);
  CHECK_FALSE(o.ok);
  CHECK(o.reason == reason);
  CHECK_FALSE(o.detail.empty());
  if (!detail_has.empty()) CHECK_THAT(o.detail, Catch::Contains(std::string(detail_has)));
}

void check_ok(const std::string& frame) {
  INFO("frame: " << printable(frame));
  auto o = decode(frame);
  CHECK(o.reason == "ok");
  CHECK(o.detail.empty());
}

std::string nested(int levels, const std::string& open, const std::string& close,
                   const std::string& inner = "1") {
  std::string s;
  for (int i = 0; i < levels; ++i) s += open;
  s += inner;
  for (int i = 0; i < levels; ++i) s += close;
  return s;
}

// Runs for_each_frame and decodes each frame handed on.
struct split_result {
  decode_result r;
  std::vector<std::string> frames;
  std::vector<outcome> outcomes;
};
split_result split(std::string_view datagram) {
  exact_bytes b(datagram);
  split_result out;
  out.r = for_each_frame(b.view(), [&](std::string_view frame) {
    out.frames.emplace_back(frame);
    envelope e;
    auto d = decode_frame(frame, e);
    out.outcomes.push_back({d.ok, d.ok ? "ok" : peerbus::to_string(d.reason), d.detail});
  });
  return out;
}

}  // namespace

// =============================================================================================
// Valid frames

TEST_CASE("decode_frame: msg, every field", "[wire]") {
  const std::string f = obj(msg_fields());
  envelope e;
  REQUIRE(decode_frame(f, e));
  CHECK(e.type == frame_type::msg);
  CHECK(e.from == id_a_value);
  CHECK(e.name == "editor");
  CHECK(e.seq == 7);
  CHECK(e.ts == 1700000000000000);
  CHECK(e.topic == "file.saved");
  CHECK(e.data == msg_data);  // the payload's text exactly as it travelled
  CHECK(e.frame == f);
  CHECK(e.frame.data() == f.data());  // a view into the datagram, not a copy
  // Fields a msg does not use keep their zero value.
  CHECK(e.to == 0);
  CHECK(e.range_count == 0);
  CHECK(e.method.empty());
  CHECK(e.error.empty());
  CHECK(e.subs.empty());
  CHECK(e.host.empty());
  CHECK(e.lo == 0);
  CHECK(e.cid == 0);
}

TEST_CASE("decode_frame: hb, every field", "[wire]") {
  const std::string f = obj(hb_fields());
  envelope e;
  REQUIRE(decode_frame(f, e));
  CHECK(e.type == frame_type::hb);
  CHECK(e.from == id_a_value);
  CHECK(e.name == "builder");
  CHECK(e.seq == 42);
  CHECK(e.lo == 3);
  CHECK(e.host == R"(box \"1\" \\ \u00e9)");  // raw contents, still escaped...
  CHECK(e.host_escaped);                        // ...and flagged so
  CHECK(json_unescape(e.host) == "box \"1\" \\ \xC3\xA9");
  CHECK(e.pid == 4242);
  CHECK(e.start == 1699999999000000);
  CHECK(e.ivl == 1000);
  CHECK(e.subs == R"(["file.*","build.>"])");
  CHECK(e.trunc);
  CHECK(e.ts == 1700000000000001);
  CHECK(e.data.empty());
  CHECK(e.topic.empty());

  CHECK(e.since == 0);  // absent: the sender has sent nothing yet

  // "since" (when it sent seq 1) on a heartbeat and on an advert.
  REQUIRE(decode_frame(obj(with(hb_fields(), "since", "1699999999500000")), e));
  CHECK(e.since == 1699999999500000);
  REQUIRE(decode_frame(obj(with(adv_fields(), "since", "1699999999500001")), e));
  CHECK(e.type == frame_type::adv);
  CHECK(e.since == 1699999999500001);

  // Flow control (8.9): it reports its progress and takes 131072 bytes ahead of its "have".
  CHECK_FALSE(e.fc);
  CHECK(e.rwin == 0);
  REQUIRE(decode_frame(obj(with(with(hb_fields(), "fc", "true"), "rwin", "131072")), e));
  CHECK(e.fc);
  CHECK(e.rwin == 131072);

  // A plain host is not flagged, and "trunc":false is read as false.
  auto plain = obj(with(with(hb_fields(), "host", q("box-1.local")), "trunc", "false"));
  REQUIRE(decode_frame(plain, e));
  CHECK(e.host == "box-1.local");
  CHECK_FALSE(e.host_escaped);
  CHECK_FALSE(e.trunc);

  // hb needs only v, type, from, name and seq; seq 0 means "sent nothing yet".
  auto minimal = obj({{"v", "1"}, {"type", q("hb")}, {"from", q(id_a)}, {"name", q("n")},
                      {"seq", "0"}});
  REQUIRE(decode_frame(minimal, e));
  CHECK(e.seq == 0);
  CHECK(e.subs.empty());
  CHECK(e.ivl == 0);
}

TEST_CASE("decode_frame: bye, every field", "[wire]") {
  envelope e;
  const std::string f = obj(bye_fields());
  REQUIRE(decode_frame(f, e));
  CHECK(e.type == frame_type::bye);
  CHECK(e.from == id_a_value);
  CHECK(e.name == "editor");
  CHECK(e.seq == 9);
  // bye requires nothing beyond v, type and from.
  const std::string bare = obj({{"v", "1"}, {"type", q("bye")}, {"from", q(id_a)}});
  REQUIRE(decode_frame(bare, e));
  CHECK(e.type == frame_type::bye);
  CHECK(e.seq == 0);
  CHECK(e.name.empty());
}

TEST_CASE("decode_frame: nack, every field", "[wire]") {
  envelope e;
  const std::string f = obj(nack_fields());
  REQUIRE(decode_frame(f, e));
  CHECK(e.type == frame_type::nack);
  CHECK(e.from == id_a_value);
  CHECK(e.to == id_b_value);
  REQUIRE(e.range_count == 3);
  CHECK(e.ranges[0].first == 1);
  CHECK(e.ranges[0].last == 3);
  CHECK(e.ranges[1].first == 5);
  CHECK(e.ranges[1].last == 5);
  CHECK(e.ranges[2].first == UINT64_MAX - 1);
  CHECK(e.ranges[2].last == UINT64_MAX);
  CHECK(e.seq == 0);

  // Exactly max_nack_ranges ranges is fine.
  std::string ranges = "[";
  for (std::size_t i = 0; i < max_nack_ranges; ++i) {
    if (i) ranges += ',';
    ranges += "[" + std::to_string(2 * i + 1) + "," + std::to_string(2 * i + 2) + "]";
  }
  ranges += "]";
  const std::string full = obj(with(nack_fields(), "ranges", ranges));
  REQUIRE(decode_frame(full, e));
  REQUIRE(e.range_count == max_nack_ranges);
  CHECK(e.ranges[max_nack_ranges - 1].first == 2 * max_nack_ranges - 1);
  CHECK(e.ranges[max_nack_ranges - 1].last == 2 * max_nack_ranges);

  // White space inside the ranges is JSON too.
  const std::string spaced = obj(with(nack_fields(), "ranges", "[ [ 4 , 6 ] ,[7,7] ]"));
  REQUIRE(decode_frame(spaced, e));
  REQUIRE(e.range_count == 2);
  CHECK(e.ranges[0].first == 4);
  CHECK(e.ranges[0].last == 6);
  CHECK(e.ranges[1].first == 7);
}

TEST_CASE("decode_frame: adv, every field", "[wire]") {
  envelope e;
  const std::string f = obj(adv_fields());
  REQUIRE(decode_frame(f, e));
  CHECK(e.type == frame_type::adv);
  CHECK(e.from == id_a_value);
  CHECK(e.seq == 100);
  CHECK(e.lo == 50);
}

TEST_CASE("decode_frame: call, every field", "[wire]") {
  envelope e;
  const std::string f = obj(call_fields());
  REQUIRE(decode_frame(f, e));
  CHECK(e.type == frame_type::call);
  CHECK(e.from == id_a_value);
  CHECK(e.name == "cli");
  CHECK(e.seq == 2);
  CHECK(e.ts == 5);
  CHECK(e.to == id_b_value);
  CHECK(e.method == "files/open:v2");
  CHECK(e.cid == 77);
  CHECK(e.data == R"([1,"two",null])");
  CHECK(is_sequenced(e.type));
}

TEST_CASE("decode_frame: reply with data and reply with error", "[wire]") {
  envelope e;
  const std::string f = obj(reply_fields());
  REQUIRE(decode_frame(f, e));
  CHECK(e.type == frame_type::reply);
  CHECK(e.from == id_b_value);
  CHECK(e.name == "server");
  CHECK(e.seq == 3);
  CHECK(e.ts == 6);
  CHECK(e.to == id_a_value);
  CHECK(e.cid == 77);
  CHECK(e.data == R"({"opened":true})");
  CHECK(e.error.empty());

  const std::string ef = obj(reply_error_fields());
  REQUIRE(decode_frame(ef, e));
  CHECK(e.type == frame_type::reply);
  CHECK(e.data.empty());
  CHECK(e.error == R"({"code":404,"message":"no such method"})");

  // "error":null is the same as no error: with data the reply is fine.
  const std::string null_error = obj(with(reply_fields(), "error", "null"));
  REQUIRE(decode_frame(null_error, e));
  CHECK(e.error.empty());
  CHECK(e.data == R"({"opened":true})");
}

TEST_CASE("decode_frame: white space between tokens, any key order", "[wire]") {
  envelope e;
  const std::string f =
      " \t{ \"data\" :\r\n [ 1 , { \"a\" : null } ] , \"topic\":\"a.b\",\"seq\" : 5 ,"
      "\"from\":\"0123456789abcdef\" , \"type\" :\"msg\", \"v\": 1 } \r\t ";
  REQUIRE(decode_frame(f, e));
  CHECK(e.type == frame_type::msg);
  CHECK(e.seq == 5);
  CHECK(e.topic == "a.b");
  CHECK(e.data == "[ 1 , { \"a\" : null } ]");
  CHECK(e.from == id_a_value);
}

TEST_CASE("decode_frame: the envelope is reset on every call", "[wire]") {
  // The bus decodes every frame into one envelope: nothing may leak from the previous frame.
  envelope e;
  const std::string hb = obj(hb_fields());
  REQUIRE(decode_frame(hb, e));
  REQUIRE(e.trunc);
  const std::string adv = obj(adv_fields());
  REQUIRE(decode_frame(adv, e));
  CHECK(e.type == frame_type::adv);
  CHECK(e.name.empty());
  CHECK(e.host.empty());
  CHECK(e.subs.empty());
  CHECK_FALSE(e.trunc);
  CHECK(e.pid == 0);
  CHECK(e.frame == adv);
  // And after a failed decode, too.
  REQUIRE_FALSE(decode_frame("{\"v\":1,", e));
  CHECK(e.seq == 0);
  CHECK(e.from == 0);
}

TEST_CASE("decode_frame: unknown fields are ignored, whatever their value", "[wire]") {
  const std::vector<std::string> values = {
      "null", "true", "false", "0", "-1.5e-7", "18446744073709551616", "\"text \\u00e9\\n\"",
      "[]", "{}", R"({"a":{"b":[1,{"c":[null,{"d":"e"}]}]}})", R"([[["deep"]],{"x":[]}])",
      nested(60, "[", "]"), nested(60, "{\"k\":", "}")};
  for (const auto& v : values) {
    for (const auto& t : every_type()) {
      INFO("type " << t.type << ", unknown value " << printable(v));
      // At the front, in the middle and at the end.
      fields front = t.f;
      front.insert(front.begin(), {"x-future", v});
      fields middle = t.f;
      middle.insert(middle.begin() + 2, {"future_field", v});
      fields back = with(t.f, "zz", v);
      for (const auto& fs : {front, middle, back}) {
        const std::string with_unknown = obj(fs);
        const std::string plain = obj(t.f);
        envelope a, b;
        REQUIRE(decode_frame(with_unknown, a));
        REQUIRE(decode_frame(plain, b));
        CHECK(a.type == b.type);
        CHECK(a.from == b.from);
        CHECK(a.seq == b.seq);
        CHECK(a.name == b.name);
        CHECK(a.topic == b.topic);
        CHECK(a.data == b.data);
        CHECK(a.to == b.to);
        CHECK(a.range_count == b.range_count);
      }
    }
  }
  // The same unknown key twice is no duplicate of a known field.
  check_ok(obj(with(with(msg_fields(), "x", "1"), "y", "2")) );
  auto twice = msg_fields();
  twice.emplace_back("x", "1");
  twice.emplace_back("x", "2");
  check_ok(obj(twice));
}

// =============================================================================================
// Malformed input

TEST_CASE("decode_frame: not JSON, or not one JSON object", "[wire]") {
  for (const char* f : {"", " ", "hello", "[1,2]", "\"str\"", "42", "null", "{", "}", "{\"v\"",
                        "{\"v\" 1}", "{\"v\":1,}", "{\"v\":1 \"type\":\"msg\"}", "{v:1}",
                        "{'v':1}", "{\"v\":1}}", "\xEF\xBB\xBF{\"v\":1}"}) {
    check_drop(f, "malformed");
  }
  // Something after the object.
  check_drop(obj(msg_fields()) + " x", "malformed", "trailing");
  check_drop(obj(msg_fields()) + obj(msg_fields()), "malformed", "trailing");
  check_drop(obj(msg_fields()) + std::string(1, '\0'), "malformed", "trailing");
  // JSON, but not the protocol's: an empty object has no version.
  check_drop("{}", "bad_field", "'v'");
}

TEST_CASE("decode_frame: every truncation of a valid frame is refused, none crashes", "[wire]") {
  for (const auto& t : every_type()) {
    const std::string f = obj(t.f);
    INFO("type " << t.type << ": " << f);
    REQUIRE(decode(f).ok);
    for (std::size_t n = 0; n < f.size(); ++n) {
      const std::string prefix = f.substr(0, n);
      auto o = decode(prefix);
      INFO("prefix of " << n << " bytes: " << prefix);
      CHECK_FALSE(o.ok);
      CHECK(o.reason == "malformed");
      CHECK_FALSE(o.detail.empty());
      // The datagram path says the same: no frame decodes.
      if (n > 0) {
        auto s = split(prefix);
        CHECK(s.r.ok);
        REQUIRE(s.outcomes.size() == 1);
        CHECK_FALSE(s.outcomes[0].ok);
      }
    }
  }
}

TEST_CASE("decode_frame: nesting is bounded (1000 levels of brackets or braces refused)", "[wire]") {
  const auto base = msg_fields();
  // As the payload, as an unknown field's value, and as the whole frame.
  check_drop(obj(with(base, "data", nested(1000, "[", "]"))), "malformed", "nested too deep");
  check_drop(obj(with(base, "data", nested(1000, "{\"a\":", "}"))), "malformed",
             "nested too deep");
  check_drop(obj(with(base, "data", nested(500, "[{\"a\":", "}]"))), "malformed",
             "nested too deep");
  check_drop(obj(with(base, "x", nested(1000, "[", "]"))), "malformed", "nested too deep");
  check_drop(obj(with(base, "x", nested(1000, "{\"a\":", "}"))), "malformed", "nested too deep");
  check_drop(nested(1000, "[", "]"), "malformed");
  check_drop(nested(1000, "{", "}"), "malformed");
  check_drop(nested(1000, "{\"a\":", "}"), "malformed");
  // Unterminated deep nesting costs no more than terminated.
  check_drop(obj(with(base, "data", std::string(100000, '['))), "malformed");

  // The limit counts the envelope as one level: a payload may nest max_depth - 1 deep.
  check_ok(obj(with(base, "data", nested(max_depth - 1, "[", "]"))));
  check_ok(obj(with(base, "data", nested(max_depth - 1, "{\"a\":", "}"))));
  check_drop(obj(with(base, "data", nested(max_depth, "[", "]"))), "malformed",
             "nested too deep");
  check_drop(obj(with(base, "data", nested(max_depth, "{\"a\":", "}"))), "malformed",
             "nested too deep");
}

TEST_CASE("decode_frame: huge numbers are refused", "[wire]") {
  const auto base = msg_fields();
  const std::string digits400(400, '7');
  for (const std::string& n :
       {std::string("1e400"), std::string("-1e400"), std::string("1.5E+999"), digits400,
        "-" + digits400, "0." + digits400, std::string(65, '1')}) {
    INFO("number " << n.substr(0, 40));
    check_drop(obj(with(base, "data", n)), "malformed");
    check_drop(obj(with(base, "data", "[" + n + "]")), "malformed");
    check_drop(obj(with(base, "x", n)), "malformed");
    check_drop(obj(with(base, "seq", n)), "malformed");
    check_drop(obj(with(base, "ts", n)), "malformed");
  }
  check_drop(obj(with(base, "data", "1e400")), "malformed", "out of range");
  check_drop(obj(with(base, "data", digits400)), "malformed", "too long");

  // Big but finite numbers are JSON: fine as payload; refused as a counter or a time that
  // does not fit 64 bits, as a field error.
  check_ok(obj(with(base, "data", "1e300")));
  check_ok(obj(with(base, "data", "1e-400")));  // underflows to 0, as any parser reads it
  check_ok(obj(with(base, "data", "123456789012345678901234567890")));
  check_drop(obj(with(base, "seq", "18446744073709551616")), "bad_field");  // 2^64
  check_drop(obj(with(base, "ts", "9223372036854775808")), "bad_field");    // 2^63
  check_drop(obj(with(base, "ts", "-9223372036854775809")), "bad_field");

  envelope e;
  const std::string extremes =
      obj(with(with(base, "seq", "18446744073709551615"), "ts", "-9223372036854775808"));
  REQUIRE(decode_frame(extremes, e));
  CHECK(e.seq == UINT64_MAX);
  CHECK(e.ts == INT64_MIN);
  const std::string ts_max = obj(with(base, "ts", "9223372036854775807"));
  REQUIRE(decode_frame(ts_max, e));
  CHECK(e.ts == INT64_MAX);
}

TEST_CASE("decode_frame: huge strings", "[wire]") {
  const auto base = msg_fields();
  // A payload as large as a datagram allows is fine.
  const std::string big(60000, 'x');
  const std::string f = obj(with(base, "data", q(big)));
  envelope e;
  REQUIRE(decode_frame(f, e));
  CHECK(e.data.size() == big.size() + 2);
  check_ok(obj(with(base, "x", q(big))));
  // Restricted strings have limits of their own.
  check_drop(obj(with(base, "name", q(std::string(10000, 'n')))), "oversized", "name");
  check_drop(obj(with(base, "topic", q(std::string(10000, 't')))), "oversized", "topic");
  check_drop(obj(with(hb_fields(), "host", q(std::string(10000, 'h')))), "oversized", "host");
  check_drop(obj(with(call_fields(), "method", q(std::string(10000, 'm')))), "oversized",
             "method");
  // An unterminated huge string is simply malformed.
  check_drop("{\"v\":1,\"data\":\"" + big, "malformed", "unterminated");
}

TEST_CASE("decode_frame: invalid UTF-8 anywhere is malformed", "[wire]") {
  const std::vector<std::string> bad_utf8 = {
      "\xFF",                  // never valid
      "\x80",                  // continuation without a lead
      "\xC0\xAF",              // overlong '/'
      "\xE0\x80\xAF",          // overlong, 3 bytes
      "\xF0\x80\x80\xAF",      // overlong, 4 bytes
      "\xED\xA0\x80",          // UTF-16 surrogate D800 encoded
      "\xF4\x90\x80\x80",      // above U+10FFFF
      "\xC3",                  // lead at the end of the string
      "\xE2\x82",              // cut short
      "\xC3\x28",              // bad continuation
      "\xF8\x88\x80\x80\x80",  // 5-byte form
  };
  const auto base = msg_fields();
  for (const auto& b : bad_utf8) {
    INFO("bytes " << printable(b));
    check_drop(obj(with(base, "data", q("ok" + b + "ok"))), "malformed", "UTF-8");
    check_drop(obj(with(base, "data", q("ok" + b))), "malformed", "UTF-8");
    check_drop(obj(with(base, "x", q(b))), "malformed", "UTF-8");
    check_drop(obj(with(base, "topic", q("a" + b))), "malformed", "UTF-8");
    check_drop(obj(with(hb_fields(), "host", q(b))), "malformed", "UTF-8");
    // In a key.
    check_drop(obj(with(base, "k" + b, "1")), "malformed", "UTF-8");
    // Outside any string.
    check_drop(obj(with(base, "data", b)), "malformed");
  }
  // Valid multi-byte UTF-8 at every length passes (as payload and free text).
  const std::string good = "\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xEF\xBF\xBD";
  check_ok(obj(with(base, "data", q(good))));
  check_ok(obj(with(hb_fields(), "host", q(good))));
}

TEST_CASE("decode_frame: control characters and bad escapes in strings", "[wire]") {
  const auto base = msg_fields();
  for (int c = 0; c < 0x20; ++c) {
    INFO("control character " << c);
    const std::string ch(1, static_cast<char>(c));
    check_drop(obj(with(base, "data", q("a" + ch + "b"))), "malformed", "control character");
    check_drop(obj(with(base, "x", q(ch))), "malformed");
    check_drop(obj(with(base, "name", q("n" + ch))), "malformed");
  }
  // DEL is not a control character in JSON.
  check_ok(obj(with(base, "data", q("a\x7f" "b"))));

  for (const char* esc : {"\\x", "\\a", "\\0", "\\U0041", "\\u12", "\\u12G4", "\\u",
                          "\\ud800",           // lone high surrogate
                          "\\udc00",           // lone low surrogate
                          "\\ud800\\u0041",    // high surrogate + non-surrogate
                          "\\ud800\\ud800",    // two high surrogates
                          "\\ud800x", "\\'"}) {
    INFO("escape " << esc);
    check_drop(obj(with(base, "data", q(std::string("a") + esc + "b"))), "malformed");
    check_drop(obj(with(base, "x", q(esc))), "malformed");
  }
  // A backslash just before the end of the frame.
  check_drop("{\"v\":1,\"x\":\"\\", "malformed");
  // Every valid escape.
  check_ok(obj(with(base, "data", q(R"(\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \uD83D\uDE00)"))));
}

TEST_CASE("decode_frame: a wrong type for each known field", "[wire]") {
  struct wrong {
    const char* key;
    const char* value;
    fields (*base)();
  };
  // Fields read with a fixed type: a wrong one is a field error, not a framing error.
  const std::vector<wrong> cases = {
      {"type", "1", msg_fields},          {"type", "null", msg_fields},
      {"type", "[\"msg\"]", msg_fields},  {"type", "\"m\\u0073g\"", msg_fields},
      {"from", "1", msg_fields},          {"from", "\"xyz\"", msg_fields},
      {"from", "\"0123456789abcde\"", msg_fields},  {"from", "\"0123456789abcdef0\"", msg_fields},
      {"from", "\"0123456789abcdeg\"", msg_fields}, {"from", "\"0x23456789abcdef\"", msg_fields},
      {"from", "\"\\u0030123456789abcdef\"", msg_fields},
      {"to", "5", nack_fields},           {"to", "\"nope\"", call_fields},
      {"name", "5", msg_fields},          {"name", "\"has space\"", msg_fields},
      {"name", "\"\"", msg_fields},       {"name", "\"a\\u0062\"", msg_fields},
      {"name", "null", hb_fields},
      {"seq", "\"1\"", msg_fields},       {"seq", "-1", msg_fields},
      {"seq", "1.5", msg_fields},         {"seq", "1e3", msg_fields},
      {"seq", "true", msg_fields},        {"seq", "null", msg_fields},
      {"seq", "[1]", msg_fields},
      {"lo", "\"3\"", hb_fields},         {"lo", "-3", adv_fields},
      {"ivl", "1.0", hb_fields},          {"ivl", "{}", hb_fields},
      {"cid", "\"77\"", call_fields},     {"cid", "-77", reply_fields},
      {"ts", "\"1\"", msg_fields},        {"ts", "1.5", msg_fields},
      {"ts", "true", msg_fields},         {"pid", "\"4242\"", hb_fields},
      {"pid", "4.2e3", hb_fields},        {"start", "null", hb_fields},
      {"since", "\"1\"", hb_fields},      {"since", "1.5", adv_fields},
      {"topic", "5", msg_fields},         {"topic", "\"a..b\"", msg_fields},
      {"topic", "\"a.*\"", msg_fields},   {"topic", "\"a.>\"", msg_fields},
      {"topic", "\"a b\"", msg_fields},   {"topic", "\"a\\u0062\"", msg_fields},
      {"topic", "\"\"", msg_fields},      {"topic", "\".a\"", msg_fields},
      {"topic", "\"caf\xC3\xA9\"", msg_fields},
      {"host", "5", hb_fields},           {"host", "[\"h\"]", hb_fields},
      {"subs", "\"file.*\"", hb_fields},  {"subs", "[1]", hb_fields},
      {"subs", "[\"a..b\"]", hb_fields},  {"subs", "{\"a\":1}", hb_fields},
      {"subs", "[[\"a\"]]", hb_fields},   {"subs", "[\"a\\u002eb\"]", hb_fields},
      {"subs", "[\"a.>.b\"]", hb_fields}, {"subs", "null", hb_fields},
      {"trunc", "1", hb_fields},          {"trunc", "\"true\"", hb_fields},
      {"trunc", "null", hb_fields},
      {"ranges", "5", nack_fields},       {"ranges", "[1,2]", nack_fields},
      {"ranges", "[[1]]", nack_fields},   {"ranges", "[[1,2,3]]", nack_fields},
      {"ranges", "[[\"1\",2]]", nack_fields}, {"ranges", "[[-1,2]]", nack_fields},
      {"ranges", "[[1.5,2]]", nack_fields},   {"ranges", "{\"a\":[1,2]}", nack_fields},
      {"ranges", "[[1,18446744073709551616]]", nack_fields},
      {"method", "5", call_fields},       {"method", "\"a b\"", call_fields},
      {"method", "\"\"", call_fields},    {"method", "\"a\\/b\"", call_fields},
      {"error", "5", reply_error_fields}, {"error", "\"oops\"", reply_error_fields},
      {"error", "[]", reply_error_fields}, {"error", "true", reply_error_fields},
      {"have", "\"5\"", nack_fields},     {"have", "-5", nack_fields},
      {"ask", "1", adv_fields},           {"fc", "\"true\"", hb_fields},
      {"rwin", "\"65536\"", hb_fields},   {"rwin", "-1", hb_fields},
      {"rwin", "1.5", hb_fields},         {"rwin", "null", hb_fields},
  };
  for (const auto& c : cases) {
    INFO("\"" << c.key << "\":" << printable(c.value));
    check_drop(obj(with(c.base(), c.key, c.value)), "bad_field");
  }
  // A leading zero is not JSON at all, so the frame is malformed rather than a field wrong.
  check_drop(obj(with(msg_fields(), "seq", "01")), "malformed");
  // "v" is special: a version that is not a plain number is a version we do not speak.
  for (const char* v : {"\"1\"", "1.0", "-1", "null", "true", "[1]", "{}", "1e0"}) {
    INFO("\"v\":" << v);
    check_drop(obj(with(msg_fields(), "v", v)), "wrong_version");
  }
  // "data" takes any JSON value.
  for (const char* d : {"null", "0", "\"s\"", "[]", "{}", "true"}) check_ok(obj(with(msg_fields(), "data", d)));
}

TEST_CASE("decode_frame: missing required fields, per type", "[wire]") {
  struct req {
    const char* type;
    fields (*base)();
    std::vector<const char*> keys;
  };
  const std::vector<req> cases = {
      {"msg", msg_fields, {"v", "type", "from", "seq", "topic", "data"}},
      {"hb", hb_fields, {"v", "type", "from", "seq", "name"}},
      {"bye", bye_fields, {"v", "type", "from"}},
      {"nack", nack_fields, {"v", "type", "from", "to", "ranges"}},
      {"adv", adv_fields, {"v", "type", "from", "seq"}},
      {"call", call_fields, {"v", "type", "from", "seq", "to", "method", "cid"}},
      {"reply", reply_fields, {"v", "type", "from", "seq", "to", "cid"}},
  };
  for (const auto& c : cases) {
    for (const char* k : c.keys) {
      INFO(c.type << " without '" << k << "'");
      check_drop(obj(without(c.base(), k)), "bad_field", std::string("'") + k + "'");
    }
  }
  // Optional fields really are optional.
  check_ok(obj(without(without(msg_fields(), "name"), "ts")));
  check_ok(obj(without(without(without(without(without(hb_fields(), "host"), "subs"), "lo"),
                               "trunc"),
                       "ivl")));
  check_ok(obj(without(adv_fields(), "lo")));
  // A reply needs data or an error.
  check_drop(obj(without(reply_fields(), "data")), "bad_field", "neither data nor error");
  check_drop(obj(with(without(reply_fields(), "data"), "error", "null")), "bad_field",
             "neither data nor error");
}

TEST_CASE("decode_frame: sequenced frames start at seq 1", "[wire]") {
  check_drop(obj(with(msg_fields(), "seq", "0")), "bad_field", "seq");
  check_drop(obj(with(call_fields(), "seq", "0")), "bad_field", "seq");
  check_drop(obj(with(reply_fields(), "seq", "0")), "bad_field", "seq");
  // Control frames carry the sender's highest seq: 0 before it has sent anything.
  check_ok(obj(with(hb_fields(), "seq", "0")));
  check_ok(obj(with(adv_fields(), "seq", "0")));
  check_ok(obj(with(bye_fields(), "seq", "0")));
}

TEST_CASE("decode_frame: a duplicated known field is refused", "[wire]") {
  for (const auto& t : every_type()) {
    for (const auto& f : t.f) {
      INFO(t.type << " with '" << f.first << "' twice");
      fields twice = t.f;
      twice.push_back(f);  // the very same value: still refused
      check_drop(obj(twice), "bad_field", "duplicate");
    }
  }
  // Even when the two values differ and the first is the valid one.
  auto msg = msg_fields();
  msg.emplace_back("topic", q("other.topic"));
  check_drop(obj(msg), "bad_field", "duplicate");
}

TEST_CASE("decode_frame: an unknown major version wins over every other complaint", "[wire]") {
  for (const std::string& f : {
           std::string(R"({"v":2})"),
           obj(with(msg_fields(), "v", "2")),
           std::string(R"({"v":2,"type":5,"from":"nope","seq":-1,"topic":"a..b"})"),
           std::string(R"({"type":"strange","seq":"x","v":2})"),
           std::string(R"({"v":2,"type":"msg","seq":0})"),
           std::string(R"({"v":2,"type":"msg","topic":"x","topic":"y"})"),
           std::string(R"({"v":0,"type":"msg"})"),
           std::string(R"({"v":99999999999999999999999,"type":"msg"})"),
           std::string(R"({"name":"way too long for a name really way too long for a name ok","v":3})"),
       }) {
    check_drop(f, "wrong_version");
  }
  check_drop(R"({"v":2})", "wrong_version", "version");
  // No version at all is a missing field (an envelope of this protocol without its version).
  check_drop(obj(without(msg_fields(), "v")), "bad_field", "'v'");
  check_drop(R"({"type":"msg"})", "bad_field", "'v'");
  // A broken frame stays malformed whatever version it claims: nothing can be read from it.
  check_drop(R"({"v":2,"type":)", "malformed");
}

TEST_CASE("decode_frame: an unknown frame type", "[wire]") {
  for (const char* t : {"stream", "", "MSG", "msg ", "Hb", "nacks"}) {
    INFO("type '" << t << "'");
    check_drop(obj(with(msg_fields(), "type", q(t))), "unknown_type");
  }
  // Known only by its type: fields a future type may need are not asked for first.
  check_drop(R"({"v":1,"type":"stream","from":"0123456789abcdef"})", "unknown_type");
  check_drop(R"({"v":1,"type":"stream"})", "unknown_type");
}

TEST_CASE("decode_frame: size limits of names, topics, methods and hosts", "[wire]") {
  // At the limit: fine. One more: oversized.
  check_ok(obj(with(msg_fields(), "name", q(std::string(max_name, 'n')))));
  check_drop(obj(with(msg_fields(), "name", q(std::string(max_name + 1, 'n')))), "oversized",
             "name");
  std::string topic;
  while (topic.size() + 4 <= max_topic) topic += "abc.";
  topic += std::string(max_topic - topic.size(), 'z');
  REQUIRE(topic.size() == max_topic);
  check_ok(obj(with(msg_fields(), "topic", q(topic))));
  check_drop(obj(with(msg_fields(), "topic", q(topic + "z"))), "oversized", "topic");
  check_ok(obj(with(call_fields(), "method", q(std::string(max_method, 'm')))));
  check_drop(obj(with(call_fields(), "method", q(std::string(max_method + 1, 'm')))),
             "oversized", "method");
  check_ok(obj(with(hb_fields(), "host", q(std::string(max_host, 'h')))));
  check_drop(obj(with(hb_fields(), "host", q(std::string(max_host + 1, 'h')))), "oversized",
             "host");
}

TEST_CASE("decode_frame: topics with characters outside the grammar", "[wire]") {
  for (const char* t : {"a b", "a*b", "a>b", "*", ">", "a.", ".", "a\tb", "a\\\\b", "a\\\"b"}) {
    INFO("topic '" << t << "'");
    const std::string f = obj(with(msg_fields(), "topic", q(t)));
    auto o = decode(f);
    CHECK_FALSE(o.ok);
    // A raw tab is a JSON error; the others are valid JSON but not a topic.
    CHECK((o.reason == "bad_field" || o.reason == "malformed"));
  }
  for (const char* t : {"a", "a.b.c", "file-saved_2.x", "!#$%&'()+,-/:;<=?@[]^_`{|}~"}) {
    INFO("topic '" << t << "'");
    check_ok(obj(with(msg_fields(), "topic", q(t))));
  }
}

TEST_CASE("decode_frame: NACK ranges", "[wire]") {
  check_drop(obj(with(nack_fields(), "ranges", "[[5,4]]")), "bad_field", "NACK range");
  check_drop(obj(with(nack_fields(), "ranges", "[[1,2],[9,3]]")), "bad_field", "NACK range");
  check_drop(obj(with(nack_fields(), "ranges", "[[0,4]]")), "bad_field", "NACK range");
  check_drop(obj(with(nack_fields(), "ranges", "[[0,0]]")), "bad_field", "NACK range");
  std::string many = "[";
  for (std::size_t i = 0; i <= max_nack_ranges; ++i) many += (i ? ",[" : "[") + std::to_string(i + 1) + "," + std::to_string(i + 1) + "]";
  many += "]";
  check_drop(obj(with(nack_fields(), "ranges", many)), "oversized", "NACK ranges");
  // Thousands of ranges: still refused, in bounded work.
  std::string lots = "[";
  for (int i = 0; i < 5000; ++i) lots += (i ? ",[1,1]" : "[1,1]");
  lots += "]";
  check_drop(obj(with(nack_fields(), "ranges", lots)), "oversized", "NACK ranges");
  // An empty list asks for nothing: harmless.
  envelope e;
  const std::string empty = obj(with(nack_fields(), "ranges", "[]"));
  REQUIRE(decode_frame(empty, e));
  CHECK(e.range_count == 0);
}

TEST_CASE("decode_frame: heartbeat subscriptions", "[wire]") {
  auto subs_of = [](std::size_t n, std::size_t len) {
    std::string s = "[";
    for (std::size_t i = 0; i < n; ++i) {
      if (i) s += ',';
      std::string p = "p" + std::to_string(i);
      p += std::string(len > p.size() ? len - p.size() : 0, 'x');
      s += q(p);
    }
    return s + "]";
  };
  check_ok(obj(with(hb_fields(), "subs", subs_of(max_heartbeat_subs, 8))));
  check_drop(obj(with(hb_fields(), "subs", subs_of(max_heartbeat_subs + 1, 8))), "oversized",
             "too many subscriptions");
  check_drop(obj(with(hb_fields(), "subs", subs_of(1000, 4))), "oversized",
             "too many subscriptions");
  // Few patterns but too many bytes.
  check_drop(obj(with(hb_fields(), "subs", subs_of(max_heartbeat_subs, 200))), "oversized",
             "subscriptions too long");
  check_ok(obj(with(hb_fields(), "subs", "[]")));
  check_ok(obj(with(hb_fields(), "subs", R"(["*",">","a.*.c","a.>"])")));
}

// =============================================================================================
// Datagrams

TEST_CASE("for_each_frame: datagrams unusable as a whole", "[wire]") {
  auto s = split("");
  CHECK_FALSE(s.r.ok);
  CHECK(s.r.reason == drop_reason::malformed);
  CHECK(std::strlen(s.r.detail) > 0);
  CHECK(s.frames.empty());

  s = split("\n\n\n");
  CHECK_FALSE(s.r.ok);
  CHECK(s.r.reason == drop_reason::malformed);
  CHECK(std::strlen(s.r.detail) > 0);
  CHECK(s.frames.empty());

  // Sealed datagrams (authenticated buses) are refused by an open bus, whatever follows.
  for (const std::string& d : {std::string("PBS1"), std::string("PBS1") + obj(msg_fields()),
                               std::string("PBS1\x00\x01\xff", 7)}) {
    s = split(d);
    CHECK_FALSE(s.r.ok);
    CHECK(s.r.reason == drop_reason::unauthenticated);
    CHECK(std::strlen(s.r.detail) > 0);
    CHECK(s.frames.empty());
  }
  // "PBS" alone is not the magic: an ordinary (malformed) frame.
  s = split("PBS");
  CHECK(s.r.ok);
  REQUIRE(s.outcomes.size() == 1);
  CHECK(s.outcomes[0].reason == "malformed");

  // Larger than any UDP datagram over IPv4.
  std::string big = obj(with(msg_fields(), "data", q(std::string(max_datagram, 'x'))));
  REQUIRE(big.size() > max_datagram);
  s = split(big);
  CHECK_FALSE(s.r.ok);
  CHECK(s.r.reason == drop_reason::oversized);
  CHECK(std::strlen(s.r.detail) > 0);
  CHECK(s.frames.empty());

  // Exactly the largest datagram is fine.
  std::string exact = obj(with(msg_fields(), "data", q("")));
  exact = obj(with(msg_fields(), "data", q(std::string(max_datagram - exact.size(), 'x'))));
  REQUIRE(exact.size() == max_datagram);
  s = split(exact);
  CHECK(s.r.ok);
  REQUIRE(s.outcomes.size() == 1);
  CHECK(s.outcomes[0].ok);
}

TEST_CASE("for_each_frame: several frames, a bad one does not stop the others", "[wire]") {
  const std::string m = obj(msg_fields());
  const std::string hb = obj(hb_fields());
  const std::string nack = obj(nack_fields());
  const std::string bad_json = "{\"v\":1,";
  const std::string bad_version = obj(with(msg_fields(), "v", "2"));
  const std::string bad_field = obj(with(msg_fields(), "seq", "0"));
  const std::string d = m + "\n" + bad_json + "\n" + hb + "\n\n" + bad_version + "\n" + nack +
                        "\n" + bad_field + "\n" + m + "\n";
  auto s = split(d);
  REQUIRE(s.r.ok);
  REQUIRE(s.frames.size() == 7);  // the empty line is no frame
  CHECK(s.frames[0] == m);
  CHECK(s.frames[1] == bad_json);
  CHECK(s.frames[2] == hb);
  CHECK(s.frames[3] == bad_version);
  CHECK(s.frames[4] == nack);
  CHECK(s.frames[5] == bad_field);
  CHECK(s.frames[6] == m);
  const std::vector<std::string> expected = {"ok",  "malformed", "ok",       "wrong_version",
                                             "ok",  "bad_field", "ok"};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("frame " << i);
    CHECK(s.outcomes[i].reason == expected[i]);
    CHECK(s.outcomes[i].ok == (expected[i] == "ok"));
    if (!s.outcomes[i].ok) CHECK_FALSE(s.outcomes[i].detail.empty());
  }

  // CR LF line ends work too: the CR is white space after the object.
  s = split(m + "\r\n" + hb + "\r\n");
  REQUIRE(s.r.ok);
  REQUIRE(s.outcomes.size() == 2);
  CHECK(s.outcomes[0].ok);
  CHECK(s.outcomes[1].ok);

  // A datagram of frames that are all bad is still a datagram: its frames are each refused.
  s = split("x\ny\n{}");
  CHECK(s.r.ok);
  REQUIRE(s.outcomes.size() == 3);
  for (auto& o : s.outcomes) CHECK_FALSE(o.ok);
}

TEST_CASE("for_each_frame: too many frames refuses the datagram before any frame", "[wire]") {
  // The frames are tiny and bad, so the datagram stays far below max_datagram.
  std::string d;
  for (std::size_t i = 0; i <= max_frames_per_datagram; ++i) d += "{}\n";
  REQUIRE(d.size() < max_datagram);
  auto s = split(d);
  CHECK_FALSE(s.r.ok);
  CHECK(s.r.reason == drop_reason::oversized);
  CHECK_THAT(std::string(s.r.detail), Catch::Contains("too many frames"));
  // None was handed on: the bus must not act on part of a datagram it counts as dropped.
  CHECK(s.frames.empty());

  // Single-byte frames, the densest packing.
  std::string dense;
  for (std::size_t i = 0; i <= max_frames_per_datagram; ++i) dense += "x\n";
  dense.pop_back();
  s = split(dense);
  CHECK_FALSE(s.r.ok);
  CHECK(s.r.reason == drop_reason::oversized);
  CHECK(s.frames.empty());

  // At the limit, every frame is handed on; blank lines do not count.
  std::string at_limit;
  for (std::size_t i = 0; i < max_frames_per_datagram; ++i) at_limit += "x\n\n";
  s = split(at_limit);
  CHECK(s.r.ok);
  CHECK(s.frames.size() == max_frames_per_datagram);
}
