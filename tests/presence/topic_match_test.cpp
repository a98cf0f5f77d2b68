// tests/presence/topic_match_test.cpp: NATS-style topic matching and topic/pattern validity.
#include "presence/topic_match.hpp"

#include <catch2/catch.hpp>
#include <string>

using peerbus::detail::is_literal_pattern;
using peerbus::detail::topic_matches;
using peerbus::detail::valid_pattern;
using peerbus::detail::valid_topic;

namespace {

struct match_case {
  const char* pattern;
  const char* topic;
  bool expected;
};

}  // namespace

TEST_CASE("topic_matches: table", "[presence]") {
  const match_case cases[] = {
      // literals
      {"a", "a", true},
      {"a", "b", false},
      {"a.b.c", "a.b.c", true},
      {"a.b.c", "a.b.d", false},
      {"a.b.c", "a.b", false},
      {"a.b", "a.b.c", false},
      {"ab", "a", false},
      {"a", "ab", false},
      {"a.bc", "a.b", false},
      {"a.b", "a.bc", false},
      {"file.saved", "file.saved", true},
      // * : exactly one segment
      {"*", "a", true},
      {"*", "abc", true},
      {"*", "a.b", false},
      {"a.*", "a.b", true},
      {"a.*", "a", false},
      {"a.*", "a.b.c", false},
      {"a.*.c", "a.b.c", true},
      {"a.*.c", "a.xyz.c", true},
      {"a.*.c", "a.b.d", false},
      {"a.*.c", "a.c", false},
      {"a.*.c", "a.b.b.c", false},
      {"*.b", "a.b", true},
      {"*.b", "b", false},
      {"*.*", "a.b", true},
      {"*.*", "a", false},
      {"*.*", "a.b.c", false},
      {"*.*.*", "a.b.c", true},
      // > : one or more remaining segments, last only
      {">", "a", true},
      {">", "a.b.c", true},
      {"a.>", "a.b", true},
      {"a.>", "a.b.c.d", true},
      {"a.>", "a", false},
      {"a.>", "b.c", false},
      {"a.>", "ab.c", false},
      {"a.b.>", "a.b.c", true},
      {"a.b.>", "a.b", false},
      {"a.b.>", "a.c.d", false},
      {"*.>", "a.b", true},
      {"*.>", "a", false},
      {"a.*.>", "a.b.c", true},
      {"a.*.>", "a.b", false},
      // wildcard characters inside longer segments are literal (such patterns are invalid)
      {"a*", "ab", false},
      {"a*", "a*", true},
      {"a.>.b", "a.x.b", false},
      {"a.b>", "a.b>", true},
  };
  for (const auto& c : cases) {
    INFO("pattern=\"" << c.pattern << "\" topic=\"" << c.topic << "\"");
    CHECK(topic_matches(c.pattern, c.topic) == c.expected);
  }
}

TEST_CASE("topic_matches: literal pattern equals topic, byte for byte", "[presence]") {
  const char* topics[] = {"a", "a.b", "x.y.z", "file.saved.txt", "A.B", "a-b_c.d~e"};
  for (const char* p : topics)
    for (const char* t : topics) {
      INFO(p << " vs " << t);
      CHECK(topic_matches(p, t) == (std::string_view(p) == std::string_view(t)));
    }
}

TEST_CASE("topic_matches: long topics", "[presence]") {
  std::string topic;
  for (int i = 0; i < 100; ++i) topic += (i ? ".s" : "s");
  CHECK(topic_matches(topic, topic));
  CHECK(topic_matches(">", topic));
  CHECK(topic_matches("s.>", topic));
  CHECK_FALSE(topic_matches("*", topic));
  std::string stars;
  for (int i = 0; i < 100; ++i) stars += (i ? ".*" : "*");
  CHECK(topic_matches(stars, topic));
  CHECK_FALSE(topic_matches(stars + ".*", topic));
  CHECK_FALSE(topic_matches(stars, topic + ".s"));
}

TEST_CASE("topic_matches: invalid input is safe and deterministic", "[presence]") {
  CHECK(topic_matches("", ""));
  CHECK_FALSE(topic_matches("", "a"));
  CHECK_FALSE(topic_matches("a", ""));
  CHECK(topic_matches("*", ""));
  CHECK(topic_matches("a..b", "a..b"));
  CHECK(topic_matches("a.*.b", "a..b"));
  CHECK_FALSE(topic_matches("a.", "a"));
  CHECK(topic_matches("a.", "a."));
  CHECK_FALSE(topic_matches(".", ""));
  CHECK(topic_matches(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
  CHECK_FALSE(topic_matches(std::string_view("a\0b", 3), "a"));
}

TEST_CASE("valid_topic", "[presence]") {
  CHECK(valid_topic("a"));
  CHECK(valid_topic("file.saved"));
  CHECK(valid_topic("a.b.c.d"));
  CHECK(valid_topic("A-Z_0-9.~!#$%&'()+,/:;<=?@[]^`{|}"));
  CHECK(valid_topic(std::string(255, 'x')));
  CHECK_FALSE(valid_topic(std::string(256, 'x')));
  CHECK_FALSE(valid_topic(""));
  CHECK_FALSE(valid_topic("."));
  CHECK_FALSE(valid_topic(".a"));
  CHECK_FALSE(valid_topic("a."));
  CHECK_FALSE(valid_topic("a..b"));
  CHECK_FALSE(valid_topic("*"));
  CHECK_FALSE(valid_topic(">"));
  CHECK_FALSE(valid_topic("a.*"));
  CHECK_FALSE(valid_topic("a.>"));
  CHECK_FALSE(valid_topic("a*"));
  CHECK_FALSE(valid_topic("a>b"));
  CHECK_FALSE(valid_topic("a b"));
  CHECK_FALSE(valid_topic("a\"b"));
  CHECK_FALSE(valid_topic("a\\b"));
  CHECK_FALSE(valid_topic("a\tb"));
  CHECK_FALSE(valid_topic("a\x7f"));
  CHECK_FALSE(valid_topic("caf\xc3\xa9"));
  CHECK_FALSE(valid_topic(std::string_view("a\0", 2)));
}

TEST_CASE("valid_pattern", "[presence]") {
  CHECK(valid_pattern("a"));
  CHECK(valid_pattern("a.b"));
  CHECK(valid_pattern("*"));
  CHECK(valid_pattern(">"));
  CHECK(valid_pattern("a.*"));
  CHECK(valid_pattern("a.*.c"));
  CHECK(valid_pattern("*.*"));
  CHECK(valid_pattern("a.>"));
  CHECK(valid_pattern("*.>"));
  CHECK(valid_pattern("a.*.>"));
  CHECK(valid_pattern(std::string(255, 'x')));
  CHECK_FALSE(valid_pattern(std::string(256, 'x')));
  CHECK_FALSE(valid_pattern(""));
  CHECK_FALSE(valid_pattern("a..b"));
  CHECK_FALSE(valid_pattern("a."));
  CHECK_FALSE(valid_pattern(".a"));
  CHECK_FALSE(valid_pattern("a*"));
  CHECK_FALSE(valid_pattern("*a"));
  CHECK_FALSE(valid_pattern("**"));
  CHECK_FALSE(valid_pattern("a.>.b"));
  CHECK_FALSE(valid_pattern(">.a"));
  CHECK_FALSE(valid_pattern(">>"));
  CHECK_FALSE(valid_pattern("a>"));
  CHECK_FALSE(valid_pattern("a b"));
  CHECK_FALSE(valid_pattern("a\"b"));
  // every valid topic is a valid pattern
  CHECK(valid_pattern("A-Z_0-9.~!#$%&'()+,/:;<=?@[]^`{|}"));
}

TEST_CASE("is_literal_pattern", "[presence]") {
  CHECK(is_literal_pattern("a"));
  CHECK(is_literal_pattern("a.b.c"));
  CHECK_FALSE(is_literal_pattern("*"));
  CHECK_FALSE(is_literal_pattern(">"));
  CHECK_FALSE(is_literal_pattern("a.*.c"));
  CHECK_FALSE(is_literal_pattern("a.>"));
  // a literal pattern matches exactly itself
  CHECK(topic_matches("a.b.c", "a.b.c"));
}
