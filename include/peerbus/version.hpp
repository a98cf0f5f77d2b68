// peerbus/version.hpp: library and wire-protocol versions.
#pragma once

namespace peerbus {

/// Library version, semantic versioning.
inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;

/// Major version of the wire protocol this library speaks (docs/protocol.md). A datagram whose
/// envelope names another major version is dropped and counted as `wrong_version`.
inline constexpr int protocol_version = 1;

/// "0.1.0": the version of the library actually linked (may differ from the header's).
const char* version_string() noexcept;

}  // namespace peerbus
