// seal/sealer.hpp: seals datagrams (XChaCha20-Poly1305 under the bus key) and opens them, refusing
// forgeries, other keys, replays and stale datagrams.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <peerbus/stats.hpp>
#include <string>
#include <string_view>

#include "seal/key_file.hpp"
#include "seal/replay_guard.hpp"
#include "wire/envelope.hpp"
#include "wire/limits.hpp"

namespace peerbus::detail::seal {

/// The sealed datagram (docs/protocol.md, "Sealed datagrams"); integers big-endian:
///
///   0  magic "PBS1"            4
///   4  key id                  4   key_id(key)
///   8  sender id               8   the sender's peer id
///  16  datagram counter        8   per sender, from 1, +1 per datagram
///  24  sender timestamp        8   µs since the Unix epoch (signed)
///  32  nonce                  24   never repeats under a key
///  56  ciphertext + tag   n + 16   the open datagram, encrypted; tag authenticates it and 0..55
inline constexpr std::size_t header_size = 56;
inline constexpr std::size_t tag_size = 16;
inline constexpr std::size_t overhead = header_size + tag_size;
/// The largest open datagram that still fits sealed.
inline constexpr std::size_t max_plain = wire::max_datagram - overhead;

struct open_result {
  bool ok = true;
  drop_reason reason = drop_reason::unauthenticated;
  const char* detail = "";   ///< static text: "authentication failed", "replayed"...
  std::string_view plain;    ///< ok: the opened datagram, in the caller's buffer
  std::uint64_t sender = 0;  ///< from the header (authenticated once ok)
  std::uint64_t counter = 0;
  explicit operator bool() const noexcept { return ok; }
};

/// One bus's sealing state: the keys derived from the bus key, its own counter (send side) and
/// the replay guard (receive side).
///
/// Threads: seal() must not run concurrently with itself, nor open() with itself, but a seal()
/// and an open() may run at the same time (the bus seals under its send mutex and opens on its
/// strand).
class sealer {
 public:
  /// `sender_id`: this bus's peer id, written into every datagram it seals.
  sealer(const key& k, std::uint64_t sender_id, replay_guard guard = replay_guard{});
  ~sealer();
  sealer(const sealer&) = delete;
  sealer& operator=(const sealer&) = delete;

  std::uint32_t key_id() const noexcept { return key_id_; }

  /// Seals `plain` (at most max_plain bytes) into `out`, replacing what it held; `now_us` is
  /// the sender timestamp. Takes the next counter.
  void seal(std::string_view plain, std::string& out, std::int64_t now_us);

  /// Opens `sealed` into `out` (at least sealed.size() bytes; a receive buffer): checks magic,
  /// size and key id, authenticates and decrypts, then asks the replay guard, which records it.
  /// Failures are values: `unauthenticated` (not sealed, another key, forged or damaged),
  /// `malformed` (sealed but shorter than a header and tag), `replayed` (seen before, too far
  /// behind, or stale) and `implausible` (from the future, counter 0).
  open_result open(std::string_view sealed, char* out, std::size_t out_size, std::int64_t now_us);
  /// The same into a string (tests): `out` is resized to the plaintext.
  open_result open(std::string_view sealed, std::string& out, std::int64_t now_us);

  const replay_guard& guard() const noexcept { return guard_; }

 private:
  std::array<unsigned char, 32> aead_key_{};
  std::uint32_t key_id_;
  std::uint64_t sender_;
  // Send side.
  std::uint64_t counter_ = 0;
  std::array<unsigned char, 16> nonce_prefix_{};  // random per sealer; the counter follows
  // Receive side.
  replay_guard guard_;
};

}  // namespace peerbus::detail::seal
