// bus/sub_queue.hpp: a queued subscription: its bounded queue, its overflow policy, and the thread
// that calls its handler.
#pragma once

#include <peerbus/bus.hpp>
#include <peerbus/log.hpp>
#include <peerbus/message.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace peerbus::detail {

/// One producer (the bus's strand) pushes copies of delivered messages; one thread of its own
/// pops them and calls the handler, one call at a time, in push order. Holds at most `limit`
/// messages and `max_bytes` bytes (owned_message::size), except that an empty queue takes any one
/// message. Knows nothing of the bus but an opaque owner (for "is this one of the bus's
/// threads?") and a counter to add its handler calls to.
///
/// Lifetime: the thread holds a shared_ptr to the queue, so a thread that had to be detached
/// (join() called on itself) never outlives what it uses. After stop() the thread touches
/// nothing but the queue: the owner may then go away.
class sub_queue : public std::enable_shared_from_this<sub_queue> {
 public:
  struct config {
    std::size_t limit = 1;
    std::size_t max_bytes = std::size_t{16} << 20;
    overflow_policy policy = overflow_policy::drop_oldest;
    const void* owner = nullptr;
    std::string pattern;                                // for reports
    log_handler log;                                    // a handler that throws is reported here
    std::atomic<std::uint64_t>* also_count = nullptr;   // the owner's handler-call counter
  };
  struct counts {
    std::uint64_t delivered = 0, dropped = 0, waits = 0;
    std::size_t queued = 0, queued_max = 0, queued_bytes = 0;
  };
  enum class push_result : std::uint8_t {
    queued,   ///< queued (for drop_oldest, maybe after dropping older ones)
    dropped,  ///< drop_newest: the message itself was dropped
    stopped,  ///< the queue is stopped: nothing done
  };

  /// Starts the thread. Throws std::system_error if it cannot.
  static std::shared_ptr<sub_queue> start(config c, message_handler fn);
  ~sub_queue();
  sub_queue(const sub_queue&) = delete;
  sub_queue& operator=(const sub_queue&) = delete;

  /// Producer only. Every message dropped to make room (drop_oldest) or refused (drop_newest)
  /// goes to `on_drop(const message&)`, outside the lock, oldest first. `block` waits for room,
  /// calling `on_wait()` (outside the lock) after each wake-up, at least every `tick`; it returns
  /// `stopped` if the queue is stopped meanwhile.
  template <class OnDrop, class OnWait>
  push_result push(const message& m, OnDrop&& on_drop, OnWait&& on_wait,
                   std::chrono::milliseconds tick);

  /// Any thread, idempotent: no handler call starts after this; what is queued is discarded; a
  /// producer waiting for room returns. A call already running finishes.
  void stop() noexcept;
  /// Any thread: waits for the thread to end (call stop() first); on the queue's own thread it
  /// detaches it instead.
  void join();
  /// The thread has left its loop (join() returns at once).
  bool exited() const noexcept { return exited_.load(); }

  counts snapshot() const;
  const config& settings() const noexcept { return cfg_; }

  /// The queue whose handler this thread is calling; null on any other thread.
  static const sub_queue* current() noexcept;

 private:
  sub_queue(config c, message_handler fn);
  void run();
  bool full(std::size_t incoming) const noexcept {
    return !q_.empty() && (q_.size() >= cfg_.limit || bytes_ + incoming > cfg_.max_bytes);
  }

  const config cfg_;
  message_handler fn_;
  mutable std::mutex mu_;
  std::condition_variable not_empty_;  // the thread waits here
  std::condition_variable not_full_;   // a blocked producer waits here
  std::deque<owned_message> q_;
  std::size_t bytes_ = 0;
  bool stopping_ = false;
  counts counts_;
  std::vector<owned_message> evicted_;  // producer only: drop_oldest's victims, reported unlocked
  std::atomic<bool> exited_{false};
  std::mutex join_mu_;
  std::thread thread_;
};

template <class OnDrop, class OnWait>
sub_queue::push_result sub_queue::push(const message& m, OnDrop&& on_drop, OnWait&& on_wait,
                                       std::chrono::milliseconds tick) {
  const std::size_t size = m.topic().size() + m.sender_name().size() + m.data_json().size();
  std::unique_lock<std::mutex> lock(mu_);
  bool waited = false;
  while (!stopping_ && full(size)) {
    if (cfg_.policy == overflow_policy::drop_newest) {
      ++counts_.dropped;
      lock.unlock();
      on_drop(m);
      return push_result::dropped;
    }
    if (cfg_.policy == overflow_policy::drop_oldest) {
      bytes_ -= q_.front().size();
      evicted_.push_back(std::move(q_.front()));
      q_.pop_front();
      ++counts_.dropped;
      continue;
    }
    if (!waited) ++counts_.waits;
    waited = true;
    not_full_.wait_for(lock, tick);
    lock.unlock();
    on_wait();
    lock.lock();
  }
  if (stopping_) {
    evicted_.clear();  // what a stopped queue held is discarded, not reported
    return push_result::stopped;
  }
  q_.emplace_back(m);
  bytes_ += size;
  if (q_.size() > counts_.queued_max) counts_.queued_max = q_.size();
  lock.unlock();
  not_empty_.notify_one();
  for (const auto& e : evicted_) on_drop(e.view());
  evicted_.clear();
  return push_result::queued;
}

}  // namespace peerbus::detail
