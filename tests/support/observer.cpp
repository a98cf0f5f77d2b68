// support/observer.cpp: an in-process bus that records what it sees.
#include "support/observer.hpp"

namespace peerbus::test {

observer::observer(const std::string& url, std::string name, const std::string& pattern) {
  options o;
  o.url = url;
  o.name = std::move(name);
  bus_ = std::make_unique<bus>(o);
  events_sub_ = bus_->on_peer_event([this](const peer_event& ev) {
    std::lock_guard lk(m_);
    events_.push_back({ev.kind, ev.peer, std::chrono::steady_clock::now()});
    cv_.notify_all();
  });
  if (!pattern.empty()) {
    messages_sub_ = bus_->subscribe(pattern, [this](const message& msg) {
      std::lock_guard lk(m_);
      messages_.push_back({std::string(msg.topic()), std::string(msg.sender_name()),
                           std::string(msg.data_json()), msg.sender(), msg.seq()});
      cv_.notify_all();
    });
  }
}

observer::~observer() {
  // Handlers touch members: remove them before the bus and the vectors go.
  messages_sub_.unsubscribe();
  events_sub_.unsubscribe();
  bus_->close();
}

std::optional<observed_event> observer::wait_event(
    const std::function<bool(const observed_event&)>& pred,
    std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lk(m_);
  std::size_t checked = 0;
  for (;;) {
    for (; checked < events_.size(); ++checked)
      if (pred(events_[checked])) return events_[checked];
    if (cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
      for (; checked < events_.size(); ++checked)
        if (pred(events_[checked])) return events_[checked];
      return std::nullopt;
    }
  }
}

std::optional<observed_event> observer::wait_event(peer_event_kind kind, long long pid,
                                                   std::chrono::milliseconds timeout) const {
  return wait_event([&](const observed_event& e) { return e.kind == kind && e.peer.pid == pid; },
                    timeout);
}

std::vector<observed_event> observer::events() const {
  std::lock_guard lk(m_);
  return events_;
}

bool observer::wait_messages(
    const std::function<bool(const std::vector<observed_message>&)>& pred,
    std::chrono::milliseconds timeout) const {
  std::unique_lock lk(m_);
  return cv_.wait_for(lk, timeout, [&] { return pred(messages_); });
}

std::vector<observed_message> observer::messages() const {
  std::lock_guard lk(m_);
  return messages_;
}

}  // namespace peerbus::test
