// reliability/receive_stream.cpp: in-order delivery, gaps, NACK timing and loss for one sender.
#include "reliability/receive_stream.hpp"

#include <algorithm>
#include <iterator>

namespace peerbus::detail {

const char* to_string(offer_result r) noexcept {
  switch (r) {
    case offer_result::deliver:
      return "deliver";
    case offer_result::buffered:
      return "buffered";
    case offer_result::duplicate:
      return "duplicate";
    case offer_result::overflow:
      return "overflow";
    case offer_result::implausible:
      return "implausible";
  }
  return "?";
}

namespace {

// The core never fails on a bad config (the bus validates and throws); it clamps to the nearest
// value it can work with so that no timer spins and no gap lives forever.
reliability_config clamped(reliability_config c) {
  const auto zero = rel_clock::duration::zero();
  c.nack_delay_min = std::max(c.nack_delay_min, zero);
  c.nack_delay_max = std::max(c.nack_delay_max, c.nack_delay_min);
  c.nack_retry = std::max(c.nack_retry, rel_clock::duration(1));
  c.nack_retry_max = std::max(c.nack_retry_max, c.nack_retry);
  if (!(c.nack_backoff >= 1.0)) c.nack_backoff = 1.0;  // also catches NaN
  if (c.nack_backoff > 1e6) c.nack_backoff = 1e6;
  c.nack_max_tries = std::max<std::uint32_t>(c.nack_max_tries, 1);
  c.max_reorder = std::max<std::size_t>(c.max_reorder, 1);
  c.max_reorder_bytes = std::max<std::size_t>(c.max_reorder_bytes, 1);
  c.max_advance = std::max<std::uint64_t>(c.max_advance, 1);
  c.max_ranges_per_nack = std::max<std::size_t>(c.max_ranges_per_nack, 1);
  c.max_first_gap = std::max<std::uint64_t>(c.max_first_gap, 1);
  return c;
}

}  // namespace

receive_stream::receive_stream(const reliability_config& cfg, std::uint64_t first_seq,
                               std::mt19937_64& rng)
    : cfg_(clamped(cfg)),
      rng_(&rng),
      next_(first_seq == 0 ? 1 : first_seq),
      highest_seen_(next_ - 1) {}

offer_result receive_stream::offer(std::uint64_t seq, std::string_view frame, time_point now) {
  ++counters_.received;
  if (seq < next_) {
    ++counters_.duplicates;
    return offer_result::duplicate;
  }
  if (seq > highest_seen_ && seq - highest_seen_ > cfg_.max_advance) {
    ++counters_.implausible_frames;
    return offer_result::implausible;
  }
  const bool known_missing = seq <= highest_seen_;
  if (known_missing && buffer_.find(seq) != buffer_.end()) {
    ++counters_.duplicates;
    return offer_result::duplicate;
  }

  // A new stream's first frame far ahead of where it started: nothing of what lies between is
  // asked for (a forged sender's phantom gap, see max_first_gap); it is reported lost.
  if (!heard_ && seq > highest_seen_ + 1 && seq - highest_seen_ - 1 > cfg_.max_first_gap)
    jump_unasked(seq - 1, now);
  heard_ = true;

  if (seq == next_) {
    // In order: the caller holds the bytes, so nothing is copied on the common path.
    if (known_missing)
      count_filled(take_seq(seq));
    else
      highest_seen_ = seq;
    ++next_;
    ++counters_.delivered;
    return offer_result::deliver;
  }

  const bool fits =
      buffer_.size() < cfg_.max_reorder && buffer_bytes_ + frame.size() <= cfg_.max_reorder_bytes;
  if (!fits && has_ready()) {
    // The room is taken by frames the caller has not drained yet; abandoning gaps would not
    // free it. Keep the seq missing so it is asked for again once the caller catches up.
    extend_to(seq, now);
    enforce_bound();  // the new gap entry counts against the bound too
    ++counters_.overflows;
    return offer_result::overflow;
  }

  if (known_missing) {
    count_filled(take_seq(seq));
  } else {
    extend_to(seq - 1, now);
    highest_seen_ = seq;
  }
  buffer_.emplace_hint(buffer_.end(), seq, std::string(frame));
  buffer_bytes_ += frame.size();
  enforce_bound();
  return offer_result::buffered;
}

bool receive_stream::has_ready() const noexcept {
  if (!buffer_.empty() && buffer_.begin()->first == next_) return true;
  return !gaps_.empty() && gaps_.begin()->first == next_ && gaps_.begin()->second.lost;
}

std::optional<ready_item> receive_stream::pop_ready() {
  if (!buffer_.empty() && buffer_.begin()->first == next_) {
    auto node = buffer_.extract(buffer_.begin());
    buffer_bytes_ -= node.mapped().size();
    ready_item item{ready_item::kind::frame, {next_, next_}, std::move(node.mapped())};
    ++next_;
    ++counters_.delivered;
    return item;
  }
  if (gaps_.empty() || gaps_.begin()->first != next_ || !gaps_.begin()->second.lost)
    return std::nullopt;
  // One report for a run of adjacent lost gaps: the caller cares about what is missing, not
  // about how we happened to track it.
  const std::uint64_t first = next_;
  std::uint64_t last = first;
  while (!gaps_.empty() && gaps_.begin()->first == next_ && gaps_.begin()->second.lost) {
    last = gaps_.begin()->second.last;
    erase_gap(gaps_.begin());
    next_ = last + 1;
  }
  counters_.lost += last - first + 1;
  return ready_item{ready_item::kind::loss, {first, last}, {}};
}

void receive_stream::on_advert(std::uint64_t highest_sent, std::uint64_t lowest_held,
                               time_point now) {
  const bool too_far =
      highest_sent > highest_seen_ && highest_sent - highest_seen_ > cfg_.max_advance;
  // lowest_held == highest_sent + 1 is consistent: the sender holds nothing any more (its
  // goodbye says so), so every seq still missing up to highest_sent is lost.
  const bool inconsistent =
      lowest_held != 0 && (highest_sent == UINT64_MAX || lowest_held > highest_sent + 1);
  if (too_far || inconsistent) {
    // A forged or corrupt advert must not make us NACK millions of seqs or skip the stream
    // forward; a genuine sender advances within max_advance between two adverts.
    ++counters_.implausible_adverts;
    return;
  }
  if (!heard_ && highest_sent > highest_seen_ && highest_sent - highest_seen_ > cfg_.max_first_gap)
    jump_unasked(highest_sent, now);
  extend_to(highest_sent, now);
  // lowest_held <= highest_sent + 1 <= highest_seen_ + 1 here: everything below it is tracked.
  if (lowest_held > next_) declare_lost_below(lowest_held);
  enforce_bound();
}

std::vector<seq_range> receive_stream::due_nacks(time_point now) {
  return due_nacks(now, UINT64_MAX);
}

std::vector<seq_range> receive_stream::due_nacks(time_point now, std::uint64_t max_seqs) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> due;  // (key, seqs to ask) of gaps to NACK
  std::vector<std::uint64_t> give_up;                         // keys of gaps out of tries
  std::uint64_t left = max_seqs;
  for (auto t = timers_.begin(); t != timers_.end() && t->first <= now; ++t) {
    gap& g = gaps_.find(t->second)->second;
    if (g.tries >= cfg_.nack_max_tries) {
      give_up.push_back(t->second);
    } else if (left == 0) {
      // Over budget: stays due, no try spent. Counted once per hold-back.
      if (!g.deferred) ++counters_.nacks_deferred;
      g.deferred = true;
    } else if (due.size() < cfg_.max_ranges_per_nack) {
      // Within the budget: the first seqs of a long gap (the sender repairs those; the gap
      // shrinks from the front and the rest is asked for on the next try).
      const std::uint64_t n = std::min(left, g.last - t->second + 1);
      due.emplace_back(t->second, n);
      left -= n;
    } else {
      break;  // the rest stay due: next_deadline() <= now tells the caller to call again
    }
  }
  for (std::uint64_t key : give_up) declare_lost(gaps_.find(key), loss_cause::gave_up);

  std::sort(due.begin(), due.end());
  std::vector<seq_range> out;
  out.reserve(due.size());
  for (const auto& [key, n] : due) {
    auto it = gaps_.find(key);
    if (key + n - 1 < it->second.last && gaps_.size() < cfg_.max_reorder) {
      // Asked in part (the budget): the rest is its own gap, asked for as soon as the first
      // part's repairs have had a moment to arrive, not a whole retry interval later.
      auto rest = split(it, key + n);
      rest->second.deferred = false;
      reschedule(rest, now + cfg_.nack_delay_min);
      it = gaps_.find(key);
    }
    gap& g = it->second;
    ++g.tries;
    g.asked = true;
    g.deferred = false;
    const duration wait = g.interval;
    g.interval = next_interval(g.interval);
    reschedule(it, now + wait);
    const std::uint64_t last = key + n - 1;
    if (!out.empty() && out.back().last + 1 == key)
      out.back().last = last;
    else
      out.push_back({key, last});
    counters_.nack_seqs_requested += last - key + 1;
  }
  counters_.nacks_sent += out.size();
  return out;
}

receive_stream::time_point receive_stream::next_deadline() const noexcept {
  return timers_.empty() ? time_point::max() : timers_.begin()->first;
}

void receive_stream::on_foreign_nack(seq_range r, time_point now) {
  if (r.first > r.last) return;
  auto it = gaps_.upper_bound(r.first);
  if (it != gaps_.begin() && std::prev(it)->second.last >= r.first) --it;
  while (it != gaps_.end() && it->first <= r.last) {
    if (!it->second.lost && it->second.next_fire < now + it->second.interval) {
      // Hold back only the overlap, unless splitting would grow the gap table past its bound
      // (a peer sending many tiny foreign NACKs must not cost us memory).
      if (it->first < r.first && gaps_.size() < cfg_.max_reorder) it = split(it, r.first);
      if (it->second.last > r.last && gaps_.size() < cfg_.max_reorder) split(it, r.last + 1);
      reschedule(it, now + it->second.interval);
      it->second.asked = true;
      ++counters_.suppressed;
    }
    ++it;
  }
}

void receive_stream::on_foreign_nack(const std::vector<seq_range>& ranges, time_point now) {
  for (const seq_range& r : ranges) on_foreign_nack(r, now);
}

std::vector<gap_info> receive_stream::gaps() const {
  std::vector<gap_info> out;
  out.reserve(gaps_.size());
  for (const auto& [first, g] : gaps_)
    out.push_back({{first, g.last}, g.lost, g.tries, g.next_fire});
  return out;
}

// --- private ---

receive_stream::gap_map::iterator receive_stream::find_gap(std::uint64_t seq) {
  auto it = gaps_.upper_bound(seq);
  if (it == gaps_.begin()) return gaps_.end();
  --it;
  return it->second.last >= seq ? it : gaps_.end();
}

// Registers [highest_seen_ + 1, last] as missing.
void receive_stream::extend_to(std::uint64_t last, time_point now) {
  if (last <= highest_seen_) return;
  const std::uint64_t first = highest_seen_ + 1;
  highest_seen_ = last;
  ++counters_.gaps_detected;
  if (!gaps_.empty()) {
    // Successive adverts of a silent sender extend one gap rather than piling up entries; only
    // while it has not been NACKed yet, so the new seqs get a full set of tries.
    auto tail = std::prev(gaps_.end());
    gap& t = tail->second;
    if (t.last + 1 == first && !t.lost && t.tries == 0) {
      t.last = last;
      return;
    }
  }
  gap g;
  g.last = last;
  g.next_fire = now + first_delay();
  g.interval = cfg_.nack_retry;
  gaps_.emplace_hint(gaps_.end(), first, g);
  timers_.emplace(g.next_fire, first);
}

// Splits [f, l] into [f, at - 1] and [at, l], both with the same state; returns the second.
receive_stream::gap_map::iterator receive_stream::split(gap_map::iterator it, std::uint64_t at) {
  gap second = it->second;
  it->second.last = at - 1;
  auto out = gaps_.emplace_hint(std::next(it), at, second);
  if (!second.lost) timers_.emplace(second.next_fire, at);
  return out;
}

void receive_stream::erase_gap(gap_map::iterator it) {
  if (!it->second.lost) timers_.erase({it->second.next_fire, it->first});
  gaps_.erase(it);
}

// A missing seq arrived: cut it out of its gap. Returns whether it had been asked for (NACKed
// by us or another receiver, or given up), which tells a repair from a frame merely overtaken.
bool receive_stream::take_seq(std::uint64_t seq) {
  auto it = find_gap(seq);
  if (it == gaps_.end()) return false;  // unreachable while the invariant holds
  const bool asked = it->second.asked || it->second.lost;
  const bool repair = it->second.asked && !it->second.lost;
  if (it->first < seq) it = split(it, seq);
  if (it->second.last > seq) split(it, seq + 1);
  erase_gap(it);
  if (repair) {
    // A repair came: the sender is answering. What is left of the gap starts its tries again,
    // so a long gap asked for in parts (the NACK budget) or whose repairs were partly lost too
    // (a receiver whose buffer overflows) is given up only when the sender stops answering.
    if (auto after = gaps_.find(seq + 1); after != gaps_.end() && !after->second.lost)
      after->second.tries = 0;
    if (seq > 0) {
      if (auto before = find_gap(seq - 1); before != gaps_.end() && !before->second.lost)
        before->second.tries = 0;
    }
  }
  return asked;
}

void receive_stream::count_filled(bool asked) noexcept {
  ++(asked ? counters_.recovered : counters_.reordered);
}

void receive_stream::reschedule(gap_map::iterator it, time_point fire) {
  if (it->second.lost) return;
  timers_.erase({it->second.next_fire, it->first});
  it->second.next_fire = fire;
  timers_.emplace(fire, it->first);
}

void receive_stream::declare_lost(gap_map::iterator it, loss_cause cause) {
  gap& g = it->second;
  if (g.lost) return;
  timers_.erase({g.next_fire, it->first});
  g.lost = true;
  const std::uint64_t n = g.last - it->first + 1;
  switch (cause) {
    case loss_cause::gave_up:
      counters_.given_up += n;
      break;
    case loss_cause::space:
      counters_.dropped_for_space += n;
      break;
    case loss_cause::unavailable:
      counters_.unavailable += n;
      break;
    case loss_cause::unasked:
      counters_.unasked += n;
      break;
  }
}

// Every missing seq below `seq` is unrecoverable.
void receive_stream::declare_lost_below(std::uint64_t seq) {
  for (auto it = gaps_.begin(); it != gaps_.end() && it->first < seq; ++it) {
    if (it->second.last >= seq) split(it, seq);
    declare_lost(it, loss_cause::unavailable);
  }
}

std::size_t receive_stream::shed() {
  const std::size_t freed = buffer_bytes_;
  if (highest_seen_ < next_) return freed;
  for (auto it = gaps_.begin(); it != gaps_.end(); ++it) declare_lost(it, loss_cause::space);
  counters_.dropped_for_space += buffer_.size();
  buffer_.clear();
  buffer_bytes_ = 0;
  gaps_.clear();
  timers_.clear();
  gap g;
  g.last = highest_seen_;
  g.lost = true;
  gaps_.emplace(next_, g);
  return freed;
}

// [highest_seen_ + 1, last] are missing, but this new stream will not ask for them: lost now.
void receive_stream::jump_unasked(std::uint64_t last, time_point now) {
  extend_to(last, now);
  declare_lost(std::prev(gaps_.end()), loss_cause::unasked);
}

// Keeps what remains buffered after the caller's next drain within max_reorder frames,
// max_reorder_bytes and max_reorder gap entries, by abandoning the oldest gaps: walk the
// stream from next_ as pop_ready() will, and declare lost each pending gap in the way until
// enough frames become drainable.
void receive_stream::enforce_bound() {
  std::size_t frames = buffer_.size();
  std::size_t bytes = buffer_bytes_;
  std::size_t entries = gaps_.size();
  auto over = [&] {
    return frames > cfg_.max_reorder || bytes > cfg_.max_reorder_bytes ||
           entries > cfg_.max_reorder;
  };
  std::uint64_t pos = next_;
  auto b = buffer_.begin();
  auto g = gaps_.begin();
  while (over()) {
    if (b != buffer_.end() && b->first == pos) {
      --frames;
      bytes -= b->second.size();
      ++b;
      ++pos;
    } else if (g != gaps_.end() && g->first == pos) {
      declare_lost(g, loss_cause::space);
      --entries;
      pos = g->second.last + 1;
      ++g;
    } else {
      break;  // past highest_seen_: nothing left to give up
    }
  }
}

receive_stream::duration receive_stream::first_delay() {
  const auto lo = cfg_.nack_delay_min.count();
  const auto span = static_cast<std::uint64_t>(cfg_.nack_delay_max.count() - lo);
  if (span == 0) return cfg_.nack_delay_min;
  // Modulo rather than std::uniform_int_distribution: the same seed gives the same delays with
  // every standard library; the bias (span / 2^64) is nil.
  return duration(lo + static_cast<duration::rep>((*rng_)() % (span + 1)));
}

receive_stream::duration receive_stream::next_interval(duration d) const {
  const double next = static_cast<double>(d.count()) * cfg_.nack_backoff;
  if (next >= static_cast<double>(cfg_.nack_retry_max.count())) return cfg_.nack_retry_max;
  return duration(static_cast<duration::rep>(next));
}

}  // namespace peerbus::detail
