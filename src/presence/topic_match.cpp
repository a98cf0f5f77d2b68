// presence/topic_match.cpp: the single-pass NATS-style topic matcher and its validity checks.
#include "presence/topic_match.hpp"

#include <cstddef>

#include "wire/limits.hpp"

namespace peerbus::detail {

bool topic_matches(std::string_view pattern, std::string_view topic) noexcept {
  const char* p = pattern.data();
  const char* const p_end = p + pattern.size();
  const char* t = topic.data();
  const char* const t_end = t + topic.size();
  // Invariant at the top of each round: both cursors sit at the start of a segment, and both
  // strings still have that segment (possibly empty). So a trailing `>` here has at least one
  // topic segment to swallow.
  for (;;) {
    if (p < p_end && *p == '>' && p + 1 == p_end) return true;
    if (p < p_end && *p == '*' && (p + 1 == p_end || p[1] == '.')) {
      ++p;
      while (t < t_end && *t != '.') ++t;
    } else {
      // Literal segment: compare byte by byte up to the pattern's next '.'.
      while (p < p_end && *p != '.') {
        if (t == t_end || *t != *p) return false;
        ++p;
        ++t;
      }
      if (t < t_end && *t != '.') return false;  // topic segment is longer
    }
    const bool p_done = p == p_end;
    const bool t_done = t == t_end;
    if (p_done || t_done) return p_done && t_done;
    ++p;  // both at '.'
    ++t;
  }
}

namespace {

// Why the range and exclusions: see valid_topic() in the header.
bool topic_byte(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x21 && u <= 0x7e && c != '"' && c != '\\' && c != '*' && c != '>' && c != '.';
}

bool valid_segments(std::string_view s, bool wildcards) noexcept {
  if (s.empty() || s.size() > wire::max_topic) return false;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = s.find('.', start);
    const bool last = end == std::string_view::npos;
    if (last) end = s.size();
    const std::string_view seg = s.substr(start, end - start);
    if (seg.empty()) return false;
    const bool wildcard = wildcards && (seg == "*" || (last && seg == ">"));
    if (!wildcard) {
      for (char c : seg)
        if (!topic_byte(c)) return false;
    }
    if (last) return true;
    start = end + 1;
  }
}

}  // namespace

bool valid_topic(std::string_view topic) noexcept {
  return valid_segments(topic, false);
}

bool valid_pattern(std::string_view pattern) noexcept {
  return valid_segments(pattern, true);
}

bool is_literal_pattern(std::string_view pattern) noexcept {
  std::size_t start = 0;
  for (;;) {
    std::size_t end = pattern.find('.', start);
    const bool last = end == std::string_view::npos;
    if (last) end = pattern.size();
    const std::string_view seg = pattern.substr(start, end - start);
    if (seg == "*" || (last && seg == ">")) return false;
    if (last) return true;
    start = end + 1;
  }
}

}  // namespace peerbus::detail
