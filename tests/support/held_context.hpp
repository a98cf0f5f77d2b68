// support/held_context.hpp: an io_context run by a thread of the test's, which the test can
// hold: while held, a bus on it (bus(io_context&)) runs nothing: no end of burst, no heartbeat,
// no read of its socket.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace peerbus::test {

// An io_context run by a thread of the test's. hold() parks that thread in a handler until
// release(), so nothing posted to the bus's strand (end of burst, heartbeats, NACK answers) runs.
class held_context {
 public:
  asio::io_context ctx;

  held_context() : thread_([this] { run(); }) {}
  ~held_context() {
    release();
    work_.reset();
    // Every bus on the context is closed by now (declared after it): its operations finish and
    // run() returns. Bounded all the same.
    std::unique_lock<std::mutex> lock(m_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return finished_; })) ctx.stop();
    lock.unlock();
    thread_.join();
  }

  void hold() {
    std::unique_lock<std::mutex> lock(m_);
    held_ = true;
    holding_ = false;
    asio::post(ctx, [this] {
      std::unique_lock<std::mutex> l(m_);
      holding_ = true;
      cv_.notify_all();
      cv_.wait_for(l, std::chrono::seconds(20), [&] { return !held_; });  // bounded: a failed test must still end
    });
    REQUIRE(cv_.wait_for(lock, std::chrono::seconds(10), [&] { return holding_; }));
  }
  void release() {
    std::lock_guard<std::mutex> lock(m_);
    held_ = false;
    cv_.notify_all();
  }

 private:
  void run() {
    ctx.run();
    std::lock_guard<std::mutex> lock(m_);
    finished_ = true;
    cv_.notify_all();
  }

  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(ctx);
  std::mutex m_;
  std::condition_variable cv_;
  bool held_ = false, holding_ = false, finished_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace peerbus::test
