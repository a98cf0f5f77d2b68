// wire/encode.cpp: frame_writer, the one place frames are put into bytes.
#include "wire/encode.hpp"

#include "wire/json_scan.hpp"

#include <charconv>
#include <cstring>

namespace peerbus::detail::wire {

frame_writer::frame_writer(std::string& out, frame_type type, std::uint64_t from)
    : out_(out), start_(out.size()) {
  out_ += "{\"v\":1,\"type\":\"";
  out_ += to_string(type);
  out_ += '"';
  id("from", from);
}

void frame_writer::key(std::string_view k) {
  out_ += ",\"";
  out_ += k;
  out_ += "\":";
}

frame_writer& frame_writer::str(std::string_view k, std::string_view plain) {
  key(k);
  out_ += '"';
  out_ += plain;
  out_ += '"';
  return *this;
}

frame_writer& frame_writer::text(std::string_view k, std::string_view any) {
  key(k);
  json_escape_append(out_, any);
  return *this;
}

frame_writer& frame_writer::uint(std::string_view k, std::uint64_t v) {
  key(k);
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out_.append(buf, r.ptr);
  return *this;
}

frame_writer& frame_writer::int64(std::string_view k, std::int64_t v) {
  key(k);
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out_.append(buf, r.ptr);
  return *this;
}

frame_writer& frame_writer::boolean(std::string_view k, bool v) {
  key(k);
  out_ += v ? "true" : "false";
  return *this;
}

frame_writer& frame_writer::id(std::string_view k, std::uint64_t v) {
  key(k);
  char buf[18];
  buf[0] = '"';
  format_hex_id(v, buf + 1);
  buf[17] = '"';
  out_.append(buf, sizeof buf);
  return *this;
}

frame_writer& frame_writer::raw(std::string_view k, std::string_view json) {
  key(k);
  out_ += json;
  return *this;
}

std::size_t frame_writer::finish() {
  out_ += '}';
  return out_.size() - start_;
}

std::string msg_head(std::uint64_t from, std::string_view name) {
  std::string head;
  frame_writer(head, frame_type::msg, from).str("name", name);
  head += ",\"seq\":";  // what key("seq") writes
  return head;
}

std::size_t write_msg(char* out, std::string_view head, std::uint64_t seq, std::int64_t ts,
                      std::string_view topic, std::string_view data) noexcept {
  char* p = out;
  auto put = [&p](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  put(head);
  p = std::to_chars(p, p + 20, seq).ptr;
  put(",\"ts\":");
  p = std::to_chars(p, p + 20, ts).ptr;
  put(",\"topic\":\"");
  put(topic);
  put("\",\"data\":");
  put(data);
  *p++ = '}';
  return static_cast<std::size_t>(p - out);
}

void append_body(std::string& out, std::string_view body) {
  char buf[24];
  buf[0] = '\n';
  buf[1] = body_mark;
  auto r = std::to_chars(buf + 2, buf + sizeof buf - 1, body.size());
  *r.ptr++ = '\n';
  out.append(buf, r.ptr);
  out += body;
}

std::size_t body_overhead(std::size_t n) noexcept {
  std::size_t digits = 1;
  for (; n >= 10; n /= 10) ++digits;
  return digits + 3;
}

}  // namespace peerbus::detail::wire
