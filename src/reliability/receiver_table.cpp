// reliability/receiver_table.cpp: which receivers a sender waits for before evicting frames.
#include "reliability/receiver_table.hpp"

#include <algorithm>
#include <limits>

namespace peerbus::detail {

void receiver_table::on_announce(std::uint64_t id, std::uint64_t have, std::uint64_t have_mark,
                                 std::uint64_t rwin, rel_clock::time_point alive_until,
                                 rel_clock::time_point now) {
  auto [it, fresh] = receivers_.try_emplace(id);
  receiver& r = it->second;
  r.alive_until = alive_until;
  rwin = std::min(rwin, max_rwin);
  if (r.rwin != rwin) {
    r.rwin = rwin;
    dirty_ = true;
  }
  if (fresh) {
    r.have = have;
    r.mark = have_mark;
    r.mark_known = true;
    r.progress = now;
    dirty_ = true;
  }
}

void receiver_table::on_report(std::uint64_t id, std::uint64_t have,
                               std::optional<std::uint64_t> have_mark, std::uint64_t highest_sent,
                               rel_clock::time_point now) {
  auto it = receivers_.find(id);
  if (it == receivers_.end()) return;
  have = std::min(have, highest_sent);  // nobody holds what we have not sent
  receiver& r = it->second;
  // The first report replaces our guess, even downwards (it lacks more than we thought);
  // after that, never back: reports cross on the wire.
  const bool news = r.confirmed ? have > r.have : have != r.have;
  r.confirmed = true;
  if (!news) return;
  r.have = have;
  r.mark_known = have_mark.has_value();
  r.mark = have_mark.value_or(0);
  r.progress = now;
  r.stalled = false;
  dirty_ = true;
}

void receiver_table::recompute() {
  floor_ = std::numeric_limits<std::uint64_t>::max();
  byte_floor_ = std::numeric_limits<std::uint64_t>::max();
  for (const auto& [id, r] : receivers_) {
    if (r.stalled) continue;
    floor_ = std::min(floor_, r.have);
    if (r.rwin != 0 && r.mark_known) byte_floor_ = std::min(byte_floor_, r.mark + r.rwin);
  }
  dirty_ = false;
}

bool receiver_table::holds(std::uint64_t evicts_through, std::uint64_t bytes_after,
                           std::uint64_t highest_sent, std::uint64_t lowest,
                           rel_clock::time_point now, rel_clock::time_point waiting_since,
                           rel_clock::duration stall_max) {
  bool held = false;
  for (auto it = receivers_.begin(); it != receivers_.end();) {
    receiver& r = it->second;
    if (now > r.alive_until) {  // its heartbeats stopped: gone
      it = receivers_.erase(it);
      dirty_ = true;
      continue;
    }
    const bool needs_evicted = r.have < evicts_through;
    const bool too_far_ahead = r.rwin != 0 && r.mark_known && r.have < highest_sent &&
                               bytes_after > r.mark + r.rwin;
    if (!r.stalled && (needs_evicted || too_far_ahead)) {
      if (needs_evicted && r.have + 1 < lowest) {
        // Out of reach: frames it lacks are gone already; waiting saves nothing. Left out (not
        // a stall) until it reports progress.
        r.stalled = true;
        dirty_ = true;
      } else if (now - std::max(r.progress, waiting_since) >= stall_max) {
        r.stalled = true;
        ++stalls_;
        dirty_ = true;
      } else {
        held = true;
      }
    }
    ++it;
  }
  return held;
}

}  // namespace peerbus::detail
