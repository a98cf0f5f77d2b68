// peerbus/key_file.hpp: key files of sealed buses: create, identify, where key=auto keeps one.
#pragma once

#include <optional>
#include <string>

namespace peerbus {

/// Writes a new random bus key (256 bits, as 64 hex digits and a line feed) to `path` with mode
/// 0600. The file appears complete or not at all. Returns the key's id (8 hex digits, the id
/// sealed datagrams carry), or nullopt when `path` exists and `overwrite` is false. Throws
/// std::system_error when the file cannot be written.
///
///     if (!peerbus::create_key_file("/home/me/.config/app/bus.key"))
///       std::cerr << "already there\n";
///     peerbus::options o;
///     o.key_file = "/home/me/.config/app/bus.key";   // every process given it joins sealed
std::optional<std::string> create_key_file(const std::string& path, bool overwrite = false);

/// The id (8 hex digits) of the key `spec` names, a file path or "auto", checked as a bus would
/// check it. Throws config_error naming the file and the fix when it is unusable.
std::string key_file_id(const std::string& spec);

/// Where key=auto keeps this user's key: $XDG_RUNTIME_DIR/peerbus/bus.key. Throws config_error
/// when XDG_RUNTIME_DIR is not set.
std::string auto_key_path();

}  // namespace peerbus
