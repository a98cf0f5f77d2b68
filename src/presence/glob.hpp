// presence/glob.hpp: shell-style glob matching for peer-name patterns ("konsole-*", "ed?tor").
#pragma once

#include <string_view>

namespace peerbus::detail {

/// Does `text` match `pattern`? `*` matches any run of characters (the empty one included),
/// `?` exactly one character, every other byte itself; there is no escape and no character class,
/// because peer names ([A-Za-z0-9._-]) never contain `*` or `?`.
///
/// Iterative, allocation-free and O(|pattern| * |text|) in the worst case: on a mismatch only the
/// most recent `*` is retried, never the earlier ones, so hostile patterns such as `*a*a*a*a*b`
/// cannot take exponential time.
///
///     glob_match("konsole-*", "konsole-2")  // true
///     glob_match("ed?tor", "editor")        // true
///     glob_match("", "")                    // true; "" matches only ""
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

}  // namespace peerbus::detail
