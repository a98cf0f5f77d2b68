// peerbus/options.hpp: every setting of a bus in one struct, each with its unit and default.
#pragma once

#include <peerbus/log.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace peerbus {

/// The bus every process joins unless told otherwise. Group and port differ from LCM's
/// 239.255.76.67:7667 so the two never hear each other. TTL 0 and the loopback interface keep
/// every datagram on this machine.
inline constexpr std::string_view default_url = "udpm://239.255.80.66:7780?ttl=0&iface=127.0.0.1";

/// A parsed bus URL: `udpm://GROUP:PORT?ttl=N&iface=ADDRESS&rcvbuf=BYTES&mtu=BYTES&key=PATH`, GROUP being
/// IPv4 (`239.1.2.3`) or IPv6 in brackets (`[ff01::8066]`). See docs/protocol.md 2.1, docs/lan.md.
struct bus_url {
  std::string group = "239.255.80.66";  ///< IPv4 (224.0.0.0/4) or IPv6 (ff00::/8, no brackets)
  std::uint16_t port = 7780;            ///< UDP port, 1..65535; shared by every process
  int ttl = 0;                          ///< TTL (IPv6: hops); 0: this host only; 1+: a LAN
  /// The interface to join and send on: an address of it ("192.0.2.1", "fd00::1") or its name
  /// ("eth0"). Default 127.0.0.1, or ::1 for an IPv6 group.
  std::string iface = "127.0.0.1";
  std::size_t rcvbuf = 8u << 20;        ///< socket receive buffer requested, bytes (8 MiB)
  /// Link MTU, bytes (576..65535): every datagram sent fits it with its IP and UDP headers.
  /// 0 (default): the MTU of the interface `iface` (loopback: 65536, so 65507-byte datagrams).
  std::size_t mtu = 0;
  /// Sealed bus: the key file (a path, without '&'), or "auto" for the per-user key under
  /// $XDG_RUNTIME_DIR. Empty: open, unless options::key_file or $PEERBUS_KEY_FILE names one.
  std::string key;

  /// Parses a URL. Missing parts take the defaults above. Throws config_error naming the bad
  /// part ("ttl=300 is out of range 0..255").
  static bus_url parse(std::string_view url);
  /// The canonical text form, e.g. "udpm://239.255.80.66:7780?ttl=0&iface=127.0.0.1".
  std::string str() const;
};

/// Settings of one bus. Defaults suit a desktop's local tools.
struct options {
  /// The bus to join. Empty: $PEERBUS_URL when set, else default_url.
  std::string url;
  /// This process's name on the bus, shared by its instances ("editor"). Empty: the program's
  /// name. 1..64 characters of [A-Za-z0-9._-].
  std::string name;

  /// Seals the bus: every datagram encrypted and authenticated with the key in this file
  /// (XChaCha20-Poly1305), replays refused; processes without the key can neither read nor
  /// inject. A path, or "auto" for the per-user key $XDG_RUNTIME_DIR/peerbus/bus.key (created
  /// on first use). The file must be owned by this user with mode 0600 (`peerbus keygen FILE`
  /// writes one). Used when the URL has no `key=`; empty: $PEERBUS_KEY_FILE when set and
  /// non-empty, else the bus is open. Default empty. See docs/security.md.
  std::string key_file;

  /// Heartbeat period (presence). Others expire this process after `expiry_misses` periods of
  /// silence. Default 1000 ms.
  std::chrono::milliseconds heartbeat_interval{1000};
  /// Missed heartbeats after which a silent peer is declared expired. Default 3.
  int expiry_misses = 3;
  /// A passive bus only listens: no heartbeat, no NACK, no publish (the monitor). Default off.
  bool passive = false;

  /// Retransmit window kept by the sender, by count and by bytes; a message that left it can no
  /// longer be repaired and is reported lost. With flow_control, a message leaves it only once
  /// every live receiver has it; without, the window must cover what a sender sends while a
  /// receiver works through a full receive buffer before it finds a gap (8 MiB of datagrams:
  /// about 40,000 small messages). Defaults 131072 messages, 32 MiB (memory used as sent).
  std::size_t window_messages = 131072;
  std::size_t window_bytes = 32u << 20;

  /// Flow control by the slowest receiver (docs/protocol.md 8.9): receivers report how far
  /// they have got, and publish waits rather than push out of the window a message a live
  /// receiver has not got yet (like TCP's window, for every receiver at once); close() waits
  /// until they confirm the last one. A receiver that makes no progress for 5 s while we wait
  /// is left behind (bus_stats::flow_stalls). Off: publish never waits for receivers, and a
  /// receiver that falls further behind than the window loses what left it (LCM's choice, for
  /// a sensor whose old readings are worthless). Either way this process reports its own
  /// progress to the senders it hears, so they may wait for it. Default on.
  bool flow_control = true;
  /// Flow control. A ceiling on this process's sending rate, in sequenced frames (messages,
  /// calls, replies) per second: publish waits as needed to keep under it. 0: no ceiling.
  /// Default 0.
  double max_rate = 0;
  /// Slow down by itself when a receiver reports that its receive buffer overflowed (its NACKs
  /// carry "cong"): the rate is halved and then grows back 1% every 10 ms (docs/protocol.md,
  /// flow control). Plain losses never slow the sender. Default on.
  bool auto_slowdown = true;
  /// Tail advertisement delay: this long after the last send the sender advertises its highest
  /// sequence number, so a lost last message is repaired without waiting for the heartbeat.
  /// Default 20 ms.
  std::chrono::milliseconds tail_advert_delay{20};

  /// Largest message, bytes: publishing a larger one fails with errc::payload_too_large, and a
  /// larger one received is reported lost. Messages larger than one datagram travel in
  /// fragments. Default 16 MiB; accepted 1 KiB..1 GiB.
  std::size_t max_message_size = std::size_t{16} << 20;
  /// Memory for messages being put back together, all senders together; a message that would
  /// pass it is reported lost. Default 64 MiB; at least max_message_size.
  std::size_t max_reassembly_bytes = std::size_t{64} << 20;
  /// A message being put back together that gains no fragment for this long is freed and
  /// reported lost. Default 5000 ms.
  std::chrono::milliseconds reassembly_timeout{5000};

  /// Fault injection (tests, experiments): drop this fraction of received / sent datagrams,
  /// deterministically for a seed. Also set by $PEERBUS_FAULTS="rx=0.1,tx=0.1,seed=7".
  double drop_rx = 0.0;
  double drop_tx = 0.0;
  std::uint64_t fault_seed = 1;

  /// Where the library reports. Default: nowhere (the library prints nothing).
  log_handler log;
};

}  // namespace peerbus
