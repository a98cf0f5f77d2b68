// wire/decode.cpp: decodes one frame into an envelope, classifying every failure by drop reason.
#include "wire/envelope.hpp"
#include "wire/json_scan.hpp"
#include "wire/topic.hpp"

#include <cstring>

namespace peerbus::detail::wire {

namespace {

// Bit per known key, to refuse duplicates (two parsers reading one frame differently is how
// smuggling attacks start) and to check required fields.
enum key_bit : std::uint32_t {
  k_v = 1u << 0, k_type = 1u << 1, k_from = 1u << 2, k_name = 1u << 3, k_seq = 1u << 4,
  k_lo = 1u << 5, k_ts = 1u << 6, k_topic = 1u << 7, k_data = 1u << 8, k_host = 1u << 9,
  k_pid = 1u << 10, k_start = 1u << 11, k_ivl = 1u << 12, k_subs = 1u << 13,
  k_trunc = 1u << 14, k_to = 1u << 15, k_ranges = 1u << 16, k_method = 1u << 17,
  k_cid = 1u << 18, k_error = 1u << 19, k_ctype = 1u << 20, k_frag = 1u << 21,
  k_nfrag = 1u << 22, k_size = 1u << 23, k_since = 1u << 24, k_have = 1u << 25,
  k_ask = 1u << 26, k_fc = 1u << 27, k_rwin = 1u << 28,
  k_cong = 1u << 30,
};

struct known_key {
  std::string_view name;
  key_bit bit;
};
constexpr known_key known_keys[] = {
    {"v", k_v},         {"type", k_type},   {"from", k_from},     {"name", k_name},
    {"seq", k_seq},     {"lo", k_lo},       {"ts", k_ts},         {"topic", k_topic},
    {"data", k_data},   {"host", k_host},   {"pid", k_pid},       {"start", k_start},
    {"ivl", k_ivl},     {"subs", k_subs},   {"trunc", k_trunc},   {"to", k_to},
    {"ranges", k_ranges}, {"method", k_method}, {"cid", k_cid},   {"error", k_error},
    {"ctype", k_ctype}, {"frag", k_frag},   {"nfrag", k_nfrag},   {"size", k_size},
    {"since", k_since}, {"cong", k_cong},   {"have", k_have},     {"ask", k_ask},
    {"fc", k_fc},       {"rwin", k_rwin},
};

// By length first: keys are one to six bytes, and each length has at most ten candidates
// (this runs for every key of every frame).
key_bit key_of(std::string_view k) noexcept {
  if (k.empty() || k.size() > 6) return key_bit{0};
  for (const auto& kk : known_keys)
    if (kk.name.size() == k.size() && kk.name[0] == k[0] && kk.name == k) return kk.bit;
  return key_bit{0};
}

bool type_of(std::string_view s, frame_type& t) noexcept {
  if (s == "msg") t = frame_type::msg;
  else if (s == "hb") t = frame_type::hb;
  else if (s == "bye") t = frame_type::bye;
  else if (s == "nack") t = frame_type::nack;
  else if (s == "adv") t = frame_type::adv;
  else if (s == "call") t = frame_type::call;
  else if (s == "reply") t = frame_type::reply;
  else return false;
  return true;
}

std::uint32_t required_for(frame_type t) noexcept {
  switch (t) {
    case frame_type::msg: return k_seq | k_topic;  // and data, or a body (decode_frame)
    case frame_type::hb: return k_seq | k_name;
    case frame_type::bye: return 0;
    case frame_type::nack: return k_to | k_ranges;
    case frame_type::adv: return k_seq;
    case frame_type::call: return k_seq | k_to | k_method | k_cid;
    case frame_type::reply: return k_seq | k_to | k_cid;
  }
  return 0;
}

const char* missing_detail(std::uint32_t missing) noexcept {
  if (missing & k_seq) return "missing field 'seq'";
  if (missing & k_topic) return "missing field 'topic'";
  if (missing & k_data) return "missing field 'data'";
  if (missing & k_name) return "missing field 'name'";
  if (missing & k_to) return "missing field 'to'";
  if (missing & k_ranges) return "missing field 'ranges'";
  if (missing & k_method) return "missing field 'method'";
  if (missing & k_cid) return "missing field 'cid'";
  return "missing field";
}

// The frame every peerbus sender writes for a published message, in its writer's field order:
//   {"v":1,"type":"msg","from":"<16 hex>","name":"<name>","seq":N,"ts":N,"topic":"<t>","data":V}
// read in one pass without the key search. Anything else (another order, white space between
// fields, more fields, escapes, a body, any doubt) returns false and the general decoder reads
// the frame; for a frame this accepts, the general decoder gives the same envelope (the fuzz
// target and tests/wire/decode_fast_test.cpp check it). Most frames on a busy bus take this path.
bool decode_canonical_msg(std::string_view f, envelope& out) noexcept {
  constexpr std::string_view head = R"({"v":1,"type":"msg","from":")";
  constexpr std::string_view after_from = R"(","name":")";
  constexpr std::string_view after_name = R"(","seq":)";
  constexpr std::string_view after_seq = R"(,"ts":)";
  constexpr std::string_view after_ts = R"(,"topic":")";
  constexpr std::string_view after_topic = R"(","data":)";
  std::size_t i = 0;
  auto literal = [&](std::string_view s) {
    if (f.compare(i, s.size(), s) != 0) return false;
    i += s.size();
    return true;
  };
  // A plain string up to the next quote; valid names and topics hold no quote or backslash, so
  // an escaped quote leaves a backslash behind and the validator refuses it.
  auto plain = [&](std::string_view& s) {
    const auto q = f.find('"', i);
    if (q == std::string_view::npos) return false;
    s = f.substr(i, q - i);
    i = q;
    return true;
  };
  if (f.size() < head.size() + 16 || !literal(head)) return false;
  std::uint64_t from = 0;
  if (!parse_hex_id(f.substr(i, 16), from)) return false;
  i += 16;
  std::string_view name, topic, data;
  if (!literal(after_from) || !plain(name) || !valid_name(name) || !literal(after_name)) return false;
  json_cursor c(f.substr(i));
  std::uint64_t seq = 0;
  if (!c.uint(seq) || seq == 0) return false;
  i = static_cast<std::size_t>(c.pos() - f.data());
  if (!literal(after_seq)) return false;
  std::int64_t ts = 0;
  c = json_cursor(f.substr(i));
  if (!c.int64(ts)) return false;
  i = static_cast<std::size_t>(c.pos() - f.data());
  if (!literal(after_ts) || !plain(topic) || topic.size() > max_topic || !valid_topic(topic) ||
      !literal(after_topic))
    return false;
  c = json_cursor(f.substr(i));
  if (!c.value(data, max_depth - 1) || !c.consume('}')) return false;
  c.skip_ws();
  if (!c.at_end()) return false;
  out.type = frame_type::msg;
  out.from = from;
  out.name = name;
  out.seq = seq;
  out.ts = ts;
  out.topic = topic;
  out.data = data;
  return true;
}

}  // namespace

decode_result decode_frame(std::string_view frame, envelope& out) noexcept {
  static_cast<envelope_fields&>(out) = envelope_fields{};  // the ranges array stays as it was
  out.frame = frame;
  if (decode_canonical_msg(frame, out)) return {};
  auto malformed = [&](const char* why) { return decode_result{false, drop_reason::malformed, why}; };
  if (!frame.empty() && frame.front() == body_mark) return malformed("a body without a frame before it");
  std::string_view header;
  if (!split_body(frame, header, out.body)) return malformed("bad body line (expected ~LENGTH and that many bytes)");
  out.has_body = header.size() != frame.size();
  json_cursor c(header);
  if (!c.consume('{')) return malformed("frame is not a JSON object");

  std::uint32_t seen = 0;
  std::uint64_t version = 0;
  std::string_view type_text;
  // The first field error is kept, not returned at once: a frame of another protocol version
  // may legitimately use other types, and "wrong version" is the more useful verdict.
  decode_result field_error;
  auto bad = [&](drop_reason r, const char* why) {
    if (field_error.ok) field_error = decode_result{false, r, why};
  };

  if (!c.consume('}')) {
    for (;;) {
      std::string_view key;
      bool key_escaped;
      if (!c.string(key, key_escaped)) return malformed(c.error);
      if (!c.consume(':')) return malformed("expected ':'");
      key_bit k = key_escaped ? key_bit{0} : key_of(key);
      if (k != 0) {
        if (seen & k) bad(drop_reason::bad_field, "duplicate field");
        seen |= k;
      }
      c.skip_ws();
      const char* value_start = c.pos();
      char first = c.peek();
      std::string_view sv;
      bool esc = false;
      // Each known key is read with its expected type; a wrong type is recorded and the value
      // skipped as a generic JSON value so the scan can go on.
      bool typed = true;
      switch (k) {
        case k_v:
          typed = first >= '0' && first <= '9' && c.uint(version);
          if (!typed) bad(drop_reason::wrong_version, "field 'v' is not a version number");
          break;
        case k_type:
          typed = first == '"' && c.string(type_text, esc) && !esc;
          if (!typed) bad(drop_reason::bad_field, "field 'type' is not a plain string");
          break;
        case k_from: case k_to: {
          std::uint64_t id = 0;
          typed = first == '"' && c.string(sv, esc) && !esc && parse_hex_id(sv, id);
          if (!typed) bad(drop_reason::bad_field, "peer id is not 16 hex digits");
          (k == k_from ? out.from : out.to) = id;
          break;
        }
        case k_name:
          typed = first == '"' && c.string(sv, esc);
          if (typed && sv.size() > max_name) bad(drop_reason::oversized, "name too long");
          else if (!typed || esc || !valid_name(sv)) bad(drop_reason::bad_field, "name is not [A-Za-z0-9._-]{1,64}");
          out.name = sv;
          break;
        case k_topic:
          typed = first == '"' && c.string(sv, esc);
          if (typed && sv.size() > max_topic) bad(drop_reason::oversized, "topic too long");
          else if (!typed || esc || !valid_topic(sv)) bad(drop_reason::bad_field, "topic is not a valid topic");
          out.topic = sv;
          break;
        case k_method:
          typed = first == '"' && c.string(sv, esc);
          if (typed && sv.size() > max_method) bad(drop_reason::oversized, "method too long");
          else if (!typed || esc || !valid_method(sv)) bad(drop_reason::bad_field, "method is not a valid name");
          out.method = sv;
          break;
        case k_host:
          typed = first == '"' && c.string(sv, esc);
          if (typed && sv.size() > max_host) bad(drop_reason::oversized, "host too long");
          else if (!typed) bad(drop_reason::bad_field, "field 'host' is not a string");
          out.host = sv;
          out.host_escaped = esc;
          break;
        case k_seq: case k_lo: case k_ivl: case k_cid: case k_frag: case k_nfrag: case k_size: case k_cong: {
          std::uint64_t v = 0;
          typed = first >= '0' && first <= '9' && c.uint(v);
          if (!typed) bad(drop_reason::bad_field, "a sequence/counter field is not a non-negative integer");
          (k == k_seq ? out.seq : k == k_lo ? out.lo : k == k_ivl ? out.ivl : k == k_cid ? out.cid
           : k == k_frag ? out.frag : k == k_nfrag ? out.nfrag : k == k_cong ? out.cong : out.size) = v;
          break;
        }
        case k_ctype:
          typed = first == '"' && c.string(sv, esc);
          if (typed && sv.size() > max_ctype) bad(drop_reason::oversized, "ctype too long");
          else if (!typed || esc || !valid_ctype(sv)) bad(drop_reason::bad_field, "ctype is not printable ASCII without quotes");
          out.ctype = sv;
          break;
        case k_ts: case k_pid: case k_start: case k_since: {
          std::int64_t v = 0;
          typed = (first == '-' || (first >= '0' && first <= '9')) && c.int64(v);
          if (!typed) bad(drop_reason::bad_field, "a time/pid field is not an integer");
          (k == k_ts ? out.ts : k == k_pid ? out.pid : k == k_start ? out.start : out.since) = v;
          break;
        }
        case k_trunc: case k_ask: case k_fc:
          typed = (first == 't' || first == 'f') &&
                  c.boolean(k == k_trunc ? out.trunc : k == k_ask ? out.ask : out.fc);
          if (!typed) bad(drop_reason::bad_field, "a flag field (trunc, ask, fc) is not a boolean");
          break;
        case k_have:
          typed = first >= '0' && first <= '9' && c.uint(out.have);
          if (!typed) bad(drop_reason::bad_field, "field 'have' is not a non-negative integer");
          out.has_have = typed;
          break;
        case k_rwin:
          typed = first >= '0' && first <= '9' && c.uint(out.rwin);
          if (!typed) bad(drop_reason::bad_field, "field 'rwin' is not a non-negative integer");
          break;
        case k_data:
          if (!c.value(sv, max_depth - 1)) return malformed(c.error);
          out.data = sv;
          break;
        case k_error:
          if (!c.value(sv, max_depth - 1)) return malformed(c.error);
          if (first != '{' && first != 'n') bad(drop_reason::bad_field, "field 'error' is not an object");
          else if (first == '{') out.error = sv;
          break;
        case k_subs: {
          typed = first == '[';
          if (!typed) { bad(drop_reason::bad_field, "field 'subs' is not an array"); break; }
          json_cursor a(header.substr(static_cast<std::size_t>(c.pos() - header.data())));
          a.consume('[');
          std::size_t n = 0;
          bool ok = true;
          if (!a.consume(']')) {
            do {
              std::string_view pat;
              bool pe;
              if (!a.string(pat, pe)) { ok = false; break; }
              if (pe || !valid_pattern(pat)) { bad(drop_reason::bad_field, "subs holds an invalid pattern"); }
              ++n;
            } while (a.consume(','));
            if (ok && !a.consume(']')) ok = false;
          }
          if (!ok) { typed = false; bad(drop_reason::bad_field, "field 'subs' is not an array of strings"); break; }
          if (n > max_heartbeat_subs) bad(drop_reason::oversized, "too many subscriptions in heartbeat");
          if (!c.value(sv, 2)) return malformed(c.error);
          if (sv.size() > max_heartbeat_sub_bytes) bad(drop_reason::oversized, "subscriptions too long");
          out.subs = sv;
          break;
        }
        case k_ranges: {
          typed = first == '[';
          if (!typed) { bad(drop_reason::bad_field, "field 'ranges' is not an array"); break; }
          json_cursor a(header.substr(static_cast<std::size_t>(c.pos() - header.data())));
          a.consume('[');
          bool ok = true;
          std::size_t n = 0;
          if (!a.consume(']')) {
            do {
              seq_range r;
              if (!a.consume('[') || !a.uint(r.first) || !a.consume(',') || !a.uint(r.last) ||
                  !a.consume(']')) { ok = false; break; }
              if (r.first == 0 || r.first > r.last) { bad(drop_reason::bad_field, "NACK range is empty or starts at 0"); }
              if (n < max_nack_ranges) out.ranges[n] = r;
              ++n;
            } while (a.consume(','));
            if (ok && !a.consume(']')) ok = false;
          }
          if (!ok) { typed = false; bad(drop_reason::bad_field, "field 'ranges' is not an array of [first,last]"); break; }
          if (n > max_nack_ranges) bad(drop_reason::oversized, "too many NACK ranges");
          out.range_count = n < max_nack_ranges ? n : max_nack_ranges;
          if (!c.value(sv, 3)) return malformed(c.error);
          break;
        }
        default:
          typed = false;  // unknown key: ignored (forward compatibility), but must be valid JSON
          break;
      }
      if (!typed) {
        // A typed read may have stopped inside the value: rewind and skip it as generic JSON,
        // so a wrong type costs a field error, not the frame's framing.
        c.seek(value_start);
        if (!c.value(sv, max_depth - 1)) return malformed(c.error);
      }
      if (c.consume('}')) break;
      if (!c.consume(',')) return malformed("expected ',' or '}'");
    }
  }
  c.skip_ws();
  if (!c.at_end()) return malformed("trailing characters after the envelope");

  if (!(seen & k_v)) return {false, drop_reason::bad_field, "missing field 'v'"};
  if (field_error.ok == false && field_error.reason == drop_reason::wrong_version) return field_error;
  if (version != static_cast<std::uint64_t>(wire::version))
    return {false, drop_reason::wrong_version, "unsupported protocol version"};
  if (!(seen & k_type)) return {false, drop_reason::bad_field, "missing field 'type'"};
  if (!field_error.ok) return field_error;
  if (!type_of(type_text, out.type)) return {false, drop_reason::unknown_type, "unknown frame type"};
  if (!(seen & k_from)) return {false, drop_reason::bad_field, "missing field 'from'"};
  if (std::uint32_t missing = required_for(out.type) & ~seen) {
    return {false, drop_reason::bad_field, missing_detail(missing)};
  }
  if (out.has_body) {
    if (out.type != frame_type::msg) return {false, drop_reason::bad_field, "only a msg may have a body"};
    if (seen & k_data) return {false, drop_reason::bad_field, "a msg with a body has no 'data'"};
    if (!(seen & k_ctype)) return {false, drop_reason::bad_field, "missing field 'ctype'"};
  } else if (out.type == frame_type::msg && !(seen & k_data)) {
    return {false, drop_reason::bad_field, "missing field 'data'"};
  }
  if (is_sequenced(out.type) && out.seq == 0)
    return {false, drop_reason::bad_field, "seq must start at 1"};
  if (seen & (k_frag | k_nfrag | k_size)) {
    if ((seen & (k_frag | k_nfrag | k_size)) != (k_frag | k_nfrag | k_size) || !out.has_body)
      return {false, drop_reason::bad_field, "a fragment needs frag, nfrag, size and a body"};
    if (out.nfrag < 2 || out.nfrag > max_fragments || out.frag >= out.nfrag ||
        out.body.empty() || out.body.size() > out.size || out.nfrag > out.size)
      return {false, drop_reason::bad_field, "fragment fields out of range"};
  }
  if (out.type == frame_type::reply && out.data.empty() && out.error.empty())
    return {false, drop_reason::bad_field, "reply has neither data nor error"};
  return {};
}

}  // namespace peerbus::detail::wire
