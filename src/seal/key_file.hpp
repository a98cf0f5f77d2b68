// seal/key_file.hpp: the bus key: file format, loading (refusing unsafe files), creation, auto.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace peerbus::detail::seal {

inline constexpr std::size_t key_bytes = 32;

/// Makes libsodium usable (sodium_init, once per process; thread-safe). Throws
/// std::runtime_error if it cannot initialise.
void sodium_ready();

/// A 256-bit bus key. Its bytes are wiped from memory when the object goes away.
class key {
 public:
  key() = default;
  explicit key(const std::array<unsigned char, key_bytes>& bytes) : bytes_(bytes) {}
  key(const key&) = default;
  key& operator=(const key&) = default;
  ~key();

  /// A new key from the operating system's random generator.
  static key random();

  const unsigned char* data() const noexcept { return bytes_.data(); }
  bool operator==(const key& o) const noexcept { return bytes_ == o.bytes_; }

 private:
  std::array<unsigned char, key_bytes> bytes_{};
};

/// What tells keys apart on the wire without revealing them: the first 4 bytes of a keyed
/// BLAKE2b-256 of the label "peerbus key id v1" under the key, read big-endian.
std::uint32_t key_id(const key& k);
/// The key id as 8 lowercase hex digits ("3f9a1c2e").
std::string key_id_text(std::uint32_t id);

/// The file format: 64 lowercase hex digits and a line feed. Parsing accepts either case and
/// ignores white space around the digits; anything else is not a key.
std::string key_file_text(const key& k);
std::optional<key> parse_key_text(std::string_view text);

/// Reads a key file. Refused with a config_error naming the file and the fix: a file that does
/// not exist, is not a regular file, is not owned by this user (effective uid), has any
/// permission bit for group or others ("run: chmod 600 PATH"), or does not hold a key.
key load_key_file(const std::string& path);

/// Writes a new random key to `path` with mode 0600 and returns it, or nullopt when `path`
/// exists and `overwrite` is false. The file appears complete or not at all: the key is written
/// to a temporary file in the same directory (O_CREAT|O_EXCL, 0600, fsync), which is then
/// hard-linked to `path` (fails if `path` exists: the O_EXCL of the final name) or, with
/// `overwrite`, renamed over it. Throws std::system_error on other I/O failures.
std::optional<key> try_create_key_file(const std::string& path, bool overwrite);

/// $XDG_RUNTIME_DIR/peerbus/bus.key, the per-user key that key=auto names. Throws config_error
/// when `xdg_runtime_dir` is null, empty or not an absolute path.
std::string auto_key_path(const char* xdg_runtime_dir);

/// key=auto: loads the per-user key, creating the directory (0700) and the key (0600) on first
/// use. Safe when many processes start at once: whoever loses the race to create the file reads
/// the winner's (which is always complete, see try_create_key_file). The directory must belong
/// to this user and be closed to group and others, like the file.
key load_auto_key(const char* xdg_runtime_dir);

/// A key spec as the URL, options::key_file and $PEERBUS_KEY_FILE give it: "auto" (uses
/// $XDG_RUNTIME_DIR) or a file path.
key load_key(const std::string& spec);

}  // namespace peerbus::detail::seal
