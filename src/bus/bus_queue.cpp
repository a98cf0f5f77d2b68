// bus/bus_queue.cpp: the bus's side of queued subscriptions: handing messages to their queues,
// reporting what they drop, back-pressure on the strand, and stopping them.
#include "bus/bus_impl.hpp"

#include "bus/bus_limits.hpp"

#include <asio/bind_executor.hpp>

namespace peerbus::detail {

bool bus_impl::on_bus_thread() const {
  if (strand_.running_in_this_thread()) return true;
  const sub_queue* q = sub_queue::current();
  return q && q->settings().owner == this;
}

bool bus_impl::may_block() const {
  if (strand_.running_in_this_thread()) return false;
  const sub_queue* q = sub_queue::current();
  return !(q && q->settings().owner == this && q->settings().policy == overflow_policy::block);
}

void bus_impl::enqueue(const std::shared_ptr<sub_entry>& s, const message& m) {
  s->queue->push(
      m, [&](const message& dropped) { note_queue_drop(s, dropped); }, [this] { while_blocked(); },
      queue_wait_tick);
}

// Called by a block queue's push after each wait for room: the strand's timers cannot run now,
// and one turn of the strand may deliver many messages (a repaired gap releases what waited
// behind it), each waiting for the handler.
void bus_impl::while_blocked() {
  const auto now = rel_clock::now();
  // Heartbeats go on, so that peers do not expire a process that is only slow.
  if (now >= next_heartbeat_) {
    send_heartbeat();
    next_heartbeat_ = now + opts_.heartbeat_interval;
  }
  // What the peers send meanwhile waits unread in the socket buffer: their silence is ours.
  if (now - last_grace_ >= queue_wait_tick) {
    last_grace_ = now;
    std::lock_guard<std::mutex> lock(rx_mu_);
    peers_.grace(now);
  }
  // Senders waiting for us (flow control, docs/protocol.md 8.9) cannot get our answers to their
  // asks while we wait here: tell them how far we got, every 100 ms while it moves.
  if (now - last_blocked_report_ >= flow_blocked_report_every) {
    last_blocked_report_ = now;
    std::vector<std::string> reports;
    {
      std::lock_guard<std::mutex> lock(rx_mu_);
      for (auto& [id, s] : streams_)
        if (s->stream.next_expected() - 1 != s->reported_have) {
          auto r = progress_report(*s, id, now, true);
          if (!r.empty()) reports.push_back(std::move(r));
        }
    }
    for (auto& r : reports) send_control(r);
  }
}

void bus_impl::note_queue_drop(const std::shared_ptr<sub_entry>& s, const message& dropped) {
  c_.queue_dropped.fetch_add(1, std::memory_order_relaxed);
  loss_event& run = s->drop_run;
  if (s->drop_run_open && run.sender == dropped.sender() && dropped.seq() == run.last + 1) {
    run.last = dropped.seq();
    return;
  }
  if (s->drop_run_open) dispatch_loss(run);  // not consecutive: that run is complete
  const bool listed = s->drop_run_open;
  run.sender = dropped.sender();
  run.sender_name.assign(dropped.sender_name());
  run.first = run.last = dropped.seq();
  run.cause = loss_cause::queue_overflow;
  run.pattern = s->pattern;
  s->drop_run_open = true;
  if (!listed) drop_runs_.push_back(s);
  if (drop_timer_armed_) return;
  drop_timer_armed_ = true;
  drop_timer_.expires_after(queue_drop_report_delay);
  drop_timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code) {
    self->drop_timer_armed_ = false;
    self->report_drop_runs();
  }));
}

void bus_impl::report_drop_runs() {
  auto runs = std::move(drop_runs_);
  drop_runs_.clear();
  for (auto& s : runs) {
    if (!s->drop_run_open) continue;
    s->drop_run_open = false;
    dispatch_loss(s->drop_run);
  }
}

void bus_impl::stop_queues(bool join) {
  std::vector<std::shared_ptr<sub_queue>> queues;
  {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    for (const auto& s : *subs_)
      if (s->queue) queues.push_back(s->queue);
    queues.insert(queues.end(), orphans_.begin(), orphans_.end());
    if (join) orphans_.clear();
  }
  for (auto& q : queues) q->stop();
  if (join)
    for (auto& q : queues) q->join();
}

}  // namespace peerbus::detail
