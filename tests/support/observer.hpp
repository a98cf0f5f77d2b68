// support/observer.hpp: an in-process peerbus::bus that records peer events (and, if asked,
// messages) with the time they arrived, for tests that watch CLI processes on a private bus.
#pragma once

#include <peerbus/bus.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace peerbus::test {

struct observed_event {
  peer_event_kind kind;
  peer_info peer;
  std::chrono::steady_clock::time_point at;  // when the handler ran
};

struct observed_message {
  std::string topic, sender_name, data;
  peer_id from;
  std::uint64_t seq = 0;
};

// Joins `url` as `name`. With a non-empty `pattern` it also subscribes (and so counts as a
// subscriber for `pub --wait-subscribers`); by default it only listens to presence.
//
//   observer obs(url);
//   child sub = spawn_peerbus({"sub", "--url", url});
//   auto ev = obs.wait_event(peer_event_kind::joined, sub.pid(), 2s);
class observer {
 public:
  explicit observer(const std::string& url, std::string name = "test-observer",
                    const std::string& pattern = {});
  ~observer();

  bus& get() { return *bus_; }

  // The first recorded event (from the start) satisfying `pred`, waiting up to `timeout`.
  std::optional<observed_event> wait_event(const std::function<bool(const observed_event&)>& pred,
                                           std::chrono::milliseconds timeout) const;
  // ... of `kind` from the peer with process id `pid`.
  std::optional<observed_event> wait_event(peer_event_kind kind, long long pid,
                                           std::chrono::milliseconds timeout) const;
  std::vector<observed_event> events() const;

  // True once `pred` holds for the messages received so far (only with a pattern).
  bool wait_messages(const std::function<bool(const std::vector<observed_message>&)>& pred,
                     std::chrono::milliseconds timeout) const;
  std::vector<observed_message> messages() const;

 private:
  mutable std::mutex m_;
  mutable std::condition_variable cv_;
  std::vector<observed_event> events_;
  std::vector<observed_message> messages_;
  std::unique_ptr<bus> bus_;
  subscription events_sub_, messages_sub_;
};

}  // namespace peerbus::test
