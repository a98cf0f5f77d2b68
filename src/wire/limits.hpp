// wire/limits.hpp: protocol constants and every size limit of the wire format, in one place.
#pragma once

#include <cstddef>
#include <cstdint>

namespace peerbus::detail::wire {

inline constexpr int version = 1;  ///< protocol major version ("v")

/// Largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP). Nothing larger is ever sent.
inline constexpr std::size_t max_datagram = 65507;
inline constexpr std::size_t max_topic = 255;
inline constexpr std::size_t max_name = 64;
inline constexpr std::size_t max_host = 255;
inline constexpr std::size_t max_method = 128;
/// Nesting depth of any JSON value in a frame (objects and arrays), the envelope included.
inline constexpr int max_depth = 64;
/// A number token longer than this is refused (huge numbers are a cheap way to burn CPU).
inline constexpr std::size_t max_number_chars = 64;
/// Topic patterns a heartbeat carries; beyond, it sets "trunc":true.
inline constexpr std::size_t max_heartbeat_subs = 32;
inline constexpr std::size_t max_heartbeat_sub_bytes = 4096;
/// Ranges one NACK carries.
inline constexpr std::size_t max_nack_ranges = 64;
/// Frames one datagram carries when several are packed together.
inline constexpr std::size_t max_frames_per_datagram = 4096;

/// A frame's body: the line "~N" after its JSON text, then N raw bytes (docs/protocol.md 3.1).
inline constexpr char body_mark = '~';
/// "ctype" (content type of a body): 1..127 bytes of printable ASCII, no '"' or '\'.
inline constexpr std::size_t max_ctype = 127;
/// The content type of JSON text carried in a body (a fragmented JSON message).
inline constexpr const char* json_ctype = "application/json";
/// Fragments of one message ("nfrag"): 2..2^24.
inline constexpr std::uint64_t max_fragments = std::uint64_t{1} << 24;
/// IP + UDP header bytes under a datagram: what an MTU must also hold.
inline constexpr std::size_t ipv4_udp_overhead = 28;
inline constexpr std::size_t ipv6_udp_overhead = 48;
/// The `mtu=` URL parameter's range.
inline constexpr std::size_t min_mtu = 576;
inline constexpr std::size_t max_mtu = 65535;

}  // namespace peerbus::detail::wire
