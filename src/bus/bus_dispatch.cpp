// bus/bus_dispatch.cpp: handing messages, losses, peer events and datagrams to the user's handlers.
#include "bus/bus_impl.hpp"

#include "wire/topic.hpp"

#include <asio/post.hpp>

#include <algorithm>
#include <iterator>

namespace peerbus::detail {

void bus_impl::deliver(const wire::envelope& env) {
  if (env.type != wire::frame_type::msg) {
    // Only the addressed peer answers a call or takes a reply; our own come back by the loop.
    if (env.from == id_ || env.to != id_) return;
    if (env.type == wire::frame_type::call) on_call(env);
    else on_reply(env);
    return;
  }
  std::shared_ptr<const std::vector<std::shared_ptr<sub_entry>>> subs;
  {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    subs = subs_;
  }
  const bool self_frame = env.from == id_;
  message m(env.topic, peer_id{env.from}, env.name, env.seq, env.ts, env.data);
  for (const auto& s : *subs) {
    if (!s->active.load(std::memory_order_relaxed)) continue;
    if (self_frame && !s->include_self) continue;
    if (!topic_matches(s->pattern, env.topic)) continue;
    if (s->queue) {
      enqueue(s, m);  // a copy for the subscription's own thread
      continue;
    }
    c_.delivered.fetch_add(1, std::memory_order_relaxed);
    s->delivered.fetch_add(1, std::memory_order_relaxed);
    guarded("handler for ", s->pattern, [&] { s->fn(m); });
  }
}

void bus_impl::dispatch_loss(const loss_event& ev) {
  if (opts_.log) {
    std::string text = "lost " + std::to_string(ev.count()) + " message(s) from " +
                       ev.sender_name + "@" + ev.sender.str().substr(0, 4) + " (seq " +
                       std::to_string(ev.first) + ".." + std::to_string(ev.last) + ")";
    if (ev.cause == loss_cause::queue_overflow)
      text += ": the queue of subscription " + ev.pattern + " was full";
    opts_.log(log_level::warning, text);
  }
  for (auto& h : handlers_of(loss_handlers_)) guarded("loss handler", "", [&] { (*h)(ev); });
}

void bus_impl::dispatch_peer_event(const peer_event& ev) {
  if (ev.kind == peer_event_kind::updated) return;  // not a membership change
  peerbus::peer_event pub{ev.kind == peer_event_kind::joined    ? peerbus::peer_event_kind::joined
                          : ev.kind == peer_event_kind::left    ? peerbus::peer_event_kind::left
                                                                 : peerbus::peer_event_kind::expired,
                          to_info(ev.peer)};
  if (pub.kind == peerbus::peer_event_kind::expired) {
    // An expired sender's missing messages will not come either: report them (retire()).
    std::unique_ptr<stream_entry> gone;
    {
      std::lock_guard<std::mutex> lock(rx_mu_);
      if (auto it = streams_.find(ev.peer.id); it != streams_.end()) {
        gone = std::move(it->second);
        streams_.erase(it);
        gappy_.erase(ev.peer.id);
      }
    }
    if (gone) retire(std::move(gone), ev.peer.id, rel_clock::now());
  }
  if (pub.kind != peerbus::peer_event_kind::joined) {
    // Calls waiting on a peer that is gone fail now, not at their timeout.
    std::vector<call_table::finished> done;
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      done = calls_.on_peer_gone(ev.peer.id, pub.kind == peerbus::peer_event_kind::expired,
                                 rel_clock::now());
    }
    for (auto& f : done) f.run();
  }
  for (auto& h : handlers_of(peer_handlers_)) guarded("peer event handler", "", [&] { (*h)(pub); });
}

subscription bus_impl::subscribe(std::string_view pattern, message_handler h, subscribe_options o) {
  if (!valid_pattern(pattern))
    throw config_error("invalid topic pattern '" + std::string(pattern) +
                       "': '.'-separated segments; '*' matches one segment, '>' (last) the rest");
  if (o.queue_limit > 0 && o.queue_bytes == 0)
    throw config_error("subscribe_options::queue_bytes is 0: a queued subscription needs >= 1");
  if (o.overflow != overflow_policy::drop_oldest && o.overflow != overflow_policy::drop_newest &&
      o.overflow != overflow_policy::block)
    throw config_error("subscribe_options::overflow is not one of drop_oldest, drop_newest, block");
  auto e = std::make_shared<sub_entry>();
  e->pattern = std::string(pattern);
  e->include_self = o.include_self;
  if (o.queue_limit > 0) {
    sub_queue::config qc;
    qc.limit = o.queue_limit;
    qc.max_bytes = o.queue_bytes;
    qc.policy = o.overflow;
    qc.owner = this;
    qc.pattern = e->pattern;
    qc.log = opts_.log;
    qc.also_count = &c_.delivered;
    e->queue = sub_queue::start(std::move(qc), std::move(h));
  } else {
    e->fn = std::move(h);
  }
  std::vector<std::shared_ptr<sub_queue>> exited;
  {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    auto next = std::make_shared<std::vector<std::shared_ptr<sub_entry>>>(*subs_);
    next->push_back(e);
    subs_ = std::move(next);
    // Queues ended on a bus thread wait here to be joined; those whose thread is done go now.
    auto done = std::stable_partition(orphans_.begin(), orphans_.end(),
                                      [](const auto& q) { return !q->exited(); });
    exited.assign(std::make_move_iterator(done), std::make_move_iterator(orphans_.end()));
    orphans_.erase(done, orphans_.end());
  }
  for (auto& q : exited) q->join();
  // Tell the bus at once: publishers waiting for subscribers should not wait a heartbeat.
  std::weak_ptr<bus_impl> weak = shared_from_this();
  asio::post(strand_, [weak] {
    if (auto self = weak.lock()) self->send_heartbeat();
  });
  return subscription([weak, e] {
    e->active.store(false);
    // No call starts after this, what is queued is discarded, and a strand waiting for room
    // (block) goes on.
    if (e->queue) e->queue->stop();
    auto self = weak.lock();
    if (!self) {
      if (e->queue) e->queue->join();  // normally done by close() already
      return;
    }
    // On one of the bus's threads, joining could wait for a handler that waits for this thread
    // (or is this thread): the queue is joined later instead.
    const bool join_now = e->queue && !self->on_bus_thread();
    {
      std::lock_guard<std::mutex> lock(self->handlers_mu_);
      auto next = std::make_shared<std::vector<std::shared_ptr<sub_entry>>>();
      for (auto& s : *self->subs_)
        if (s != e) next->push_back(s);
      self->subs_ = std::move(next);
      if (e->queue && !join_now) self->orphans_.push_back(e->queue);
    }
    if (join_now) e->queue->join();
    asio::post(self->strand_, [weak] {
      if (auto s = weak.lock()) s->send_heartbeat();
    });
  });
}

template <class H>
subscription bus_impl::add_handler(handler_list<H>& list, H h) {
  std::lock_guard<std::mutex> lock(handlers_mu_);
  auto id = list.next_id++;
  list.items.emplace_back(id, std::make_shared<H>(std::move(h)));
  std::weak_ptr<bus_impl> weak = shared_from_this();
  return subscription([weak, &list, id] {
    if (auto self = weak.lock()) {
      std::lock_guard<std::mutex> l(self->handlers_mu_);
      auto& v = list.items;
      v.erase(std::remove_if(v.begin(), v.end(), [id](auto& p) { return p.first == id; }), v.end());
      self->tapped_.store(!self->taps_.items.empty());
    }
  });
}

template <class H>
std::vector<std::shared_ptr<H>> bus_impl::handlers_of(const handler_list<H>& list) const {
  // Copied under the lock, called without it: a handler may (un)register handlers.
  std::lock_guard<std::mutex> lock(handlers_mu_);
  std::vector<std::shared_ptr<H>> out;
  out.reserve(list.items.size());
  for (auto& item : list.items) out.push_back(item.second);
  return out;
}

subscription bus_impl::on_peer_event(peer_handler h) { return add_handler(peer_handlers_, std::move(h)); }
subscription bus_impl::on_loss(loss_handler h) { return add_handler(loss_handlers_, std::move(h)); }
subscription bus_impl::on_datagram(datagram_handler h) {
  auto sub = add_handler(taps_, std::move(h));
  tapped_.store(true);
  return sub;
}

void bus_impl::dispatch_tap(std::string_view dgram, bool injected,
                            const seal::open_result* sealed) {
  datagram_view v;
  v.received = std::chrono::system_clock::now();
  v.source = rx_from_.address().to_string() + ":" + std::to_string(rx_from_.port());
  v.bytes = dgram;
  v.injected_drop = injected;
  v.sealed = sealed && sealed->ok;
  if (sealed && !sealed->ok) {
    v.ok = false;
    v.reason = sealed->reason;
    v.error = sealed->detail;
    for (auto& h : handlers_of(taps_)) guarded("datagram tap", "", [&] { (*h)(v); });
    return;
  }
  wire::envelope env;
  auto r = wire::for_each_frame(dgram, [&](std::string_view frame) {
    frame_view f;
    f.text = frame;
    auto d = wire::decode_frame(frame, env);
    f.ok = d.ok;
    if (!d) {
      f.reason = d.reason;
      f.error = d.detail;
    } else {
      f.type = wire::to_string(env.type);
      f.from = peer_id{env.from};
      f.name = env.name;
      f.seq = env.seq;
      f.topic = env.topic;
      f.data = env.data;
      f.to = peer_id{env.to};
      for (std::size_t i = 0; i < env.range_count; ++i)
        f.nack_seqs += env.ranges[i].last - env.ranges[i].first + 1;
    }
    v.frames.push_back(f);
  });
  if (!r) {
    v.ok = false;
    v.reason = r.reason;
    v.error = r.detail;
    v.frames.clear();
  }
  for (auto& h : handlers_of(taps_)) guarded("datagram tap", "", [&] { (*h)(v); });
}

}  // namespace peerbus::detail
