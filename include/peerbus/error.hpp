// peerbus/error.hpp: the errors peerbus reports, as exceptions and as std::error_code values.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace peerbus {

/// Configuration errors: a bad URL, an interface that is not on this machine, a value out of
/// range. The message names the bad part and how to fix it.
class config_error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Outcomes of operations that are expected to fail now and then (they come back as values).
enum class errc {
  ok = 0,
  bad_topic,          ///< topic is empty, too long or has a character outside the topic grammar
  payload_too_large,  ///< larger than options::max_message_size (or no room beside its header)
  invalid_json,       ///< publish_raw() was handed text that is not one JSON value
  closed,             ///< the bus is closed
  passive,            ///< a passive bus (a monitor) does not send
  send_failed,        ///< the operating system refused the datagram (see the log hook)
  bad_content_type,   ///< publish_bytes() content type empty, too long, or not printable ASCII
};

const std::error_category& category() noexcept;
std::error_code make_error_code(errc e) noexcept;

}  // namespace peerbus

template <>
struct std::is_error_code_enum<peerbus::errc> : std::true_type {};
