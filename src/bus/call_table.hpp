// bus/call_table.hpp: pending outgoing calls: correlation, deadlines, peer loss. Pure, no I/O.
#pragma once

#include <peerbus/call.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace peerbus::detail {

/// The calls this bus is waiting on. A call has one cid and one or more target peers (a pattern
/// call sends one request per peer, all with the same cid); it completes when every target has
/// an outcome: a reply, its departure, or the deadline. No I/O, no clock: every operation takes
/// `now`, so the unit tests drive it with a fake clock. Not thread-safe: the bus holds a mutex.
class call_table {
 public:
  using clock = std::chrono::steady_clock;
  using completion = std::function<void(std::vector<call_result>)>;

  struct target {
    std::uint64_t peer = 0;
    std::string name;  ///< display name, for messages ("editor@3f9a")
  };
  /// A call whose outcome is known: run it (outside any lock) to hand the results on.
  struct finished {
    completion fn;
    std::vector<call_result> results;
    void run() {
      if (fn) fn(std::move(results));
    }
  };

  /// Registers a call to `targets` (non-empty), sent at `now`, that times out at `deadline`.
  /// Returns its cid (1, 2, ...).
  std::uint64_t add(std::vector<target> targets, clock::time_point now, clock::time_point deadline,
                    completion fn);
  /// Removes a call that could not be sent (no outcome is reported). False when it was no longer
  /// pending (completed meanwhile, e.g. by fail_all from close()).
  bool remove(std::uint64_t cid);

  /// A reply from `from` to call `cid`: `r` is the outcome (value or error); the table fills in
  /// peer, name and elapsed. A reply nobody waits for (late, duplicate, forged) is ignored.
  std::vector<finished> on_reply(std::uint64_t from, std::uint64_t cid, call_result r,
                                 clock::time_point now);
  /// `peer` left (said goodbye) or expired: every call still waiting on it gets peer_gone.
  std::vector<finished> on_peer_gone(std::uint64_t peer, bool expired, clock::time_point now);
  /// Every call whose deadline is at or before `now`: its unanswered targets get timeout.
  std::vector<finished> expire(clock::time_point now);
  /// Completes everything with `code` (the bus is closing).
  std::vector<finished> fail_all(call_errc code, const std::string& message, clock::time_point now);

  /// The earliest deadline, or time_point::max() when nothing is pending.
  clock::time_point next_deadline() const;
  std::size_t size() const noexcept { return calls_.size(); }

 private:
  struct slot {
    target who;
    bool done = false;
    call_result result;
  };
  struct pending {
    std::vector<slot> slots;
    std::size_t open = 0;
    clock::time_point sent, deadline;
    completion fn;
  };
  static void settle(pending& p, slot& s, call_result r, clock::time_point now);
  static finished finish(pending& p);

  std::uint64_t next_cid_ = 1;
  std::map<std::uint64_t, pending> calls_;
};

}  // namespace peerbus::detail
