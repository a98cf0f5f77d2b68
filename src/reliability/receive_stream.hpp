// reliability/receive_stream.hpp: one sender's stream at one receiver: order, gaps, NACKs, loss.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reliability/config.hpp"

namespace peerbus::detail {

/// What offer() did with a frame.
enum class offer_result : std::uint8_t {
  deliver,      ///< seq was the next expected: deliver the frame you hold, then drain pop_ready()
  buffered,     ///< ahead of a gap: copied into the reorder buffer until the gap fills or is lost
  duplicate,    ///< already delivered or already buffered (or seq 0): drop it
  overflow,     ///< not kept: the reorder buffer is full of frames the caller has not drained;
                ///< the seq stays missing and will be NACKed again (see "Contract" below)
  implausible,  ///< seq more than max_advance above anything seen: ignored, never NACKed
};
const char* to_string(offer_result r) noexcept;

/// One item of the in-order output of a stream: a frame, or a run of seqs that will never come.
struct ready_item {
  enum class kind : std::uint8_t { frame, loss };
  kind what = kind::frame;
  seq_range seqs;     ///< frame: {seq, seq}; loss: the lost seqs, inclusive
  std::string frame;  ///< frame: its bytes, moved out of the reorder buffer; loss: empty

  bool is_loss() const noexcept { return what == kind::loss; }
};

/// Counters of one stream, for stats and the monitor. Seqs unless said otherwise.
struct stream_counters {
  std::uint64_t received = 0;             ///< frames offered, duplicates included
  std::uint64_t delivered = 0;            ///< frames handed on in order (deliver + drained frames)
  std::uint64_t duplicates = 0;           ///< offers answered `duplicate`
  std::uint64_t overflows = 0;            ///< offers answered `overflow`
  std::uint64_t implausible_frames = 0;   ///< offers answered `implausible`
  std::uint64_t implausible_adverts = 0;  ///< adverts ignored (see on_advert)
  std::uint64_t gaps_detected = 0;        ///< times new missing seqs were found (frame or advert)
  std::uint64_t nacks_sent = 0;           ///< ranges returned by due_nacks()
  std::uint64_t nack_seqs_requested = 0;  ///< seqs in those ranges
  std::uint64_t suppressed = 0;           ///< pending ranges held back by another receiver's NACK
  std::uint64_t reordered = 0;            ///< frames that filled a gap nobody had NACKed yet
  std::uint64_t recovered = 0;            ///< frames that filled a gap after a NACK (ours or
                                          ///< another receiver's) or a give-up: repairs, mostly
  std::uint64_t lost = 0;                 ///< seqs reported lost by pop_ready()
  // Why seqs were declared lost (counted when declared; a late frame may still fill one before
  // it is drained, so these can add up to more than `lost`):
  std::uint64_t given_up = 0;           ///< NACKed nack_max_tries times without an answer
  std::uint64_t dropped_for_space = 0;  ///< reorder buffer bound reached, oldest gap abandoned
  std::uint64_t unavailable = 0;        ///< the sender advertised it no longer holds them
  std::uint64_t unasked = 0;  ///< a new stream's first jump was beyond max_first_gap: not NACKed
  /// Times a due gap was held back by the caller's NACK budget (due_nacks(now, max_seqs)): once
  /// per hold-back, however long it lasts; it stays due and is NACKed once budget allows.
  std::uint64_t nacks_deferred = 0;
};

/// One missing range as seen by gaps() (diagnostics and tests).
struct gap_info {
  seq_range seqs;
  bool lost = false;                  ///< declared lost, waiting to be drained
  std::uint32_t tries = 0;            ///< NACKs sent for it so far
  rel_clock::time_point next_fire{};  ///< when it is next NACKed or given up; unused when lost
};

/// Exactly-once, in-order delivery of one sender's sequenced frames to one receiver, with gap
/// detection and NACK scheduling. Pure: no I/O, no clock reads (time is an argument), no
/// threads; randomness comes from the generator passed at construction.
///
/// Contract (the integrator's side):
///  - Create one per (sender, incarnation) when its first sequenced frame or heartbeat arrives.
///    first_seq is that frame's seq (receive from there on), or the heartbeat's highest + 1.
///  - Feed every sequenced frame of that sender, repairs included, to offer(). On `deliver`,
///    dispatch the frame you hold. Then, after offer() whatever its result, and after
///    on_advert() and due_nacks(), drain: `while (auto it = s.pop_ready()) ...` and dispatch
///    frames and report losses in the order they come. Memory is bounded only if you drain.
///  - Feed the (highest sent, lowest held) of every heartbeat and tail advert to on_advert():
///    it is the only way a lost last frame is noticed.
///  - Keep one timer per stream at next_deadline() (re-arm after every call; time_point::max()
///    means none). When it fires: `while (s.next_deadline() <= now) send_nack(s.due_nacks(now));`
///    and drain. due_nacks() may return an empty vector (it only gave up some gaps).
///  - Feed NACKs other receivers sent to the same sender to on_foreign_nack().
///  - `implausible` frames and adverts (a jump of more than max_advance) are never acted on. If
///    a peer that is otherwise alive keeps producing them, its numbering really jumped (we were
///    suspended for long, say): replace the stream, starting at its current seq.
///
/// Not thread-safe: one owner (the bus's receive strand) calls everything. The generator passed
/// to the constructor must outlive the stream and be used from the same thread.
///
///     receive_stream s{cfg, env.seq, rng};
///     if (s.offer(env.seq, env.frame, now) == offer_result::deliver) dispatch(env.frame);
///     while (auto item = s.pop_ready())
///       item->is_loss() ? report_loss(item->seqs) : dispatch(item->frame);
class receive_stream {
 public:
  using time_point = rel_clock::time_point;
  using duration = rel_clock::duration;

  /// first_seq: the first seq to deliver (0 is taken as 1); everything below is `duplicate`.
  /// cfg is copied, with unusable values clamped (see validate()). rng draws the first-NACK
  /// delays and must outlive the stream.
  receive_stream(const reliability_config& cfg, std::uint64_t first_seq, std::mt19937_64& rng);

  /// A sequenced frame of this sender arrived (first transmission or repair).
  ///  - seq == next_expected(): `deliver`; the stream does not copy the frame, the caller
  ///    dispatches it. A seq that was missing counts as reordered or recovered.
  ///  - seq > next_expected(): `buffered`; the frame is copied, and the seqs between the highest
  ///    seen and seq become a new gap, NACKed after a random delay in
  ///    [nack_delay_min, nack_delay_max]. If the reorder buffer would then exceed max_reorder or
  ///    max_reorder_bytes (after the caller's next drain), the oldest gaps are declared lost.
  ///  - `duplicate`, `overflow`, `implausible`: not kept, see offer_result.
  offer_result offer(std::uint64_t seq, std::string_view frame, time_point now);

  /// The next item in seq order, if it is known: a buffered frame whose turn has come, or a
  /// run of seqs declared lost (adjacent lost runs come merged). nullopt when the next seq is
  /// still awaited. Every seq from first_seq on comes out exactly once, as a frame (here or as a
  /// `deliver`) or inside a loss.
  std::optional<ready_item> pop_ready();
  /// True when pop_ready() would return an item.
  bool has_ready() const noexcept;

  /// The sender advertised (heartbeat / tail advert) the highest seq it has sent and the lowest
  /// it still holds for repair (0: unknown or none).
  ///  - highest_sent above the highest seen: the seqs in between are a new gap (tail loss),
  ///    NACKed like any other.
  ///  - lowest_held above next_expected(): the missing seqs below it can never be repaired and
  ///    are declared lost now (frames buffered below it are still delivered).
  ///    lowest_held == highest_sent + 1 means it holds nothing (a goodbye): every missing seq
  ///    up to highest_sent is lost.
  ///  - highest_sent more than max_advance above the highest seen, or lowest_held above
  ///    highest_sent + 1: the whole advert is ignored and counted (implausible_adverts).
  void on_advert(std::uint64_t highest_sent, std::uint64_t lowest_held, time_point now);

  /// The missing ranges whose NACK timer has fired by `now`, merged where contiguous and at
  /// most max_ranges_per_nack of them (earliest timers first); each is rescheduled after its
  /// retry interval, which then grows by nack_backoff up to nack_retry_max. A gap whose timer
  /// fires after nack_max_tries NACKs is declared lost instead (drain afterwards). If more were
  /// due than fit, next_deadline() stays <= now: call again.
  std::vector<seq_range> due_nacks(time_point now);
  /// The same, asking for at most `max_seqs` seqs in all (a budget shared across streams): a due
  /// range longer than what is left is NACKed in part (its first seqs; the sender repairs from
  /// there and the rest is asked for next time), and due gaps beyond the budget are deferred:
  /// no try is counted, they stay due (next_deadline() <= now) and the first hold-back of each
  /// is counted (nacks_deferred). Gaps out of tries are still given up. Deferral, not loss.
  std::vector<seq_range> due_nacks(time_point now, std::uint64_t max_seqs);

  /// Gives up everything buffered and every gap at once: all of [next_expected(), highest_seen()]
  /// becomes one lost run (counted in dropped_for_space, buffered frames included), for a
  /// caller that must free memory across streams. Returns the frame bytes freed. Drain after.
  std::size_t shed();

  /// When the earliest pending gap is to be NACKed or given up; time_point::max() when none.
  time_point next_deadline() const noexcept;

  /// Another receiver NACKed `r` to this same sender: the repair it triggers is multicast and
  /// serves us too, so our pending NACKs for the overlapping seqs are pushed back to
  /// now + their current retry interval, without counting a try. Ranges with first > last and
  /// seqs we do not miss are ignored.
  void on_foreign_nack(seq_range r, time_point now);
  void on_foreign_nack(const std::vector<seq_range>& ranges, time_point now);

  /// Next seq to hand on in order.
  std::uint64_t next_expected() const noexcept { return next_; }
  /// Highest seq known to exist (received or advertised); next_expected() - 1 when none beyond.
  std::uint64_t highest_seen() const noexcept { return highest_seen_; }
  std::size_t buffered_count() const noexcept { return buffer_.size(); }
  std::size_t buffered_bytes() const noexcept { return buffer_bytes_; }
  /// Missing ranges tracked, pending and lost-not-yet-drained.
  std::size_t gap_count() const noexcept { return gaps_.size(); }
  /// Every missing range, in seq order (O(gaps); diagnostics and tests).
  std::vector<gap_info> gaps() const;
  const stream_counters& counters() const noexcept { return counters_; }
  const reliability_config& config() const noexcept { return cfg_; }

 private:
  // A run of missing seqs [key, last]. Pending ones have an entry in timers_.
  struct gap {
    std::uint64_t last = 0;
    time_point next_fire{};
    duration interval{};  // wait after the next NACK
    std::uint32_t tries = 0;
    bool asked = false;  // NACKed, by us or (suppression) by another receiver
    bool lost = false;
    bool deferred = false;  // held back by the NACK budget since its last NACK (counted once)
  };
  using gap_map = std::map<std::uint64_t, gap>;
  enum class loss_cause : std::uint8_t { gave_up, space, unavailable, unasked };

  gap_map::iterator find_gap(std::uint64_t seq);
  void extend_to(std::uint64_t last, time_point now);
  gap_map::iterator split(gap_map::iterator it, std::uint64_t at);
  void erase_gap(gap_map::iterator it);
  bool take_seq(std::uint64_t seq);
  void count_filled(bool asked) noexcept;
  void reschedule(gap_map::iterator it, time_point fire);
  void declare_lost(gap_map::iterator it, loss_cause cause);
  void declare_lost_below(std::uint64_t seq);
  void jump_unasked(std::uint64_t last, time_point now);
  void enforce_bound();
  duration first_delay();
  duration next_interval(duration d) const;

  reliability_config cfg_;
  std::mt19937_64* rng_;
  std::uint64_t next_;
  std::uint64_t highest_seen_;
  bool heard_ = false;  // a frame was kept (delivered or buffered): max_first_gap no longer applies
  // Invariant: every seq in [next_, highest_seen_] is in exactly one of buffer_ and gaps_.
  std::map<std::uint64_t, std::string> buffer_;
  std::size_t buffer_bytes_ = 0;
  gap_map gaps_;
  std::set<std::pair<time_point, std::uint64_t>> timers_;  // (next_fire, gap key), pending gaps
  stream_counters counters_;
};

}  // namespace peerbus::detail
