// wire/envelope.cpp: small helpers of the envelope: ids, names, frame type names.
#include "wire/envelope.hpp"

namespace peerbus::detail::wire {

const char* to_string(frame_type t) noexcept {
  switch (t) {
    case frame_type::msg: return "msg";
    case frame_type::hb: return "hb";
    case frame_type::bye: return "bye";
    case frame_type::nack: return "nack";
    case frame_type::adv: return "adv";
    case frame_type::call: return "call";
    case frame_type::reply: return "reply";
  }
  return "?";
}

bool parse_hex_id(std::string_view s, std::uint64_t& out) noexcept {
  if (s.size() != 16) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return false;
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  out = v;
  return true;
}

void format_hex_id(std::uint64_t id, char* out) noexcept {
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out[i] = hex[id & 0xF];
    id >>= 4;
  }
}

static bool name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool valid_name(std::string_view s) noexcept {
  if (s.empty() || s.size() > max_name) return false;
  for (char c : s)
    if (!name_char(c)) return false;
  return true;
}

bool valid_method(std::string_view s) noexcept {
  if (s.empty() || s.size() > max_method) return false;
  for (char c : s)
    if (!name_char(c) && c != '/' && c != ':') return false;
  return true;
}


bool valid_ctype(std::string_view s) noexcept {
  if (s.empty() || s.size() > max_ctype) return false;
  for (char c : s)
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  return true;
}

// The body line at `tilde` ("~N\n"): where its N bytes start and how many there are. False when
// the line is not '~', 1..5 digits without a leading zero (or "0"), '\n', or N > max_datagram.
static bool body_line(std::string_view d, std::size_t tilde, std::size_t& start,
                      std::size_t& n) noexcept {
  if (tilde >= d.size() || d[tilde] != body_mark) return false;
  const std::size_t nl = d.find('\n', tilde + 1);
  if (nl == std::string_view::npos) return false;
  const std::string_view digits = d.substr(tilde + 1, nl - tilde - 1);
  if (digits.empty() || digits.size() > 5 || (digits.size() > 1 && digits[0] == '0')) return false;
  n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  start = nl + 1;
  return n <= max_datagram;
}

std::size_t frame_end(std::string_view d, std::size_t pos) noexcept {
  if (pos >= d.size() || d[pos] == '\n') return pos;
  std::size_t tilde = pos;  // a stray body line: one frame of its own, refused by decode_frame
  if (d[pos] != body_mark) {
    const std::size_t nl = d.find('\n', pos);
    if (nl == std::string_view::npos) return d.size();
    if (nl + 1 >= d.size() || d[nl + 1] != body_mark) return nl;
    tilde = nl + 1;
  }
  std::size_t start = 0, n = 0;
  if (!body_line(d, tilde, start, n) || n > d.size() - start) return d.size();
  return start + n;
}

bool split_body(std::string_view frame, std::string_view& header, std::string_view& body) noexcept {
  const std::size_t nl = frame.find('\n');
  header = frame;
  body = {};
  // No body line after the '\n': the JSON scanner judges the line feed (white space, or a raw
  // control character inside a string).
  if (nl == std::string_view::npos || nl + 1 >= frame.size() || frame[nl + 1] != body_mark)
    return true;
  header = frame.substr(0, nl);
  std::size_t start = 0, n = 0;
  if (!body_line(frame, nl + 1, start, n) || start + n != frame.size()) return false;
  body = frame.substr(start);
  return true;
}

bool same_decoding(const envelope& a, const envelope& b) noexcept {
  if (a.type != b.type || a.from != b.from || a.name != b.name || a.seq != b.seq || a.lo != b.lo ||
      a.ts != b.ts || a.topic != b.topic || a.data != b.data || a.host != b.host ||
      a.host_escaped != b.host_escaped || a.pid != b.pid || a.start != b.start || a.ivl != b.ivl ||
      a.subs != b.subs || a.trunc != b.trunc || a.to != b.to || a.range_count != b.range_count ||
      a.cong != b.cong || a.method != b.method || a.cid != b.cid || a.error != b.error ||
      a.body != b.body || a.has_body != b.has_body || a.ctype != b.ctype || a.frag != b.frag ||
      a.nfrag != b.nfrag || a.size != b.size || a.since != b.since || a.have != b.have ||
      a.has_have != b.has_have || a.ask != b.ask || a.fc != b.fc || a.rwin != b.rwin)
    return false;
  for (std::size_t i = 0; i < a.range_count && i < max_nack_ranges; ++i)
    if (a.ranges[i].first != b.ranges[i].first || a.ranges[i].last != b.ranges[i].last) return false;
  return true;
}

}  // namespace peerbus::detail::wire
