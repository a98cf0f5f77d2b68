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

}  // namespace peerbus::detail::wire
