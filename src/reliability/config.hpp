// reliability/config.hpp: the clock, seq ranges, and every timer and limit of the reliability core.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace peerbus::detail {

/// The only clock the reliability core knows. Nothing here reads it: every call takes `now`, so
/// tests drive a fake time_point by hand.
using rel_clock = std::chrono::steady_clock;

/// An inclusive range of sequence numbers [first, last]. Same shape as wire::seq_range, kept
/// separate so the pure core does not depend on the wire format.
struct seq_range {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  ///< inclusive; a valid range has first <= last

  std::uint64_t count() const noexcept { return last - first + 1; }
  bool contains(std::uint64_t seq) const noexcept { return first <= seq && seq <= last; }
  friend bool operator==(const seq_range& a, const seq_range& b) noexcept {
    return a.first == b.first && a.last == b.last;
  }
  friend bool operator!=(const seq_range& a, const seq_range& b) noexcept { return !(a == b); }
};

/// Timers and limits of the NACK protocol, sender and receiver side. The defaults suit loopback
/// and a LAN (round trips well under a millisecond); raise the NACK timers for slower links.
struct reliability_config {
  // --- receiver: NACK timing ---

  /// The first NACK of a new gap waits a random delay drawn uniformly from
  /// [nack_delay_min, nack_delay_max], so that when several receivers miss the same datagram one
  /// of them NACKs first and the others hear it and hold back (NACK implosion suppression, as in
  /// PGM, NORM and RFC 5401). Defaults 1 ms and 10 ms.
  rel_clock::duration nack_delay_min = std::chrono::milliseconds(1);
  rel_clock::duration nack_delay_max = std::chrono::milliseconds(10);
  /// Wait before repeating a NACK nobody answered; multiplied by nack_backoff after each repeat,
  /// capped at nack_retry_max. Defaults 30 ms, x2.0, 50 ms.
  ///
  /// Why a low cap and many tries: under heavy loss a NACK-repair round trip often fails (at 30%
  /// of datagrams lost, about half the time), so few tries give up gaps the sender still holds,
  /// and long waits let a busy sender's window (16384 messages: 1.6 s at 10,000/s) move past a
  /// gap before its tries are used. 500 ms and 10 tries lost messages in
  /// tests/net/reliability_process_test.cpp at 30%; 50 ms and 60 tries give up a silent sender's
  /// gaps after about the same time (about 3 s, the peer expiry) with 0.5^60 odds of giving up
  /// one that could still be repaired.
  rel_clock::duration nack_retry = std::chrono::milliseconds(30);
  double nack_backoff = 2.0;
  rel_clock::duration nack_retry_max = std::chrono::milliseconds(50);
  /// NACKs sent for one gap before it is declared lost (after the last one has had its
  /// retry interval to be answered). Default 60: about 3 s with the defaults above.
  std::uint32_t nack_max_tries = 60;

  // --- sender: repairs ---

  /// A sender retransmits one seq at most once per this interval however many NACKs ask for it:
  /// receivers that missed the same datagram NACK within a few ms of each other and one repair
  /// on multicast serves them all. Default 10 ms.
  rel_clock::duration repair_holdoff = std::chrono::milliseconds(10);
  /// Retransmit window kept by a sender (send_window), by count and by encoded bytes. A seq that
  /// left it can no longer be repaired. Defaults 131072 frames, 32 MiB.
  std::size_t send_window_max_count = 131072;
  std::size_t send_window_max_bytes = std::size_t{32} << 20;

  // --- receiver: memory bounds and plausibility ---

  /// Frames one receive_stream buffers out of order (waiting for a gap before them to be
  /// repaired), by count and by bytes. Beyond either, the oldest gap is declared lost so the
  /// oldest buffered frames can be delivered: memory stays bounded whatever the sender or the
  /// network does. Also bounds the number of distinct missing ranges tracked. It must be at
  /// least the senders' window (send_window_max_count), else a receiver gives up gaps a sender
  /// could still repair: while it waits for a repair, a fast sender's later frames pile up here.
  /// Defaults 131072 frames, 64 MiB.
  std::size_t max_reorder = 131072;
  std::size_t max_reorder_bytes = std::size_t{64} << 20;
  /// A frame or advert claiming a seq more than this above the highest seq seen so far is
  /// implausible (a forged heartbeat jumping a sender to 2^60): it is ignored and counted,
  /// never NACKed. Default 2^22 (about 4 million).
  std::uint64_t max_advance = std::uint64_t{1} << 22;
  /// Until a stream's first frame arrives, the most seqs it NACKs on a sender's word: a stream
  /// whose first frame (or a heartbeat or advert before it) lies further ahead of where it
  /// started reports the seqs in between lost at once ("unasked") instead of NACKing them. A
  /// real sender's first frames reach a receiver that heard it announce; a forged sender id
  /// announcing seq 0 and then sending seq 1,000,000 is the phantom gap this closes (issue 8).
  /// Default 16384 (a second of a busy sender, like the bus's held frames; 0 is taken as 1).
  std::uint64_t max_first_gap = 16384;

  /// Ranges returned by one due_nacks() call: what one NACK frame carries
  /// (wire::max_nack_ranges). Default 64.
  std::size_t max_ranges_per_nack = 64;
};

/// Checks a config for values the core cannot work with. Returns an empty string when it is
/// usable, else a sentence naming the first bad field ("nack_backoff is 0.5; it must be >= 1").
/// The core itself clamps such values instead of failing; the bus should call this and throw.
std::string validate(const reliability_config& cfg);

}  // namespace peerbus::detail
