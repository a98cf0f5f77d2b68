// bus/call_table.cpp: pending outgoing calls: correlation, deadlines, peer loss.
#include "bus/call_table.hpp"

#include <algorithm>

namespace peerbus::detail {

std::uint64_t call_table::add(std::vector<target> targets, clock::time_point now,
                              clock::time_point deadline, completion fn) {
  std::uint64_t cid = next_cid_++;
  pending p;
  for (auto& t : targets) {
    slot s;
    s.result.peer = peer_id{t.peer};
    s.result.peer_name = t.name;
    s.who = std::move(t);
    p.slots.push_back(std::move(s));
  }
  p.open = p.slots.size();
  p.sent = now;
  p.deadline = deadline;
  p.fn = std::move(fn);
  calls_.emplace(cid, std::move(p));
  return cid;
}

bool call_table::remove(std::uint64_t cid) { return calls_.erase(cid) > 0; }

void call_table::settle(pending& p, slot& s, call_result r, clock::time_point now) {
  r.peer = peer_id{s.who.peer};
  r.peer_name = s.who.name;
  r.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(now - p.sent);
  s.result = std::move(r);
  s.done = true;
  --p.open;
}

call_table::finished call_table::finish(pending& p) {
  finished f;
  f.fn = std::move(p.fn);
  for (auto& s : p.slots) f.results.push_back(std::move(s.result));
  return f;
}

std::vector<call_table::finished> call_table::on_reply(std::uint64_t from, std::uint64_t cid,
                                                       call_result r, clock::time_point now) {
  std::vector<finished> out;
  auto it = calls_.find(cid);
  if (it == calls_.end()) return out;
  auto& p = it->second;
  for (auto& s : p.slots) {
    if (s.who.peer != from || s.done) continue;
    settle(p, s, std::move(r), now);
    if (p.open == 0) {
      out.push_back(finish(p));
      calls_.erase(it);
    }
    break;
  }
  return out;
}

std::vector<call_table::finished> call_table::on_peer_gone(std::uint64_t peer, bool expired,
                                                           clock::time_point now) {
  std::vector<finished> out;
  for (auto it = calls_.begin(); it != calls_.end();) {
    auto& p = it->second;
    for (auto& s : p.slots) {
      if (s.who.peer != peer || s.done) continue;
      call_result r;
      r.error.code = call_errc::peer_gone;
      r.error.message = s.who.name +
                        (expired ? " expired (stopped sending heartbeats)" : " left the bus") +
                        " before replying";
      settle(p, s, std::move(r), now);
    }
    if (p.open == 0) {
      out.push_back(finish(p));
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<call_table::finished> call_table::expire(clock::time_point now) {
  std::vector<finished> out;
  for (auto it = calls_.begin(); it != calls_.end();) {
    auto& p = it->second;
    if (p.deadline > now) {
      ++it;
      continue;
    }
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(p.deadline - p.sent);
    for (auto& s : p.slots) {
      if (s.done) continue;
      call_result r;
      r.error.code = call_errc::timeout;
      r.error.message =
          "no reply from " + s.who.name + " within " + std::to_string(waited.count()) + " ms";
      settle(p, s, std::move(r), now);
    }
    out.push_back(finish(p));
    it = calls_.erase(it);
  }
  return out;
}

std::vector<call_table::finished> call_table::fail_all(call_errc code, const std::string& message,
                                                       clock::time_point now) {
  std::vector<finished> out;
  for (auto& [cid, p] : calls_) {
    for (auto& s : p.slots) {
      if (s.done) continue;
      call_result r;
      r.error.code = code;
      r.error.message = message;
      settle(p, s, std::move(r), now);
    }
    out.push_back(finish(p));
  }
  calls_.clear();
  return out;
}

call_table::clock::time_point call_table::next_deadline() const {
  auto d = clock::time_point::max();
  for (auto& [cid, p] : calls_) d = std::min(d, p.deadline);
  return d;
}

}  // namespace peerbus::detail
