// tests/presence/glob_test.cpp: glob_match edge cases and pathological patterns.
#include "presence/glob.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

using peerbus::detail::glob_match;

TEST_CASE("glob: literal patterns match only themselves", "[presence]") {
  CHECK(glob_match("editor", "editor"));
  CHECK_FALSE(glob_match("editor", "editor2"));
  CHECK_FALSE(glob_match("editor", "edito"));
  CHECK_FALSE(glob_match("editor", "Editor"));
  CHECK_FALSE(glob_match("a", ""));
  CHECK_FALSE(glob_match("", "a"));
}

TEST_CASE("glob: empty pattern and empty text", "[presence]") {
  CHECK(glob_match("", ""));
  CHECK(glob_match("*", ""));
  CHECK(glob_match("**", ""));
  CHECK_FALSE(glob_match("?", ""));
  CHECK_FALSE(glob_match("*?", ""));
}

TEST_CASE("glob: star matches any run, the empty one included", "[presence]") {
  CHECK(glob_match("*", "anything-at.all"));
  CHECK(glob_match("konsole-*", "konsole-"));
  CHECK(glob_match("konsole-*", "konsole-12"));
  CHECK_FALSE(glob_match("konsole-*", "konsole"));
  CHECK(glob_match("*-worker", "db-worker"));
  CHECK(glob_match("*-worker", "-worker"));
  CHECK_FALSE(glob_match("*-worker", "db-worker2"));
  CHECK(glob_match("a*b*c", "abc"));
  CHECK(glob_match("a*b*c", "aXbYc"));
  CHECK(glob_match("a*b*c", "abbbcbc"));
  CHECK(glob_match("a*b*c", "axxbxxbxxc"));
  CHECK_FALSE(glob_match("a*b*c", "acb"));
  CHECK_FALSE(glob_match("a*b*c", "abcx"));
  CHECK_FALSE(glob_match("a*b*c", "xabc"));
  CHECK(glob_match("a**b", "ab"));
  CHECK(glob_match("a***b", "a-b"));
  CHECK(glob_match("*a", "aaaa"));
  CHECK(glob_match("*ab", "aab"));  // needs the star to give back a character
  CHECK(glob_match("*aab", "aaaab"));
  CHECK_FALSE(glob_match("*ab", "aba"));
}

TEST_CASE("glob: question mark is exactly one character", "[presence]") {
  CHECK(glob_match("ed?tor", "editor"));
  CHECK(glob_match("ed?tor", "edXtor"));
  CHECK_FALSE(glob_match("ed?tor", "edtor"));
  CHECK_FALSE(glob_match("ed?tor", "ediitor"));
  CHECK(glob_match("???", "abc"));
  CHECK_FALSE(glob_match("???", "ab"));
  CHECK(glob_match("?*", "a"));
  CHECK(glob_match("*?", "abc"));
  CHECK(glob_match("*?*", "x"));
  CHECK(glob_match("a?c*", "abcdef"));
}

TEST_CASE("glob: every other byte is literal", "[presence]") {
  CHECK(glob_match("a.b", "a.b"));
  CHECK_FALSE(glob_match("a.b", "axb"));  // not a regex
  CHECK(glob_match("[ab]", "[ab]"));      // no character classes
  CHECK_FALSE(glob_match("[ab]", "a"));
  CHECK(glob_match("a\\*", "a\\xyz"));  // no escapes: backslash is literal, star still a star
  CHECK(glob_match("*", "*"));
  CHECK(glob_match("?", "*"));
  CHECK(glob_match(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
  CHECK_FALSE(glob_match(std::string_view("a\0b", 3), "a"));
  CHECK(glob_match("\xff*", "\xff\xfe"));
}

TEST_CASE("glob: pathological patterns finish fast", "[presence]") {
  const auto start = std::chrono::steady_clock::now();
  const std::string as(100000, 'a');
  CHECK_FALSE(glob_match("*a*a*a*a*b", as));
  CHECK(glob_match("*a*a*a*a*a", as));
  CHECK_FALSE(glob_match("*aaaaaaaaaaaaaaaaaaaab", as));
  CHECK_FALSE(glob_match("a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", as));

  // A long pattern of many stars against a long text: backtracking per star would be
  // exponential; retrying only the last star keeps it polynomial.
  std::string many;
  for (int i = 0; i < 2000; ++i) many += "*a";
  many += "*b";
  CHECK_FALSE(glob_match(many, std::string(4000, 'a')));
  CHECK(glob_match(many, std::string(4000, 'a') + "b"));

  std::string stars(100000, '*');
  CHECK(glob_match(stars, as));
  CHECK(glob_match(stars + "a", as));
  CHECK_FALSE(glob_match(stars + "b", as));

  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Generous (sanitizer builds, loaded CI machines); an exponential matcher takes forever.
  CHECK(elapsed < std::chrono::seconds(5));
}
