// bus/reassembly.cpp: the reassembler: consecutive fragments joined, everything else lost once.
#include "bus/reassembly.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace peerbus::detail {

namespace {

std::uint64_t last_of(std::uint64_t first, std::uint64_t count) {
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  return count == 0 ? first : first > max - (count - 1) ? max : first + (count - 1);
}

}  // namespace

reassembly_loss reassembler::drop_partial(sender_state& s, std::uint64_t until) {
  const partial& p = *s.p;
  reassembly_loss l{p.first_seq, std::min(last_of(p.first_seq, p.nfrag), until)};
  bytes_ -= p.size;
  --partials_;
  s.p.reset();
  s.reported_through = std::max(s.reported_through, l.last);
  return l;
}

void reassembler::forget_if_done(std::uint64_t sender, std::uint64_t seq) {
  auto it = senders_.find(sender);
  if (it == senders_.end()) return;
  const sender_state& s = it->second;
  if (!s.p && s.lost_through == 0 && seq >= s.reported_through) senders_.erase(it);
}

reassembler::outcome reassembler::offer(std::uint64_t sender, const fragment_in& f,
                                        rel_clock::time_point now) {
  outcome out;
  sender_state& s = senders_[sender];
  if (s.p) {
    partial& p = *s.p;
    if (f.frag == p.next_frag && f.seq == p.first_seq + p.next_frag && f.nfrag == p.nfrag &&
        f.size == p.size && f.topic == p.topic && f.ctype == p.ctype &&
        f.body.size() <= p.size - p.bytes.size()) {
      p.bytes += f.body;
      p.last_progress = now;
      if (++p.next_frag < p.nfrag) return out;
      if (p.bytes.size() != p.size) {
        out.losses.push_back(drop_partial(s, f.seq));  // the fragments do not add up
      } else {
        out.message = reassembled{p.first_seq, p.ts, std::move(p.topic), std::move(p.ctype),
                                  std::move(p.bytes)};
        bytes_ -= p.size;
        --partials_;
        s.p.reset();
      }
      forget_if_done(sender, f.seq);
      return out;
    }
    // It does not follow on: the partial message can never complete.
    out.losses.push_back(drop_partial(s, f.seq - 1));
  }
  const std::uint64_t lost_through = std::exchange(s.lost_through, 0);
  if (f.seq <= s.reported_through) {  // a late fragment of a message already reported lost
    forget_if_done(sender, f.seq);
    return out;
  }
  if (f.frag != 0) {
    // Its start is missing. Right after a loss that covered the start: the rest of it is lost
    // too. Otherwise we joined in the middle of it: nothing of it was ours to miss.
    const std::uint64_t start = f.frag < f.seq ? f.seq - f.frag : 0;
    const std::uint64_t end = last_of(f.seq, f.nfrag - f.frag);
    if (start != 0 && lost_through >= start) out.losses.push_back({f.seq, end});
    s.reported_through = end;  // its other fragments are swallowed either way
    forget_if_done(sender, f.seq);
    return out;
  }
  if (f.size > cfg_.max_message || f.size > cfg_.max_bytes - std::min(bytes_, cfg_.max_bytes)) {
    const reassembly_loss l{f.seq, last_of(f.seq, f.nfrag)};
    out.losses.push_back(l);
    s.reported_through = l.last;
    return out;
  }
  partial p;
  p.first_seq = f.seq;
  p.nfrag = f.nfrag;
  p.size = f.size;
  p.next_frag = 1;
  p.topic = std::string(f.topic);
  p.ctype = std::string(f.ctype);
  p.ts = f.ts;
  p.bytes.reserve(f.size);  // counted in full from the start: the bound holds what is promised
  p.bytes += f.body;
  p.last_progress = now;
  s.p = std::move(p);
  bytes_ += f.size;
  ++partials_;
  return out;
}

reassembler::outcome reassembler::other(std::uint64_t sender, std::uint64_t seq) {
  outcome out;
  auto it = senders_.find(sender);
  if (it == senders_.end()) return out;
  sender_state& s = it->second;
  if (s.p) out.losses.push_back(drop_partial(s, seq - 1));
  s.lost_through = 0;
  out.swallow = seq <= s.reported_through;
  forget_if_done(sender, seq);
  return out;
}

std::vector<reassembly_loss> reassembler::on_loss(std::uint64_t sender, std::uint64_t first,
                                                  std::uint64_t last) {
  std::vector<reassembly_loss> out;
  sender_state& s = senders_[sender];
  if (s.p) {
    reassembly_loss l = drop_partial(s, std::numeric_limits<std::uint64_t>::max());
    l.last = std::max(l.last, last);
    out.push_back(l);
  } else {
    first = std::max(first, s.reported_through + 1);
    if (first <= last) out.push_back({first, last});
  }
  s.reported_through = std::max(s.reported_through, last);
  s.lost_through = last;
  return out;
}

std::vector<reassembly_loss> reassembler::on_gone(std::uint64_t sender) {
  std::vector<reassembly_loss> out;
  auto it = senders_.find(sender);
  if (it == senders_.end()) return out;
  if (it->second.p) out.push_back(drop_partial(it->second, std::numeric_limits<std::uint64_t>::max()));
  senders_.erase(it);
  return out;
}

std::vector<std::pair<std::uint64_t, reassembly_loss>> reassembler::expire(rel_clock::time_point now) {
  std::vector<std::pair<std::uint64_t, reassembly_loss>> out;
  if (partials_ == 0) return out;
  for (auto& [sender, s] : senders_)
    if (s.p && now - s.p->last_progress >= cfg_.timeout)
      out.emplace_back(sender, drop_partial(s, std::numeric_limits<std::uint64_t>::max()));
  return out;
}

rel_clock::time_point reassembler::next_deadline() const {
  auto next = rel_clock::time_point::max();
  if (partials_ == 0) return next;
  for (const auto& [sender, s] : senders_)
    if (s.p) next = std::min(next, s.p->last_progress + cfg_.timeout);
  return next;
}

}  // namespace peerbus::detail
