// peerbus/log.hpp: the log hook through which the library reports; it never prints by itself.
#pragma once

#include <functional>
#include <string_view>

namespace peerbus {

enum class log_level { debug, info, warning, error };

/// Receives every report of the library (a capped receive buffer, a send error...).
/// Called from whichever thread noticed the condition; keep it short and thread-safe.
/// The default (an empty function) discards everything: the library prints nothing.
using log_handler = std::function<void(log_level, std::string_view)>;

const char* to_string(log_level) noexcept;

}  // namespace peerbus
