// peerbus/subscription.hpp: a move-only handle that keeps a handler registered while it lives.
#pragma once

#include <functional>
#include <utility>

namespace peerbus {

/// Returned by bus::subscribe(), bus::on_peer_event() and bus::on_loss(). Destroying it (or
/// calling unsubscribe()) removes the handler. Safe to call from any thread, including from
/// inside the handler itself. A handler already running on the bus thread finishes its call. For
/// a queued subscription (subscribe_options::queue_limit), unsubscribe() from a thread that is
/// not one of the bus's also waits for that call to return, and discards what is still queued.
class subscription {
 public:
  subscription() = default;
  explicit subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  subscription(subscription&& other) noexcept : cancel_(std::exchange(other.cancel_, {})) {}
  subscription& operator=(subscription&& other) noexcept {
    if (this != &other) {
      unsubscribe();
      cancel_ = std::exchange(other.cancel_, {});
    }
    return *this;
  }
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  ~subscription() { unsubscribe(); }

  void unsubscribe() {
    if (auto cancel = std::exchange(cancel_, {})) cancel();
  }
  bool active() const noexcept { return static_cast<bool>(cancel_); }

 private:
  std::function<void()> cancel_;
};

}  // namespace peerbus
