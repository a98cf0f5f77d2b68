// wire/json_scan.hpp: a bounded JSON scanner that validates and locates values without building them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace peerbus::detail::wire {

/// Walks JSON text in place. Nothing is allocated and nothing recurses: nesting is tracked in a
/// fixed array, so hostile input (deep nesting, huge numbers, bad UTF-8) costs bounded time and
/// no memory. On failure `error` says why (a static string).
class json_cursor {
 public:
  explicit json_cursor(std::string_view text) noexcept
      : p_(text.data()), end_(text.data() + text.size()) {}

  /// Inline: most calls find no white space at all (the sender writes none).
  void skip_ws() noexcept {
    while (p_ < end_ && static_cast<unsigned char>(*p_) <= ' ' &&
           (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n'))
      ++p_;
  }
  bool at_end() const noexcept { return p_ == end_; }
  char peek() const noexcept { return p_ < end_ ? *p_ : '\0'; }
  bool consume(char c) noexcept;
  const char* pos() const noexcept { return p_; }
  /// Moves back to a position this cursor has passed (error cleared).
  void seek(const char* p) noexcept {
    p_ = p;
    error = "";
  }

  /// A string; `contents` is what lies between the quotes, still escaped; `escaped` says whether
  /// any backslash occurred. Validates escapes, control characters and UTF-8.
  bool string(std::string_view& contents, bool& escaped) noexcept;
  /// A non-negative integer that fits 64 bits (no fraction, no exponent).
  bool uint(std::uint64_t& out) noexcept;
  /// An integer that fits int64.
  bool int64(std::int64_t& out) noexcept;
  bool boolean(bool& out) noexcept;
  /// Any value, validated; `span` covers its text.
  bool value(std::string_view& span, int max_depth) noexcept;

  const char* error = "";

 private:
  bool fail(const char* why) noexcept {
    error = why;
    return false;
  }
  bool number() noexcept;
  bool literal(std::string_view word) noexcept;

  const char* p_;
  const char* end_;
};

/// Validates that `text` is exactly one JSON value (surrounding white space allowed).
bool valid_json(std::string_view text, int max_depth, const char** error = nullptr) noexcept;

/// Unescapes the contents of a JSON string (as json_cursor::string returns them).
std::string json_unescape(std::string_view contents);
/// Appends `s` as a JSON string literal, quotes included, escaping what JSON requires.
void json_escape_append(std::string& out, std::string_view s);

}  // namespace peerbus::detail::wire
