// wire/json_scan_test.cpp: the bounded JSON scanner (json_cursor, valid_json) and the string
// helpers (json_unescape, json_escape_append), checked against nlohmann::json.
#include "wire/json_scan.hpp"
#include "wire/limits.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using namespace peerbus::detail::wire;

namespace {

constexpr int depth_limit = max_depth - 1;  // what the bus allows a payload

// nlohmann's verdict: the parsed value, or nothing when it refuses the text.
std::optional<nlohmann::json> nlohmann_parse(std::string_view text) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

// valid_json on a heap block of exactly the text's size (AddressSanitizer sees over-reads).
bool scan(std::string_view text, const char** error = nullptr) {
  std::unique_ptr<char[]> p(new char[text.size() ? text.size() : 1]);
  if (!text.empty()) std::memcpy(p.get(), text.data(), text.size());
  return valid_json(std::string_view(p.get(), text.size()), depth_limit, error);
}

std::string printable(std::string_view s) {
  std::string out;
  for (char ch : s.substr(0, 200)) {
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
  return out;
}

// The scanner and nlohmann agree on `text`: both accept it (and then the span the cursor
// reports parses to the same value) or both refuse it, and a refusal says why.
void check_agrees(std::string_view text) {
  INFO("text: " << printable(text));
  const char* error = "";
  const bool ours = scan(text, &error);
  auto theirs = nlohmann_parse(text);
  CHECK(ours == theirs.has_value());
  if (!ours) {
    CHECK(std::strlen(error) > 0);
  } else if (theirs) {
    json_cursor c(text);
    std::string_view span;
    REQUIRE(c.value(span, depth_limit));
    CHECK(nlohmann::json::parse(span) == *theirs);
  }
}

// The string contents a JSON string literal holds (between its quotes), via json_cursor.
std::string_view contents_of(std::string_view literal, bool& escaped) {
  json_cursor c(literal);
  std::string_view contents;
  REQUIRE(c.string(contents, escaped));
  c.skip_ws();
  REQUIRE(c.at_end());
  return contents;
}

bool valid_utf8(std::string_view s) {
  // Through nlohmann's own check (dump refuses invalid UTF-8).
  try {
    (void)nlohmann::json(std::string(s)).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

}  // namespace

// =============================================================================================
// json_cursor

TEST_CASE("json_cursor: strings report contents and whether they are escaped", "[wire]") {
  bool esc = true;
  CHECK(contents_of(R"("plain")", esc) == "plain");
  CHECK_FALSE(esc);
  CHECK(contents_of(R"("a\"b")", esc) == R"(a\"b)");
  CHECK(esc);
  CHECK(contents_of(R"("")", esc).empty());
  CHECK_FALSE(esc);
  CHECK(contents_of("  \"\xC3\xA9\"  ", esc) == "\xC3\xA9");  // UTF-8 needs no escape
  CHECK_FALSE(esc);

  json_cursor c("\"unterminated");
  std::string_view s;
  CHECK_FALSE(c.string(s, esc));
  CHECK_THAT(std::string(c.error), Catch::Contains("unterminated"));
  json_cursor n("42");
  CHECK_FALSE(n.string(s, esc));
  CHECK(std::strlen(n.error) > 0);
}

TEST_CASE("json_cursor: integers", "[wire]") {
  std::uint64_t u = 0;
  json_cursor a(" 18446744073709551615");
  REQUIRE(a.uint(u));
  CHECK(u == UINT64_MAX);
  CHECK(a.at_end());
  u = 7;
  json_cursor b("18446744073709551616");
  CHECK_FALSE(b.uint(u));
  CHECK_THAT(std::string(b.error), Catch::Contains("out of range"));
  CHECK(u == 7);  // untouched on failure
  for (const char* t : {"-1", "1.0", "1e2", "01", "", "x", "+1"}) {
    INFO(t);
    json_cursor c(t);
    CHECK_FALSE(c.uint(u));
    CHECK(std::strlen(c.error) > 0);
  }
  json_cursor zero("0");
  REQUIRE(zero.uint(u));
  CHECK(u == 0);

  std::int64_t i = 0;
  json_cursor mn("-9223372036854775808");
  REQUIRE(mn.int64(i));
  CHECK(i == INT64_MIN);
  json_cursor mx("9223372036854775807");
  REQUIRE(mx.int64(i));
  CHECK(i == INT64_MAX);
  json_cursor neg("-42");
  REQUIRE(neg.int64(i));
  CHECK(i == -42);
  for (const char* t : {"-9223372036854775809", "9223372036854775808", "- 1", "-", "--1", "-x",
                        "1.5", "-0.0", "\"1\""}) {
    INFO(t);
    json_cursor c(t);
    CHECK_FALSE(c.int64(i));
    CHECK(std::strlen(c.error) > 0);
  }
}

TEST_CASE("json_cursor: booleans, punctuation, seek", "[wire]") {
  bool b = false;
  json_cursor t(" true");
  REQUIRE(t.boolean(b));
  CHECK(b);
  json_cursor f("false");
  REQUIRE(f.boolean(b));
  CHECK_FALSE(b);
  for (const char* s : {"tru", "True", "null", "1", "fals"}) {
    INFO(s);
    json_cursor c(s);
    CHECK_FALSE(c.boolean(b));
  }

  json_cursor c(" { \"k\" : 1 } ");
  CHECK(c.peek() == ' ');
  CHECK(c.consume('{'));
  CHECK_FALSE(c.consume('}'));
  const char* mark = c.pos();
  std::string_view k;
  bool esc;
  REQUIRE(c.string(k, esc));
  CHECK(k == "k");
  // Back to a position passed before: the same token reads again, and the error is cleared.
  std::uint64_t u;
  CHECK_FALSE(c.uint(u));
  CHECK(std::strlen(c.error) > 0);
  c.seek(mark);
  CHECK(std::strlen(c.error) == 0);
  REQUIRE(c.string(k, esc));
  CHECK(c.consume(':'));
  REQUIRE(c.uint(u));
  CHECK(u == 1);
  CHECK(c.consume('}'));
  c.skip_ws();
  CHECK(c.at_end());
  CHECK(c.peek() == '\0');
}

TEST_CASE("json_cursor: value() spans exactly one value and honours the depth bound", "[wire]") {
  json_cursor c(R"(  {"a":[1,{"b":null}],"c":"}"} , 5)");
  std::string_view span;
  REQUIRE(c.value(span, depth_limit));
  CHECK(span == R"({"a":[1,{"b":null}],"c":"}"})");
  CHECK(c.consume(','));
  REQUIRE(c.value(span, depth_limit));
  CHECK(span == "5");

  auto nest = [](int n) { return std::string(static_cast<std::size_t>(n), '[') + std::string(static_cast<std::size_t>(n), ']'); };
  // json_cursor keeps a view: every text it reads must outlive it.
  for (int d = 1; d <= max_depth; ++d) {
    const std::string fits = nest(d), too_deep = nest(d + 1);
    json_cursor ok(fits);
    CHECK(ok.value(span, d));
    json_cursor deep(too_deep);
    CHECK_FALSE(deep.value(span, d));
    CHECK_THAT(std::string(deep.error), Catch::Contains("nested too deep"));
  }
  // A bound above the protocol's is clamped to it: the fixed stack never overflows.
  const std::string huge_text = nest(10000), at_cap_text = nest(max_depth),
                    over_cap_text = nest(max_depth + 1);
  json_cursor huge(huge_text);
  CHECK_FALSE(huge.value(span, 1 << 20));
  json_cursor at_cap(at_cap_text);
  CHECK(at_cap.value(span, 1 << 20));
  json_cursor over_cap(over_cap_text);
  CHECK_FALSE(over_cap.value(span, 1 << 20));
}

// =============================================================================================
// valid_json against nlohmann

TEST_CASE("valid_json: agrees with nlohmann on a corpus of texts", "[wire]") {
  const std::vector<std::string> corpus = {
      // Accepted.
      "0", "-0", "1", "-1", "123", "1.5", "-1.5e10", "1E+2", "1e-2", "0.0", "1e-400",
      "18446744073709551615", "18446744073709551616", "123456789012345678901234567890",
      "1.7976931348623157e308", "true", "false", "null", "\"\"", "\"a\"", " \t\r\n1 \t\r\n",
      "[]", "{}", "[ ]", "{ }", "[1,2,3]", R"({"a":1,"b":[true,false,null],"c":{"d":"e"}})",
      R"({"a":1,"a":2})", R"(["\"\\\/\b\f\n\r\t"])", R"("\u0000")", R"("\u00e9\u20AC")",
      R"("\ud83d\ude00")", R"("\uD83D\uDE00")", R"("\udbff\udfff")", R"("\ud800\udc00")",
      R"("\uffff\ufffe\ue000")", "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"", "\"\x7f\"",
      R"([[[[[[[[[[]]]]]]]]]])", R"({"":""})",
      // Refused.
      "", " ", "[", "]", "{", "}", "[1,]", "[,1]", "{\"a\":1,}", "{\"a\"}", "{\"a\":}", "{1:2}",
      "{'a':1}", "'a'", "\"a", "a", "tru", "nul", "True", "NULL", "NaN", "Infinity", "-Infinity",
      "+1", "01", "-01", "1.", ".5", "1e", "1e+", "-", "--1", "0x10", "1 2", "[1 2]", "\"\\x\"",
      "\"\\u12\"", "\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
      "\"\\ud800\\ud800\"", "\"\\ud800x\"", "\"\\ude00\\ud83d\"", "\"\x01\"", "\"\t\"",
      "\"\n\"", "\"\xFF\"", "\"\xC0\xAF\"", "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"",
      "\"\xE2\x82\"", "1e400", "-1e400", "[1e999]", "\f1", "1\f", "/*c*/1", "[1]//c",
      std::string("\0", 1), std::string("\"\0\"", 3)};
  for (const auto& t : corpus) check_agrees(t);
}

TEST_CASE("valid_json: agrees with nlohmann on generated values and their mutations",
          "[wire]") {
  std::mt19937_64 rng(20240611);  // fixed seed: the same corpus on every run
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  const std::vector<std::string> pieces = {
      "a", "Z", " ", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f",
      "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xEF\xBF\xBF", "{", "}", "[", "]", ":",
      ","};
  std::function<nlohmann::json(int)> gen = [&](int depth) -> nlohmann::json {
    switch (depth > 4 ? pick(5) : pick(7)) {
      case 0: return nullptr;
      case 1: return pick(2) == 0;
      case 2: return static_cast<std::int64_t>(rng()) >> pick(64);
      case 3: {
        double d = std::ldexp(static_cast<double>(rng() % 1000000) - 500000.0,
                              static_cast<int>(pick(200)) - 100);
        return d;
      }
      case 4: {
        std::string s;
        for (std::size_t i = 0, n = pick(8); i < n; ++i) s += pieces[pick(pieces.size())];
        return s;
      }
      case 5: {
        auto a = nlohmann::json::array();
        for (std::size_t i = 0, n = pick(4); i < n; ++i) a.push_back(gen(depth + 1));
        return a;
      }
      default: {
        auto o = nlohmann::json::object();
        for (std::size_t i = 0, n = pick(4); i < n; ++i)
          o[std::string(1, static_cast<char>('a' + pick(26)))] = gen(depth + 1);
        return o;
      }
    }
  };
  const std::string mutants = "\"\\{}[]:,0123456789eE-+.tfnu \x01\x7f\x80\xC3\xFF";
  int accepted = 0, refused = 0;
  for (int i = 0; i < 1500; ++i) {
    const nlohmann::json v = gen(0);
    const std::string text = v.dump(pick(2) ? -1 : 1);
    {
      INFO("generated: " << printable(text));
      REQUIRE(scan(text));
      json_cursor c(text);
      std::string_view span;
      REQUIRE(c.value(span, depth_limit));
      CHECK(nlohmann::json::parse(span) == v);
    }
    // A dozen one-byte edits of each text: replace, insert, delete.
    for (int m = 0; m < 12 && !text.empty(); ++m) {
      std::string t = text;
      const std::size_t at = pick(t.size());
      switch (pick(3)) {
        case 0: t[at] = mutants[pick(mutants.size())]; break;
        case 1: t.insert(at, 1, mutants[pick(mutants.size())]); break;
        default: t.erase(at, 1); break;
      }
      check_agrees(t);
      (scan(t) ? accepted : refused)++;
    }
  }
  // The mutations exercised both verdicts.
  CHECK(accepted > 1000);
  CHECK(refused > 1000);
}

TEST_CASE("valid_json: where the scanner is deliberately stricter than nlohmann", "[wire]") {
  // Bounded cost on the receive path: nesting, number length, and nothing before the value.
  const std::string deep = std::string(depth_limit + 1, '[') + std::string(depth_limit + 1, ']');
  const char* error = "";
  CHECK(nlohmann_parse(deep));
  CHECK_FALSE(scan(deep, &error));
  CHECK_THAT(std::string(error), Catch::Contains("nested too deep"));
  const std::string ok_deep = std::string(depth_limit, '[') + std::string(depth_limit, ']');
  CHECK(scan(ok_deep));

  const std::string long_number(max_number_chars + 1, '1');
  CHECK(nlohmann_parse(long_number));
  CHECK_FALSE(scan(long_number, &error));
  CHECK_THAT(std::string(error), Catch::Contains("too long"));
  CHECK(scan(std::string(max_number_chars, '1')));
  CHECK_FALSE(scan("0." + std::string(max_number_chars, '1')));

  const std::string bom = "\xEF\xBB\xBF" "1";
  CHECK(nlohmann_parse(bom));
  CHECK_FALSE(scan(bom));
}

TEST_CASE("valid_json: trailing text and the error out-parameter", "[wire]") {
  const char* error = nullptr;
  CHECK_FALSE(valid_json("1 2", depth_limit, &error));
  REQUIRE(error != nullptr);
  CHECK_THAT(std::string(error), Catch::Contains("trailing"));
  error = nullptr;
  CHECK(valid_json(" [1] ", depth_limit, &error));
  CHECK(error == nullptr);  // untouched on success
  CHECK_FALSE(valid_json("[1", depth_limit));  // no out-parameter: fine
}

// =============================================================================================
// json_unescape

TEST_CASE("json_unescape: every escape, checked against nlohmann", "[wire]") {
  struct example {
    const char* literal;
    std::string expected;
  };
  const std::vector<example> examples = {
      {R"("plain")", "plain"},
      {R"("\"\\\/")", "\"\\/"},
      {R"("\b\f\n\r\t")", "\b\f\n\r\t"},
      {R"("\u0041\u0062")", "Ab"},
      {R"("\u0000")", std::string("\0", 1)},
      {R"("\u001f\u007f")", "\x1f\x7f"},
      {R"("\u00e9\u00E9")", "\xC3\xA9\xC3\xA9"},
      {R"("\u20ac")", "\xE2\x82\xAC"},
      {R"("\uffff")", "\xEF\xBF\xBF"},
      {R"("\ud83d\ude00")", "\xF0\x9F\x98\x80"},
      {R"("\uD83D\uDE00x")", "\xF0\x9F\x98\x80x"},
      {R"("\ud800\udc00")", "\xF0\x90\x80\x80"},
      {R"("\udbff\udfff")", "\xF4\x8F\xBF\xBF"},
      {R"("a\ud83d\ude00\ud83d\ude01b")", "a\xF0\x9F\x98\x80\xF0\x9F\x98\x81" "b"},
      {"\"\xC3\xA9 raw\"", "\xC3\xA9 raw"},
      {R"("\\u0041")", "\\u0041"},  // an escaped backslash, then plain text
      {R"("\\\"")", "\\\""},
  };
  for (const auto& e : examples) {
    INFO(e.literal);
    bool esc;
    auto contents = contents_of(e.literal, esc);
    CHECK(json_unescape(contents) == e.expected);
    CHECK(nlohmann::json::parse(e.literal).get<std::string>() == e.expected);
  }
}

// =============================================================================================
// json_escape_append

TEST_CASE("json_escape_append: control characters, quotes, backslashes", "[wire]") {
  std::string out = "prefix:";
  json_escape_append(out, "a\"b\\c");
  CHECK(out == R"(prefix:"a\"b\\c")");  // appends, quotes included

  out.clear();
  json_escape_append(out, "");
  CHECK(out == "\"\"");

  out.clear();
  json_escape_append(out, "\n\r\t");
  CHECK(out == R"("\n\r\t")");

  // Every control character comes out escaped, so a frame never holds a raw newline.
  for (int c = 0; c < 0x20; ++c) {
    INFO("character " << c);
    const std::string s = std::string("x") + static_cast<char>(c) + "y";
    out.clear();
    json_escape_append(out, s);
    for (char ch : out) CHECK(static_cast<unsigned char>(ch) >= 0x20);
    CHECK(scan(out));
    CHECK(nlohmann::json::parse(out).get<std::string>() == s);
    bool esc;
    CHECK(json_unescape(contents_of(out, esc)) == s);
    CHECK(esc);
  }
  // UTF-8 and DEL pass through unchanged.
  out.clear();
  json_escape_append(out, "\xC3\xA9\xF0\x9F\x98\x80\x7f");
  CHECK(out == "\"\xC3\xA9\xF0\x9F\x98\x80\x7f\"");
}

TEST_CASE("json_escape_append: matches nlohmann's dump where both escape alike", "[wire]") {
  // nlohmann writes \b and \f short and other control characters as \u00XX, as we do; strings
  // without \b and \f come out byte for byte the same.
  for (const std::string& s :
       {std::string("plain"), std::string("quote \" backslash \\ slash /"),
        std::string("lines\nand\r\ttabs"), std::string("\x01\x02\x1f"),
        std::string("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), std::string("\0 nul", 5),
        std::string("}{][,:")}) {
    INFO(printable(s));
    std::string out;
    json_escape_append(out, s);
    CHECK(out == nlohmann::json(s).dump());
  }
}

TEST_CASE("json_escape_append: any bytes give a string every decoder accepts", "[wire]") {
  // Free text (a host name, an error message) may hold anything; the literal written must stay
  // valid JSON, or every receiver would drop the frame carrying it.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string s(static_cast<std::size_t>(rng() % 24), '\0');
    for (auto& ch : s) {
      // Bias towards the interesting bytes: ASCII, control, lead and continuation bytes.
      switch (rng() % 4) {
        case 0: ch = static_cast<char>(rng() % 0x20); break;
        case 1: ch = static_cast<char>(0x80 + rng() % 0x80); break;
        default: ch = static_cast<char>(rng() % 0x80); break;
      }
    }
    INFO("bytes: " << printable(s));
    std::string out;
    json_escape_append(out, s);
    CHECK(scan(out));
    auto parsed = nlohmann_parse(out);
    REQUIRE(parsed);
    REQUIRE(parsed->is_string());
    if (valid_utf8(s)) {
      // Valid text round-trips exactly.
      CHECK(parsed->get<std::string>() == s);
      bool esc;
      CHECK(json_unescape(contents_of(out, esc)) == s);
    }
  }
  // Ill-formed bytes become U+FFFD, one per byte; the valid text around them is kept.
  std::string out;
  json_escape_append(out, "a\xFF" "b\xC3" "c\xED\xA0\x80" "d");
  auto parsed = nlohmann_parse(out);
  REQUIRE(parsed);
  CHECK(parsed->get<std::string>() ==
        "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "d");
}

TEST_CASE("json_escape_append / json_unescape round trip for generated strings", "[wire]") {
  std::mt19937_64 rng(99);
  const std::vector<std::string> pieces = {
      "a", "Z", "0", " ", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", std::string(1, '\0'),
      "\x1f", "\x7f", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF",
      "\\u0041", "\\\\"};
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    for (std::size_t k = 0, n = rng() % 12; k < n; ++k) s += pieces[rng() % pieces.size()];
    INFO(printable(s));
    std::string out;
    json_escape_append(out, s);
    bool esc;
    const auto contents = contents_of(out, esc);
    CHECK(json_unescape(contents) == s);
    // nlohmann reads the same string back, and its own escaping unescapes to it too.
    CHECK(nlohmann::json::parse(out).get<std::string>() == s);
    const std::string theirs = nlohmann::json(s).dump();
    CHECK(json_unescape(contents_of(theirs, esc)) == s);
  }
}
