// wire/json_scan.cpp: the bounded JSON scanner used on the receive path.
#include "wire/json_scan.hpp"

#include "wire/limits.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace peerbus::detail::wire {

bool json_cursor::consume(char c) noexcept {
  skip_ws();
  if (p_ < end_ && *p_ == c) {
    ++p_;
    return true;
  }
  return false;
}

static int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Four hex digits at `p` (bounded by `end`) as a code unit.
static bool hex4(const char* p, const char* end, std::uint32_t& out) noexcept {
  if (end - p < 4) return false;
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    int d = hex_value(p[i]);
    if (d < 0) return false;
    v = (v << 4) | static_cast<std::uint32_t>(d);
  }
  out = v;
  return true;
}

// Length (2..4) of the well-formed UTF-8 sequence whose lead byte (>= 0x80) is at `p`; 0 when it
// is ill-formed (bad lead or continuation, overlong, surrogate, above U+10FFFF), -1 when `end`
// cuts it short.
static int utf8_sequence(const char* p, const char* end) noexcept {
  auto c = static_cast<unsigned char>(*p);
  int extra;
  std::uint32_t cp;
  if ((c & 0xE0) == 0xC0) { extra = 1; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { extra = 2; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { extra = 3; cp = c & 0x07; }
  else return 0;
  if (end - p <= extra) return -1;
  for (int i = 1; i <= extra; ++i) {
    auto cc = static_cast<unsigned char>(p[i]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
      cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return extra + 1;
}

bool json_cursor::string(std::string_view& contents, bool& escaped) noexcept {
  skip_ws();
  if (p_ == end_ || *p_ != '"') return fail("expected a string");
  const char* start = ++p_;
  escaped = false;
  while (p_ < end_) {
    // Eight plain ASCII bytes at a time (no '"', '\\', control character or byte >= 0x80):
    // payload strings are mostly that, and this loop is the decoder's hottest.
    while (end_ - p_ >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p_, 8);
      constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
      const std::uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
      const std::uint64_t special = ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) |
                                    (w - ones * 0x20) | w;
      if (special & highs) break;
      p_ += 8;
    }
    if (p_ == end_) break;
    auto c = static_cast<unsigned char>(*p_);
    if (c == '"') {
      contents = std::string_view(start, static_cast<std::size_t>(p_ - start));
      ++p_;
      return true;
    }
    if (c < 0x20) return fail("control character in string");
    if (c == '\\') {
      escaped = true;
      if (++p_ == end_) break;
      switch (*p_) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
          ++p_;
          break;
        case 'u': {
          std::uint32_t cp = 0;
          if (end_ - p_ < 5) return fail("truncated \\u escape");
          if (!hex4(p_ + 1, end_, cp)) return fail("bad \\u escape");
          // A surrogate is valid only as a high + low pair; nlohmann (message::data()) refuses a
          // lone one, so accepting it here would hand handlers a payload they cannot parse.
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("lone surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo = 0;
            if (end_ - p_ < 11 || p_[5] != '\\' || p_[6] != 'u' ||
                !hex4(p_ + 7, end_, lo) || lo < 0xDC00 || lo > 0xDFFF)
              return fail("lone surrogate in \\u escape");
            p_ += 6;
          }
          p_ += 5;
          break;
        }
        default:
          return fail("bad escape in string");
      }
      continue;
    }
    if (c < 0x80) {
      ++p_;
      continue;
    }
    // UTF-8: validate the sequence so a later full parse (nlohmann) never disagrees with us.
    int n = utf8_sequence(p_, end_);
    if (n < 0) return fail("truncated UTF-8 in string");
    if (n == 0) return fail("invalid UTF-8 in string");
    p_ += n;
  }
  return fail("unterminated string");
}

bool json_cursor::number() noexcept {
  const char* start = p_;
  if (p_ < end_ && *p_ == '-') ++p_;
  if (p_ == end_) return fail("bad number");
  if (*p_ == '0') {
    ++p_;
  } else if (*p_ >= '1' && *p_ <= '9') {
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
  } else {
    return fail("bad number");
  }
  bool is_float = false;
  if (p_ < end_ && *p_ == '.') {
    is_float = true;
    ++p_;
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return fail("bad number");
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
  }
  if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
    is_float = true;
    ++p_;
    if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return fail("bad number");
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
  }
  auto len = static_cast<std::size_t>(p_ - start);
  if (len > max_number_chars) return fail("number too long");
  if (is_float || len > 19) {
    // A full parser turns this into a double: refuse what would overflow to infinity.
    char buf[max_number_chars + 1];
    std::memcpy(buf, start, len);
    buf[len] = '\0';
    if (!std::isfinite(std::strtod(buf, nullptr))) return fail("number out of range");
  }
  return true;
}

bool json_cursor::literal(std::string_view word) noexcept {
  if (static_cast<std::size_t>(end_ - p_) < word.size() ||
      std::memcmp(p_, word.data(), word.size()) != 0)
    return fail("bad literal");
  p_ += word.size();
  return true;
}

bool json_cursor::uint(std::uint64_t& out) noexcept {
  skip_ws();
  if (p_ == end_ || *p_ < '0' || *p_ > '9') return fail("expected a non-negative integer");
  if (*p_ == '0' && end_ - p_ > 1 && p_[1] >= '0' && p_[1] <= '9') return fail("bad number");
  std::uint64_t v = 0;
  while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
    auto d = static_cast<std::uint64_t>(*p_ - '0');
    if (v > (UINT64_MAX - d) / 10) return fail("integer out of range");
    v = v * 10 + d;
    ++p_;
  }
  if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return fail("expected an integer");
  out = v;
  return true;
}

bool json_cursor::int64(std::int64_t& out) noexcept {
  skip_ws();
  // JSON allows no white space between the minus and the digits ("- 1" is not a number).
  const bool neg = p_ < end_ && *p_ == '-';
  if (neg && (++p_ == end_ || *p_ < '0' || *p_ > '9')) return fail("expected an integer");
  std::uint64_t v = 0;
  if (!uint(v)) return false;
  if (neg ? v > static_cast<std::uint64_t>(INT64_MAX) + 1 : v > static_cast<std::uint64_t>(INT64_MAX))
    return fail("integer out of range");
  out = neg ? static_cast<std::int64_t>(0 - v) : static_cast<std::int64_t>(v);
  return true;
}

bool json_cursor::boolean(bool& out) noexcept {
  skip_ws();
  if (peek() == 't' && literal("true")) {
    out = true;
    return true;
  }
  if (peek() == 'f' && literal("false")) {
    out = false;
    return true;
  }
  return fail("expected true or false");
}

bool json_cursor::value(std::string_view& span, int max_depth) noexcept {
  if (max_depth > wire::max_depth) max_depth = wire::max_depth;
  skip_ws();
  const char* start = p_;
  char stack[wire::max_depth];  // '{' or '[' per open container
  int depth = 0;
  std::string_view str;
  bool esc;
  for (;;) {
    // A value starts here.
    skip_ws();
    if (p_ == end_) return fail("truncated JSON");
    char c = *p_;
    bool opened = false;
    if (c == '{' || c == '[') {
      if (depth >= max_depth) return fail("JSON nested too deep");
      stack[depth++] = c;
      ++p_;
      skip_ws();
      if (p_ < end_ && *p_ == (c == '{' ? '}' : ']')) {
        ++p_;
        --depth;
      } else {
        opened = true;
        if (c == '{') {
          if (!string(str, esc)) return false;
          if (!consume(':')) return fail("expected ':'");
        }
      }
    } else if (c == '"') {
      if (!string(str, esc)) return false;
    } else if (c == 't') {
      if (!literal("true")) return false;
    } else if (c == 'f') {
      if (!literal("false")) return false;
    } else if (c == 'n') {
      if (!literal("null")) return false;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      if (!number()) return false;
    } else {
      return fail("unexpected character");
    }
    if (opened) continue;
    // After a complete value: close containers or move to the next element.
    for (;;) {
      if (depth == 0) {
        span = std::string_view(start, static_cast<std::size_t>(p_ - start));
        return true;
      }
      skip_ws();
      if (p_ == end_) return fail("truncated JSON");
      char top = stack[depth - 1];
      if (*p_ == ',') {
        ++p_;
        if (top == '{') {
          if (!string(str, esc)) return false;
          if (!consume(':')) return fail("expected ':'");
        }
        break;  // next value
      }
      if ((top == '{' && *p_ == '}') || (top == '[' && *p_ == ']')) {
        ++p_;
        --depth;
        continue;
      }
      return fail(top == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
}

bool valid_json(std::string_view text, int max_depth, const char** error) noexcept {
  json_cursor c(text);
  std::string_view span;
  bool ok = c.value(span, max_depth);
  if (ok) {
    c.skip_ws();
    if (!c.at_end()) {
      ok = false;
      c.error = "trailing characters after JSON";
    }
  }
  if (!ok && error) *error = c.error;
  return ok;
}

static void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string json_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '\\' || i + 1 >= s.size()) {
      out += c;
      continue;
    }
    char e = s[++i];
    switch (e) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        if (i + 4 >= s.size()) break;  // cannot happen on validated input
        std::uint32_t cp = 0;
        for (int k = 1; k <= 4; ++k) cp = (cp << 4) | static_cast<std::uint32_t>(hex_value(s[i + k]));
        i += 4;
        // A surrogate pair encodes one code point above U+FFFF.
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < s.size() &&
            s[i + 1] == '\\' && s[i + 2] == 'u') {
          std::uint32_t lo = 0;
          for (int k = 3; k <= 6; ++k) lo = (lo << 4) | static_cast<std::uint32_t>(hex_value(s[i + k]));
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone surrogate
        append_utf8(out, cp);
        break;
      }
      default: out += e; break;  // '"', '\\', '/'
    }
  }
  return out;
}

void json_escape_append(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  const char* const end = s.data() + s.size();
  for (const char* p = s.data(); p < end; ++p) {
    const char ch = *p;
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80) {
      // Free text (a host name, an error message) may hold any bytes; the result must still be
      // a string every decoder accepts, so ill-formed UTF-8 becomes U+FFFD, byte by byte.
      int n = utf8_sequence(p, end);
      if (n <= 0) {
        out += "\\ufffd";
      } else {
        out.append(p, static_cast<std::size_t>(n));
        p += n - 1;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

}  // namespace peerbus::detail::wire
