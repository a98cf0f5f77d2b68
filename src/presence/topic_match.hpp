// presence/topic_match.hpp: NATS-style topic matching and topic/pattern validation.
#pragma once

#include <string_view>

namespace peerbus::detail {

/// Does `topic` match the subscription `pattern`? Topics are '.'-separated segments
/// ("file.saved.txt"). In a pattern, a segment that is exactly `*` matches any one segment and a
/// last segment that is exactly `>` matches one or more remaining segments; every other segment
/// matches only itself, byte for byte.
///
///     topic_matches("file.*", "file.saved")       // true
///     topic_matches("file.*", "file.saved.txt")   // false: `*` is one segment
///     topic_matches("file.>", "file.saved.txt")   // true
///     topic_matches("file.>", "file")             // false: `>` needs at least one segment
///     topic_matches(">", "anything.at.all")       // true
///
/// Used by the bus's dispatch for every received message, so it is a single forward walk over
/// both strings: no allocation, no regex, no backtracking, O(|pattern| + |topic|).
///
/// Meant for inputs that passed valid_pattern() / valid_topic(). On other input it is still safe
/// and deterministic: `*` or `>` inside a longer segment, and `>` before the last segment, are
/// plain characters; an empty string is one empty segment.
bool topic_matches(std::string_view pattern, std::string_view topic) noexcept;

/// A topic one can publish to: 1..255 bytes (wire::max_topic) of '.'-separated, non-empty
/// segments of printable ASCII 0x21..0x7e other than '"', '\\', '*' and '>'. Excluding the quote
/// and backslash means a topic never needs JSON escaping; excluding the wildcards means a topic
/// is never mistaken for a pattern.
bool valid_topic(std::string_view topic) noexcept;

/// A subscription pattern: as valid_topic(), except that a segment may be exactly `*`, and the
/// last segment may be exactly `>`. So "a.*.c", "a.>", ">" and "*" are valid; "a*", "a.>.b",
/// "a..b" and "" are not.
bool valid_pattern(std::string_view pattern) noexcept;

/// True if `pattern` holds no wildcard segment, i.e. it matches exactly one topic (itself).
/// Lets dispatch put literal subscriptions in a hash map and scan only the wildcard ones.
bool is_literal_pattern(std::string_view pattern) noexcept;

}  // namespace peerbus::detail
