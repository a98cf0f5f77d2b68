// tools/monitor_model.hpp: what `peerbus monitor` knows about a bus: counters and rates per peer,
// per topic and for the whole bus, fed by the datagram tap, peer events and bus stats; no I/O.
#pragma once

#include <peerbus/peer.hpp>
#include <peerbus/stats.hpp>
#include <peerbus/tap.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace peerbus::tools::monitor {

using steady = std::chrono::steady_clock;

/// Rate of a cumulative counter over a sliding window, from samples taken at each refresh.
/// Pure: the caller passes the time.
class rate_meter {
 public:
  rate_meter() = default;
  explicit rate_meter(std::chrono::milliseconds window) : window_(window) {}
  void sample(steady::time_point now, std::uint64_t total);
  /// Per second over the last window (0 until two samples at least 10 ms apart exist).
  double per_second() const noexcept { return rate_; }

 private:
  std::chrono::milliseconds window_{1000};
  std::deque<std::pair<steady::time_point, std::uint64_t>> samples_;
  double rate_ = 0;
};

enum class peer_state { live, left, expired };

/// One sender as seen on the wire (and, once it announced itself, from the peer table).
struct peer_row {
  peer_id id;
  std::string name;
  std::string host;
  std::int64_t pid = 0;
  std::optional<std::chrono::system_clock::time_point> started;  ///< from its heartbeat
  bool announced = false;  ///< heard a heartbeat (or listed by bus::peers())
  peer_state state = peer_state::live;

  std::uint64_t messages = 0;  ///< sequenced frames it sent (msg/call/reply), repairs included
  std::uint64_t bytes = 0;     ///< bytes of every frame it sent
  std::uint64_t highest_seq = 0;  ///< highest seq seen in a frame or announced in hb/adv
  std::uint64_t highest_heard = 0;  ///< highest seq of a sequenced frame actually heard
  std::uint64_t nacks = 0;      ///< NACK frames addressed to it (others asking it for repairs)
  std::uint64_t nack_seqs = 0;  ///< sequence numbers those NACKs asked for
  std::uint64_t repairs = 0;    ///< sequenced frames at or below what it had already sent us
  std::uint64_t wire_gaps = 0;  ///< holes seen in its sequence on the wire
  // From the bus's own stream tracking (bus_stats::streams), kept after the stream is gone.
  bool stream_known = false;
  std::uint64_t stream_gaps = 0;
  std::uint64_t stream_lost = 0;
  /// From the bus's loss events (bus::on_loss): they also count what was found missing when the
  /// sender left or expired, after its stream was gone from bus_stats.
  std::uint64_t event_lost = 0;
  steady::time_point last_heard{};

  rate_meter msg_rate, byte_rate;

  std::uint64_t gaps() const noexcept { return stream_known ? stream_gaps : wire_gaps; }
  std::uint64_t lost() const noexcept { return std::max(stream_lost, event_lost); }
};

struct topic_row {
  std::string topic;
  std::uint64_t messages = 0;  ///< msg frames, repairs included (it is what the wire carried)
  std::uint64_t bytes = 0;     ///< payload bytes
  std::set<std::uint64_t> publishers;
  std::string last_payload;    ///< shortened (model::max_payload_keep bytes)
  bool last_payload_cut = false;
  steady::time_point last{};
  rate_meter msg_rate, byte_rate;
};

struct bus_totals {
  std::uint64_t datagrams = 0;
  std::uint64_t bytes = 0;
  std::uint64_t frames = 0;
  std::uint64_t messages = 0;
  std::uint64_t nacks = 0;
  std::uint64_t repairs = 0;
  /// Drops seen through the tap (datagram or frame could not be decoded; injected).
  std::array<std::uint64_t, drop_reason_count> wire_dropped{};
  /// The bus's own drop counters (bus_stats::dropped): they also count drops the tap cannot
  /// see (peer table full, implausible). Shown when known.
  bool stats_known = false;
  std::array<std::uint64_t, drop_reason_count> stats_dropped{};
  rate_meter datagram_rate, byte_rate;

  std::uint64_t dropped(drop_reason r) const noexcept {
    auto i = static_cast<std::size_t>(r);
    return stats_known ? std::max(stats_dropped[i], wire_dropped[i]) : wire_dropped[i];
  }
  std::uint64_t dropped_total() const noexcept {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < drop_reason_count; ++i) n += dropped(static_cast<drop_reason>(i));
    return n;
  }
};

enum class peer_sort { name, msg_rate, byte_rate, lost, last_heard };
enum class topic_sort { topic, msg_rate, byte_rate, publishers, last };
inline constexpr std::size_t peer_sort_count = 5;
inline constexpr std::size_t topic_sort_count = 5;
const char* to_string(peer_sort) noexcept;
const char* to_string(topic_sort) noexcept;
std::optional<peer_sort> parse_peer_sort(std::string_view) noexcept;
std::optional<topic_sort> parse_topic_sort(std::string_view) noexcept;

/// Topic patterns as the bus reads them: '.'-separated, `*` one segment, `>` (last) the rest.
bool pattern_matches(std::string_view pattern, std::string_view topic) noexcept;
/// Non-empty segments, `>` only last, wildcards only as whole segments.
bool valid_pattern(std::string_view pattern) noexcept;

/// Everything the monitor counts. Not thread-safe: the caller holds one lock around it.
class model {
 public:
  static constexpr std::size_t max_payload_keep = 512;
  /// Rows of peers that left or expired stay this long after they were last heard, then go: a
  /// monitor left running on a bus where short-lived tools come and go would otherwise list
  /// every one of them forever. The bus totals keep what they sent.
  static constexpr std::chrono::seconds forget_after{60};
  static constexpr std::size_t max_topics = 4096;  ///< beyond: counted in `topics_overflow`

  /// A datagram from the tap (bus::on_datagram).
  void on_datagram(const datagram_view& d, steady::time_point now);
  /// Peer presence: joined/left/expired.
  void on_peer_event(peer_event_kind kind, const peer_info& p, steady::time_point now);
  /// The current peer table (bus::peers()): fills in names, hosts, pids, start times.
  void on_peers(const std::vector<peer_info>& peers);
  /// The bus's counters: drops by reason, gaps and losses per sender.
  void on_stats(const bus_stats& s);
  /// Messages of a sender reported lost (bus::on_loss).
  void on_loss(peer_id sender, std::string_view name, std::uint64_t count);
  /// Samples every rate and forgets departed peers (forget_after); call at each refresh.
  void tick(steady::time_point now);

  const bus_totals& totals() const noexcept { return totals_; }
  const std::map<std::uint64_t, peer_row>& peers() const noexcept { return peers_; }
  const std::map<std::string, topic_row, std::less<>>& topics() const noexcept { return topics_; }
  std::uint64_t topics_overflow() const noexcept { return topics_overflow_; }

  /// Rows in display order. `descending` flips the natural order of the key (names A..Z, rates
  /// highest first, last heard most recent first).
  std::vector<const peer_row*> sorted_peers(peer_sort key, bool reversed = false) const;
  /// Topics matching `filter` (all when empty), in display order.
  std::vector<const topic_row*> sorted_topics(topic_sort key, bool reversed = false,
                                              std::string_view filter = {}) const;

 private:
  peer_row& peer(std::uint64_t id);
  /// The same, first sampling a new row's rates at zero, so its first rate counts from `now`.
  peer_row& peer(std::uint64_t id, steady::time_point now);

  bus_totals totals_;
  std::map<std::uint64_t, peer_row> peers_;
  std::map<std::string, topic_row, std::less<>> topics_;
  std::uint64_t topics_overflow_ = 0;
};

}  // namespace peerbus::tools::monitor
