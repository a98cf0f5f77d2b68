// presence/peer_table.hpp: the pure presence core: live peers, fed announces, goodbyes and `now`.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wire/limits.hpp"

namespace peerbus::detail {

/// The clock every presence time point is on. Nothing here reads it: callers pass `now`, so tests
/// drive the table with a fake clock.
using presence_clock = std::chrono::steady_clock;

// Peer ids are plain std::uint64_t here (no alias: `peer_id` is the public peerbus::peer_id,
// which wraps the same 64 bits).

/// The id as 16 lowercase hex digits, e.g. "3f9a00c2d41e7b55".
std::string format_id(std::uint64_t id);
/// Exactly 16 hex digits (either case), else nullopt; no prefix, sign or white space.
std::optional<std::uint64_t> parse_id(std::string_view text) noexcept;
/// What people see: the name, '@', and the first 4 hex digits of the id, e.g. "editor@3f9a".
/// Enough to tell apart the few instances of one program that run at once; not unique.
std::string display_name(std::string_view name, std::uint64_t id);

/// What one heartbeat ("hb" frame) says about its sender.
struct announce {
  std::uint64_t id = 0;
  std::string name;
  std::string host;
  std::int64_t pid = 0;
  std::int64_t start_time_us = 0;  ///< µs since the Unix epoch when the sender's bus started
  int version = 0;                 ///< the sender's protocol version
  std::uint64_t highest_seq = 0;   ///< highest sequence number it has sent
  std::uint64_t lowest_seq = 0;    ///< oldest sequence number it still holds (0: none)
  /// The sender's own heartbeat period; it sets how long we wait before expiring it.
  /// Zero or negative: unknown, presence_config::default_interval is used.
  std::chrono::milliseconds interval{0};
  std::vector<std::string> subs;  ///< topic patterns it subscribes to
  bool subs_truncated = false;    ///< it has more patterns than the heartbeat carries
};

/// One live peer: its latest announce plus when we heard it.
struct peer_record : announce {
  presence_clock::time_point first_seen;  ///< its first announce (the joined event)
  presence_clock::time_point last_heard;  ///< latest announce or datagram of any kind
  /// First instant at which it counts as expired: last_heard + expiry window (see peer_table).
  presence_clock::time_point expires_at;

  std::string display() const { return display_name(name, id); }
};

enum class peer_event_kind {
  joined,   ///< first announce from an id
  left,     ///< it said goodbye; removed
  expired,  ///< silent past expires_at; removed
  /// A known peer's announce changed something other than its sequence numbers or interval:
  /// its subscriptions mostly (also name, host, pid, start time or version, which a well-behaved
  /// peer never changes). Lets the bus re-check wait_for_subscribers(); the public
  /// peerbus::peer_event_kind has no such kind, so the bus must not forward it to users as is.
  updated,
};
const char* to_string(peer_event_kind kind) noexcept;

/// A change in the table. `peer` is a copy: for left/expired, the record as it was when removed.
struct peer_event {
  peer_event_kind kind;
  peer_record peer;
};

struct presence_config {
  /// Interval assumed for a peer whose announce carries none (interval <= 0). Default 1 s.
  std::chrono::milliseconds default_interval{1000};
  /// A peer expires after this many of its own intervals without a datagram. Default 3.
  /// Values below 1 count as 1.
  int expiry_misses = 3;
  /// Bounds on the expiry window (misses * interval), so that a hostile or broken interval can
  /// neither pin a peer for ever nor expire it between two datagrams of a busy loop.
  /// Defaults 100 ms and 60 s. Note: with 3 misses, a sender interval above 20 s is cut to
  /// 60 s / 3 and that peer expires between its own heartbeats; keep intervals <= 20 s.
  std::chrono::milliseconds min_expiry{100};
  std::chrono::milliseconds max_expiry{60000};
  /// Live peers kept at most; announces from new ids beyond this are refused (rejected_full) so
  /// that a flood of random ids cannot grow memory. Default 4096.
  std::size_t max_peers = 4096;
  /// Per-peer caps, defensive copies of the wire limits (the decoder already enforces them):
  /// they bound one record's memory whatever the caller passes. Longer name/host are cut; extra
  /// subscriptions are dropped and subs_truncated is set.
  std::size_t max_name = wire::max_name;
  std::size_t max_host = wire::max_host;
  std::size_t max_subs = wire::max_heartbeat_subs;
  std::size_t max_sub_bytes = wire::max_heartbeat_sub_bytes;  ///< summed over one peer's patterns
  /// Ids that said goodbye are remembered (at most this many, for their expiry window) so that a
  /// heartbeat reordered behind the goodbye cannot resurrect them as a ghost that later expires.
  /// Default 64; 0 turns it off.
  std::size_t goodbye_memory = 64;
};

/// Counts since construction; monotonic. The monitor shows them.
struct presence_counters {
  std::uint64_t joined = 0;
  std::uint64_t left = 0;
  std::uint64_t expired = 0;
  std::uint64_t rejected_full = 0;     ///< new ids refused because max_peers were live
  std::uint64_t ignored_departed = 0;  ///< announces from an id that had just said goodbye
};

/// The set of live peers, keyed by id. Pure: no I/O, no clock reads, no threads, no locks. The
/// bus owns one and calls it from its single executor thread; it is not thread-safe.
///
/// Identity is the id alone. A restarted process draws a new id, so it is a new peer (joined)
/// next to its old self, which leaves or expires on its own; names may be shared by any number
/// of peers, and sequence numbers play no part in identity.
///
/// Expiry: every datagram from a peer (on_announce, on_heard) sets
///     expires_at = now + clamp(expiry_misses * interval, min_expiry, max_expiry)
/// with the peer's own advertised interval. expire(now) removes those with expires_at <= now.
/// Until expire() runs, an overdue peer is still listed; the bus arms one timer at
/// next_expiry() and calls expire() when it fires:
///
///     if (auto ev = table.on_announce(std::move(a), now)) notify(*ev);
///     timer.expires_at(table.next_expiry());           // re-arm after every on_announce
///     ...
///     on timer: for (auto& ev : table.expire(now)) notify(ev);
///               timer.expires_at(table.next_expiry());
///
/// on_heard() only moves a deadline later, so it needs no re-arm (a timer that fires early finds
/// nothing to expire and is re-armed). on_announce() can move next_expiry() earlier (a new peer, a
/// shorter interval), so re-arm after it.
///
/// The bus must not feed its own id (it hears its own heartbeats on multicast loopback).
///
/// Pointers returned by the lookups stay valid until the next call that changes the table
/// (on_announce, on_goodbye, expire); on_heard and the const functions keep them valid.
class peer_table {
 public:
  using time_point = presence_clock::time_point;

  explicit peer_table(const presence_config& config = {});

  /// A heartbeat from `a.id`. New id: joined (or nullopt when max_peers are live, counted in
  /// rejected_full, or when the id said goodbye moments ago). Known id: refreshes last_heard and
  /// expires_at and takes the new fields; returns `updated` when subscriptions or identity
  /// fields changed, else nullopt. Sequence numbers only move forward (a heartbeat reordered
  /// behind a newer one cannot lower them).
  std::optional<peer_event> on_announce(announce a, time_point now);

  /// Any datagram from `id` (data counts as a sign of life): refreshes last_heard and expires_at.
  /// Returns false, and does nothing, for an unknown id: only an announce makes a peer known.
  /// O(1); called for every datagram received.
  bool on_heard(std::uint64_t id, time_point now) noexcept;

  /// This process heard nothing until `now` (its receiving thread was held up, e.g. waiting for a
  /// full subscription queue): silence it could not hear is no sign of death, so every peer's
  /// deadline moves to at least now + its expiry window. last_heard is left as it was. O(peers).
  void grace(time_point now) noexcept;

  /// A goodbye from `id`: removes it and returns `left`. Unknown id (never seen, already gone,
  /// or a repeated goodbye): nullopt.
  std::optional<peer_event> on_goodbye(std::uint64_t id, time_point now);
  /// Did `id` say goodbye recently enough that its announces are still ignored?
  bool said_goodbye(std::uint64_t id, time_point now) const noexcept { return recently_departed(id, now); }
  /// `id` said goodbye but has been heard sending something new since: the goodbye was forged
  /// (open bus). Forgets it, so that its next announce is taken at once. False if not remembered.
  bool forget_departure(std::uint64_t id) noexcept;

  /// Removes every peer with expires_at <= now and returns them as `expired` events, oldest
  /// deadline first. O(live peers).
  std::vector<peer_event> expire(time_point now);

  /// The earliest expires_at among live peers; time_point::max() when there are none.
  /// O(live peers).
  time_point next_expiry() const noexcept;

  /// nullptr when unknown.
  const peer_record* find(std::uint64_t id) const noexcept;
  /// Live peers named exactly `name`. Results of every lookup that returns several peers, and of
  /// snapshot(), are ordered by (name, first_seen, id) so output is stable.
  std::vector<const peer_record*> find_by_name(std::string_view name) const;
  /// Live peers whose name matches the glob `pattern` (see glob_match: `*`, `?`). A pattern with
  /// no wildcard is an exact-name lookup.
  std::vector<const peer_record*> find_by_pattern(std::string_view pattern) const;
  /// Is any live peer named exactly `name`?
  bool has_name(std::string_view name) const noexcept;
  /// Copies of every live peer.
  std::vector<peer_record> snapshot() const;
  std::size_t size() const noexcept { return peers_.size(); }
  bool empty() const noexcept { return peers_.empty(); }

  /// How many live peers have at least one subscription pattern matching `topic` (topic_matches).
  /// A peer whose list was truncated may subscribe beyond what it carried: with
  /// `count_truncated`, such peers count even when no carried pattern matches ("maybe").
  /// O(peers * patterns); cache the result against generation() when calling it often.
  std::size_t count_subscribers(std::string_view topic,
                                bool count_truncated = false) const noexcept;

  /// Changes whenever the set of peers or anyone's subscriptions change (joined, left, expired,
  /// updated), never otherwise: a cheap key for caching count_subscribers() or lookups.
  std::uint64_t generation() const noexcept { return generation_; }

  const presence_counters& counters() const noexcept { return counters_; }
  const presence_config& config() const noexcept { return config_; }

  /// The expiry window for a peer advertising `interval` under this configuration.
  std::chrono::milliseconds expiry_window(std::chrono::milliseconds interval) const noexcept;

 private:
  struct departed {
    std::uint64_t id = 0;
    time_point until;
  };

  void sanitize(announce& a) const;
  bool recently_departed(std::uint64_t id, time_point now) const noexcept;
  template <class Pred>
  std::vector<const peer_record*> select(Pred pred) const;

  presence_config config_;
  std::unordered_map<std::uint64_t, peer_record> peers_;
  std::vector<departed> departed_;  // ring of goodbye_memory entries
  std::size_t departed_next_ = 0;
  presence_counters counters_;
  std::uint64_t generation_ = 0;
};

}  // namespace peerbus::detail
