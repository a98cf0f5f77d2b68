// peerbus/peer.hpp: who is on the bus: peer identities, the presence snapshot and peer events.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace peerbus {

/// A peer's unique id: 64 random bits drawn when its bus starts, so a restarted process is a
/// new peer. Printed as 16 lowercase hex digits.
struct peer_id {
  std::uint64_t value = 0;

  std::string str() const;
  /// Exactly 16 hex digits, else nullopt.
  static std::optional<peer_id> parse(std::string_view text);

  friend bool operator==(peer_id a, peer_id b) { return a.value == b.value; }
  friend bool operator!=(peer_id a, peer_id b) { return a.value != b.value; }
  friend bool operator<(peer_id a, peer_id b) { return a.value < b.value; }
};

/// What a peer announced about itself, and when we last heard it.
struct peer_info {
  peer_id id;
  std::string name;     ///< shared by instances ("editor")
  std::string display;  ///< unique enough for people: "editor@3f9a"
  std::string host;
  std::int64_t pid = 0;
  std::chrono::system_clock::time_point started;  ///< when the peer's bus started
  std::chrono::milliseconds heartbeat_interval{0};
  std::vector<std::string> subscriptions;  ///< topic patterns it listens to
  bool subscriptions_truncated = false;    ///< it has more than the heartbeat carries
  std::uint64_t highest_seq = 0;           ///< highest sequence number it has sent
  std::chrono::steady_clock::time_point last_heard;
};

enum class peer_event_kind {
  joined,   ///< first heard (its announce)
  left,     ///< said goodbye (clean exit, SIGINT/SIGTERM in the CLI)
  expired,  ///< silent for its expiry time (killed, hung, unplugged)
};
const char* to_string(peer_event_kind) noexcept;

struct peer_event {
  peer_event_kind kind;
  peer_info peer;
};

using peer_handler = std::function<void(const peer_event&)>;

}  // namespace peerbus
