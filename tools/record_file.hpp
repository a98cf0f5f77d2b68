// tools/record_file.hpp: the record file format of `peerbus record` / `peerbus replay` (JSON lines,
// see docs/tools.md "record file format"): writing lines, and reading them back up to any damage.
#pragma once

#include <peerbus/bus.hpp>

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

namespace peerbus::tools::record_file {

/// The format version this peerbus writes and reads ("peerbus_record":1 in the header).
inline constexpr int version = 1;

/// First line: {"peerbus_record":1,"url":...,"started":µs,"patterns":[...],"recorder":id}
std::string header_line(std::string_view url, std::int64_t started_us,
                        const std::vector<std::string>& patterns, peer_id recorder);
/// A message: {"t":µs,"topic":..,"from":..,"name":..,"seq":..,"ts":..,"data":<as it travelled>}
/// (`data` always last, copied byte for byte).
std::string message_line(std::int64_t t_us, const message& m);
/// A loss: {"t":µs,"lost":N,"from":..,"name":..,"first":..,"last":..}
std::string loss_line(std::int64_t t_us, const loss_event& e);

struct header {
  int version = 0;
  std::string url;
  std::int64_t started = 0;
};

struct entry {
  enum class kind { message, loss, other };
  kind k = kind::other;
  std::int64_t t = 0;  ///< receive time, µs since the Unix epoch
  std::string topic;
  std::string data;    ///< the payload's JSON text, as recorded when it is intact
  std::string ctype;   ///< a binary message: its content type; `data` is then a base64 string
  std::string from;
  std::string name;
  std::uint64_t seq = 0;
  std::int64_t ts = 0;
  std::uint64_t lost = 0;  ///< kind::loss: how many
};

/// Parses one line (without its newline). False with `error` set when the line is damaged.
bool parse_header(std::string_view line, header& h, std::string& error);
bool parse_entry(std::string_view line, entry& e, std::string& error);

/// Reads a record file front to back and stops at the first damage: a line that is not JSON,
/// not an object, lacks a required field, or is the last one and has no newline (cut off).
class reader {
 public:
  enum class status { ok, end, damaged };

  explicit reader(std::istream& in) : in_(in) {}
  /// The header, which must be the first line.
  status read_header(header& h);
  /// The next entry (message, loss, or a line of a kind this version skips).
  status next(entry& e);

  /// 1-based number of the line last read (the damaged one after status::damaged).
  std::size_t line() const noexcept { return line_; }
  /// Byte offset at which that line starts.
  std::uint64_t offset() const noexcept { return offset_; }
  /// Bytes consumed so far.
  std::uint64_t position() const noexcept { return next_offset_; }
  /// Why the file stopped being readable.
  const std::string& error() const noexcept { return error_; }

 private:
  status read_line(std::string& out);

  std::istream& in_;
  std::size_t line_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t next_offset_ = 0;
  std::string error_;
  std::string buf_;
};

}  // namespace peerbus::tools::record_file
