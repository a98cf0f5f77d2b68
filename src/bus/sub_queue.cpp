// bus/sub_queue.cpp: the queued subscription's thread: pop, call the handler, report what it threw.
#include "bus/sub_queue.hpp"

#include <exception>
#include <utility>

namespace peerbus::detail {

namespace {
thread_local const sub_queue* this_thread_queue = nullptr;
}

sub_queue::sub_queue(config c, message_handler fn) : cfg_(std::move(c)), fn_(std::move(fn)) {}

std::shared_ptr<sub_queue> sub_queue::start(config c, message_handler fn) {
  std::shared_ptr<sub_queue> q(new sub_queue(std::move(c), std::move(fn)));
  q->thread_ = std::thread([q] { q->run(); });
  return q;
}

sub_queue::~sub_queue() {
  // The thread holds a reference until its function returns: if this runs elsewhere, the thread
  // is about to end; if it runs on the thread itself (its reference was the last), detach.
  stop();
  join();
}

const sub_queue* sub_queue::current() noexcept { return this_thread_queue; }

void sub_queue::stop() noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    q_.clear();
    bytes_ = 0;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
}

void sub_queue::join() {
  std::lock_guard<std::mutex> lock(join_mu_);
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id()) thread_.detach();
  else thread_.join();
}

sub_queue::counts sub_queue::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  counts c = counts_;
  c.queued = q_.size();
  c.queued_bytes = bytes_;
  return c;
}

void sub_queue::run() {
  this_thread_queue = this;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    not_empty_.wait(lock, [this] { return stopping_ || !q_.empty(); });
    if (stopping_) break;
    {
      owned_message m = std::move(q_.front());
      q_.pop_front();
      bytes_ -= m.size();
      // Counted under the lock, before the call: after stop() nothing touches the owner's counter.
      ++counts_.delivered;
      if (cfg_.also_count) cfg_.also_count->fetch_add(1, std::memory_order_relaxed);
      lock.unlock();
      not_full_.notify_one();
      // A handler that throws must not end this thread (std::terminate): reported, and on.
      try {
        fn_(m.view());
      } catch (const std::exception& e) {
        if (cfg_.log)
          cfg_.log(log_level::error, "handler for " + cfg_.pattern + " threw: " + e.what());
      } catch (...) {
        if (cfg_.log) cfg_.log(log_level::error, "handler for " + cfg_.pattern + " threw a non-exception");
      }
    }
    lock.lock();
  }
  exited_.store(true);
  this_thread_queue = nullptr;
}

}  // namespace peerbus::detail
