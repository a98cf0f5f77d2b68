// wire/encode.hpp: writes frames (JSON envelopes) into a reusable buffer, without a JSON DOM.
#pragma once

#include "wire/envelope.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace peerbus::detail::wire {

/// Appends one frame to `out`. Strings that the grammar restricts (names, topics, methods) are
/// written as they are: callers validate them first. Free text (host, error messages) is
/// escaped. Appending to a buffer whose capacity is kept means no allocation per frame.
class frame_writer {
 public:
  frame_writer(std::string& out, frame_type type, std::uint64_t from);
  frame_writer& str(std::string_view key, std::string_view plain);     // no escaping needed
  frame_writer& text(std::string_view key, std::string_view any);      // escaped
  frame_writer& uint(std::string_view key, std::uint64_t v);
  frame_writer& int64(std::string_view key, std::int64_t v);
  frame_writer& boolean(std::string_view key, bool v);
  frame_writer& id(std::string_view key, std::uint64_t id);
  frame_writer& raw(std::string_view key, std::string_view json);      // already JSON text
  /// Closes the object; returns the frame's size in bytes.
  std::size_t finish();

 private:
  void key(std::string_view k);
  std::string& out_;
  std::size_t start_;
};

/// The canonical msg frame, the one frame a sender writes per message, written in one pass
/// (frame_writer writes the same bytes field by field): its head is the same for every message
/// of one sender, so it is built once. For a sender `from` named `name` (a valid name):
///   {"v":1,"type":"msg","from":"<16 hex>","name":"<name>","seq":
std::string msg_head(std::uint64_t from, std::string_view name);
/// The most bytes write_msg writes for a head, topic and data of these sizes.
constexpr std::size_t msg_bound(std::size_t head, std::size_t topic, std::size_t data) noexcept {
  // seq and ts (20 characters each at most) and what stands between: ,"ts": ,"topic":" ","data": }
  return head + topic + data + 20 + 20 + 6 + 10 + 9 + 1;
}
/// Writes at `out` (room for msg_bound) what frame_writer writes for
///   .str("name", ..).uint("seq", seq).int64("ts", ts).str("topic", topic).raw("data", data)
/// and returns its size.
std::size_t write_msg(char* out, std::string_view head, std::uint64_t seq, std::int64_t ts,
                      std::string_view topic, std::string_view data) noexcept;

/// Appends a body to the frame just finished in `out`: '\n', "~N", '\n', then the N bytes.
/// N must be at most max_datagram.
void append_body(std::string& out, std::string_view body);
/// What append_body adds besides the bytes themselves: at most 8 ("\n~65507\n").
std::size_t body_overhead(std::size_t n) noexcept;

}  // namespace peerbus::detail::wire
