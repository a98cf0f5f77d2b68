// wire/envelope.hpp: the decoded form of one frame (one JSON envelope), as views into the datagram.
#pragma once

#include "wire/limits.hpp"

#include <peerbus/stats.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace peerbus::detail::wire {

/// "type" of a frame. msg, call and reply are sequenced (they take the sender's next seq and are
/// repaired on NACK); the others are control frames, not sequenced.
enum class frame_type : std::uint8_t { msg, hb, bye, nack, adv, call, reply };
const char* to_string(frame_type) noexcept;
inline bool is_sequenced(frame_type t) noexcept {
  return t == frame_type::msg || t == frame_type::call || t == frame_type::reply;
}

struct seq_range {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  ///< inclusive
};

/// Every field of a decoded frame but the NACK ranges: what decode_frame resets per frame (the
/// ranges array is 1 KiB; only its first range_count entries mean anything).
struct envelope_fields {
  frame_type type = frame_type::msg;
  std::uint64_t from = 0;       ///< sender id
  std::string_view name;        ///< sender name (validated: needs no unescaping)
  std::uint64_t seq = 0;        ///< msg/call/reply: this frame's seq; hb/bye/adv: highest sent
  std::uint64_t lo = 0;         ///< hb/adv: lowest seq the sender still holds (0: none)
  std::int64_t ts = 0;          ///< sender's clock, µs since the Unix epoch
  std::string_view topic;       ///< msg
  std::string_view data;        ///< msg/call/reply: the payload's JSON text, validated, unparsed
  // hb
  std::string_view host;        ///< raw JSON string contents; unescape if host_escaped
  bool host_escaped = false;
  std::int64_t pid = 0;
  std::int64_t start = 0;       ///< µs since the Unix epoch when the sender's bus started
  std::int64_t since = 0;       ///< µs since the Unix epoch when it sent seq 1 (0: nothing yet)
  std::uint64_t ivl = 0;        ///< heartbeat interval, ms
  std::string_view subs;        ///< JSON array of pattern strings, validated
  bool trunc = false;
  bool fc = false;              ///< hb: the sender reports its progress (nack `have`); wait for it
  std::uint64_t rwin = 0;       ///< hb, with fc: bytes it takes ahead of its `have` (0: no bound)
  bool ask = false;             ///< adv: the sender asks its receivers for their `have` now
  // nack, call, reply
  std::uint64_t to = 0;         ///< the peer addressed
  std::size_t range_count = 0;
  std::uint64_t cong = 0;       ///< nack: the NACKer's count of congestion episodes (0: none)
  std::uint64_t have = 0;       ///< nack: every seq <= have of `to` is held or given up by the NACKer
  bool has_have = false;        ///< nack: `have` was present
  std::string_view method;      ///< call
  std::uint64_t cid = 0;        ///< call/reply correlation id
  std::string_view error;       ///< reply: JSON object text {"code":..,"message":..} or empty
  // msg with a body (binary payload, or a fragment of a large message)
  std::string_view body;        ///< the raw bytes after "~N\n"; empty when has_body is false
  bool has_body = false;
  std::string_view ctype;       ///< content type of the body ("application/octet-stream")
  std::uint64_t frag = 0;       ///< fragment index, 0-based (fragments only)
  std::uint64_t nfrag = 0;      ///< fragments in the message; 0: not a fragment
  std::uint64_t size = 0;       ///< fragments: the whole message's bytes

  std::string_view frame;       ///< the whole frame's bytes (JSON text, and its body if any)
};

/// One decoded frame. Every view points into the datagram it was decoded from and lives as long
/// as those bytes. Fields a frame type does not use stay at their zero value.
struct envelope : envelope_fields {
  std::array<seq_range, max_nack_ranges> ranges{};  ///< nack: the first range_count are set
};

/// Outcome of decoding one frame. On failure `reason` is the counter to bump and `detail` a
/// static human-readable explanation ("missing field 'seq'").
struct decode_result {
  bool ok = true;
  drop_reason reason = drop_reason::malformed;
  const char* detail = "";
  explicit operator bool() const noexcept { return ok; }
};

/// Decodes one frame: a single JSON object, optionally followed by '\n', "~N", '\n' and the N
/// bytes of its body (as for_each_frame hands it on).
decode_result decode_frame(std::string_view frame, envelope& out) noexcept;

/// Where the frame starting at `pos` ends (exclusive): at its '\n', or after its body when the
/// next line starts with '~'. A frame that is itself a body line ("~N" with no JSON before it)
/// or whose body line is broken extends to the end of its body, or of the datagram, so that
/// decode_frame refuses it as one frame without the splitter parsing anything.
std::size_t frame_end(std::string_view datagram, std::size_t pos) noexcept;
/// Splits one frame into its JSON text and its body. False when what follows the JSON text's
/// '\n' is a broken body line or not followed by exactly that many bytes. No '\n' followed by
/// '~': no body (true, the whole frame is the header).
bool split_body(std::string_view frame, std::string_view& header, std::string_view& body) noexcept;

/// Splits a datagram into frames (separated by '\n'; a body belongs to the frame before it)
/// and calls `on_frame(frame_bytes)` for each non-empty one; returns a failure (without calling)
/// when the datagram as a whole is unusable: empty, larger than max_datagram, sealed, or too
/// many frames.
template <class F>
decode_result for_each_frame(std::string_view datagram, F&& on_frame);

/// Whether two decodings of a frame agree field by field (the views' contents, not where they
/// point; `frame` is not compared). Tests and the fuzz target check the decoder's fast path
/// against the general one with it.
bool same_decoding(const envelope& a, const envelope& b) noexcept;

/// Parses a hex id: exactly 16 lowercase or uppercase hex digits.
bool parse_hex_id(std::string_view s, std::uint64_t& out) noexcept;
/// Writes 16 lowercase hex digits to `out` (which must hold 16 chars).
void format_hex_id(std::uint64_t id, char* out) noexcept;

/// Names: 1..max_name characters of [A-Za-z0-9._-]. Methods: the same plus '/' and ':'.
bool valid_name(std::string_view s) noexcept;
bool valid_method(std::string_view s) noexcept;
/// Content types: 1..max_ctype bytes of printable ASCII without '"' and '\\' (never escaped).
bool valid_ctype(std::string_view s) noexcept;

/// Sealed datagrams start with this magic (see docs/protocol.md); open ones with '{'.
inline constexpr std::string_view sealed_magic = "PBS1";

template <class F>
decode_result for_each_frame(std::string_view datagram, F&& on_frame) {
  if (datagram.empty()) return {false, drop_reason::malformed, "empty datagram"};
  if (datagram.size() > max_datagram) return {false, drop_reason::oversized, "datagram too large"};
  if (datagram.substr(0, sealed_magic.size()) == sealed_magic)
    return {false, drop_reason::unauthenticated, "sealed datagram on an open bus"};
  // Too many frames makes the whole datagram unusable, so they are counted before any is handed
  // on. Each frame takes a byte and a '\n', so only a datagram this large can hold too many.
  if (datagram.size() > 2 * max_frames_per_datagram) {
    std::size_t frames = 0;
    for (std::size_t pos = 0; pos < datagram.size();) {
      const std::size_t end = frame_end(datagram, pos);
      if (end > pos && ++frames > max_frames_per_datagram)
        return {false, drop_reason::oversized, "too many frames in one datagram"};
      pos = end == pos ? end + 1 : end;
    }
  }
  std::size_t frames = 0;
  std::size_t pos = 0;
  while (pos < datagram.size()) {
    const std::size_t end = frame_end(datagram, pos);
    if (end > pos) {
      ++frames;
      on_frame(datagram.substr(pos, end - pos));
      pos = end;  // at the '\n' after a frame (an empty frame next time round) or at the end
    } else {
      pos = end + 1;
    }
  }
  if (frames == 0) return {false, drop_reason::malformed, "datagram holds no frame"};
  return {};
}

}  // namespace peerbus::detail::wire
