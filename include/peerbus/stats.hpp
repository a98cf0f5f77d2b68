// peerbus/stats.hpp: counters of a bus: traffic, every drop by reason, and reliability per peer.
#pragma once

#include <peerbus/peer.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace peerbus {

/// Why a received datagram (or one frame of it) was not used. Every drop increments exactly
/// one of these; none is silent.
enum class drop_reason : std::uint8_t {
  malformed,        ///< not JSON, truncated, nested too deep, bad framing
  wrong_version,    ///< envelope names a protocol major version we do not speak
  bad_field,        ///< a required field is missing or has the wrong type or value
  oversized,        ///< datagram or field larger than the protocol allows
  unknown_type,     ///< a frame type this version does not know
  unauthenticated,  ///< a sealed datagram on an open bus; on a sealed bus an open one, another
                    ///< key's, or one that fails authentication
  implausible,      ///< well-formed but impossible (a sequence jump beyond any window...)
  peer_table_full,  ///< a new sender while the bounded peer tables are full
  injected,         ///< dropped on purpose by fault injection (options::drop_rx)
  replayed,         ///< sealed bus: a genuine datagram heard before, or too old to tell
};
inline constexpr std::size_t drop_reason_count = 10;
const char* to_string(drop_reason) noexcept;

/// One remote sender's stream as this process received it.
struct stream_stats {
  peer_id id;
  std::string name;
  std::uint64_t received = 0;    ///< sequenced frames heard, repairs and duplicates included
  std::uint64_t delivered = 0;   ///< handed on in order (to handlers, or skipped as unmatched)
  std::uint64_t duplicates = 0;  ///< heard again after we had it
  std::uint64_t gaps = 0;        ///< gaps detected
  std::uint64_t nacks_sent = 0;  ///< NACK ranges we sent for this stream
  std::uint64_t recovered = 0;   ///< messages that arrived after being missed
  std::uint64_t lost = 0;        ///< messages reported lost (left the sender's window)
  std::uint64_t highest_seq = 0;
};

/// One live subscription (bus::subscribe) as this process served it.
struct subscription_stats {
  std::string pattern;
  std::size_t queue_limit = 0;   ///< 0: unqueued (handler on the bus's executor)
  std::uint64_t delivered = 0;   ///< handler calls made (or begun)
  std::uint64_t dropped = 0;     ///< messages its full queue dropped (overflow policy)
  std::uint64_t waits = 0;       ///< block policy: messages the bus thread waited to queue
  std::size_t queued = 0;        ///< messages waiting now
  std::size_t queued_max = 0;    ///< most messages ever waiting at once (<= queue_limit)
  std::size_t queued_bytes = 0;  ///< bytes waiting now
};

struct bus_stats {
  std::uint64_t datagrams_received = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t datagrams_sent = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t send_errors = 0;
  std::uint64_t receive_errors = 0;  ///< failed reads of the socket (not EAGAIN), each logged
  std::uint64_t published = 0;  ///< messages this process published
  std::uint64_t delivered = 0;  ///< handler calls made
  std::array<std::uint64_t, drop_reason_count> dropped{};  ///< indexed by drop_reason
  // As a sender:
  std::uint64_t nacks_received = 0;  ///< NACK ranges addressed to us
  std::uint64_t repairs_sent = 0;    ///< messages retransmitted
  std::uint64_t repairs_unavailable = 0;  ///< NACKed messages already out of our window
  /// NACKed messages not resent at once because the repair budget (all askers together,
  /// bytes/s) was spent; the askers NACK them again.
  std::uint64_t repairs_deferred = 0;
  std::uint64_t dropped_tx_injected = 0;  ///< sends dropped by fault injection
  /// Sequenced frames that left in a batch (several to a datagram) rather than alone.
  std::uint64_t batched_frames = 0;
  /// Our own datagrams heard back through the multicast loop and set aside unread (nothing
  /// subscribed with include_self and no tap installed).
  std::uint64_t own_datagrams = 0;
  /// Datagrams the kernel dropped because our receive buffer was full (Linux: SO_RXQ_OVFL):
  /// this process did not keep up. Its NACKs then ask the senders to slow down.
  std::uint64_t rx_overflows = 0;
  /// Times our receive queue was found more than 3/4 full while we read it (Linux
  /// SO_MEMINFO): falling behind before anything was dropped.
  std::uint64_t rx_backlogs = 0;
  /// NACKs asking for nothing but carrying "cong", sent to the senders we heard lately when a
  /// congestion episode began (overflow or backlog), so they slow down at once.
  std::uint64_t congestion_notices = 0;
  /// Times this process slowed its sending because a receiver reported congestion.
  std::uint64_t rate_cuts = 0;
  /// Flow control by the slowest receiver (docs/protocol.md 8.9). Publishes (and calls) that
  /// waited because they would have pushed out of the retransmit window a message a live
  /// receiver had not got yet.
  std::uint64_t flow_waits = 0;
  /// Receivers left behind after making no progress for 5 s while this process waited for
  /// them (stuck, or forged); each counts once per time it stalled.
  std::uint64_t flow_stalls = 0;
  /// Progress reports ("have") received from receivers.
  std::uint64_t flow_reports = 0;
  /// Receivers this process waits for when its window is full: those that announce that they
  /// report progress (a receiver whose heartbeats stopped counts until the next wait drops it).
  std::uint64_t flow_receivers = 0;
  /// The automatic sending limit in force after receivers reported congestion, bytes/s; 0:
  /// none (options::max_rate, the fixed ceiling in messages/s, is not shown here).
  double send_rate_limit = 0;
  // As a receiver, summed over all senders (per sender in `streams`):
  std::uint64_t nacks_sent = 0;
  /// Gaps whose NACK the NACK budget (seqs/s, all senders together) held back for a while,
  /// counted once per hold-back: deferred, not lost, they are asked for when it refills.
  std::uint64_t nacks_deferred = 0;
  /// Goodbyes in a sender's name that it then refuted by sending something new (forged, on an
  /// open bus): the sender was taken back at once rather than after its expiry window.
  std::uint64_t goodbyes_refuted = 0;
  /// Frames held or buffered out of order for senders that are not established (new, or not
  /// announced), given up to keep all streams' buffers within their global bound (64 MiB);
  /// where the stream knew their seqs, they are reported lost.
  std::uint64_t frames_shed = 0;
  /// Bytes held or buffered out of order now, all senders together.
  std::size_t buffered_bytes = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t recovered = 0;
  std::uint64_t lost = 0;  ///< not repaired (queue overflows are in queue_dropped)
  // Large messages (fragments):
  std::uint64_t reassembled = 0;          ///< messages put back together from fragments
  std::uint64_t reassembly_bytes = 0;     ///< now held for messages being put back together
  std::uint64_t reassembly_partials = 0;  ///< messages being put back together now
  std::vector<stream_stats> streams;
  // Subscriptions:
  std::uint64_t queue_dropped = 0;  ///< dropped by full subscription queues, ended ones included
  std::vector<subscription_stats> subscriptions;  ///< the live ones

  std::uint64_t dropped_total() const noexcept {
    std::uint64_t n = 0;
    for (auto d : dropped) n += d;
    return n;
  }
  std::uint64_t drops(drop_reason r) const noexcept {
    return dropped[static_cast<std::size_t>(r)];
  }
};

}  // namespace peerbus
