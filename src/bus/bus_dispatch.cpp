// bus/bus_dispatch.cpp: handing messages, losses, peer events and datagrams to the user's handlers.
#include "bus/bus_impl.hpp"

#include "wire/json_scan.hpp"
#include "wire/topic.hpp"

#include <asio/bind_executor.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <iterator>

namespace peerbus::detail {

void bus_impl::deliver(const wire::envelope& env) {
  // Fragments, and while any message is being put back together every sequenced frame (it may
  // interrupt one), go through the reassembler; small messages otherwise skip it.
  if ((env.nfrag != 0 || !reasm_.idle()) && !reassemble(env)) return;
  if (env.type != wire::frame_type::msg) {
    // Only the addressed peer answers a call or takes a reply; our own come back by the loop.
    if (env.from == id_ || env.to != id_) return;
    if (env.type == wire::frame_type::call) on_call(env);
    else on_reply(env);
    return;
  }
  if (!env.has_body) {
    dispatch_message(message(env.topic, peer_id{env.from}, env.name, env.seq, env.ts, env.data),
                     env.from == id_);
    return;
  }
  // A body that claims to be JSON is handed to data(): it must be JSON.
  if (env.ctype == wire::json_ctype && !wire::valid_json(env.body, wire::max_depth - 1)) {
    count_drop(drop_reason::malformed);
    return;
  }
  dispatch_message(
      message(env.topic, peer_id{env.from}, env.name, env.seq, env.ts, env.ctype, env.body),
      env.from == id_);
}

void bus_impl::dispatch_message(const message& m, bool self_frame) {
  // The strand keeps its own reference to the subscription list and takes the lock only when
  // the list changed: no lock and no reference count per message.
  const auto version = subs_version_.load(std::memory_order_acquire);
  if (version != strand_subs_version_ || !strand_subs_) {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    strand_subs_ = subs_;
    strand_subs_version_ = version;
  }
  // A handler may subscribe or unsubscribe: that replaces subs_, never strand_subs_, which only
  // this function (not re-entered: handlers cannot dispatch) replaces, so the walk is safe.
  for (const auto& s : *strand_subs_) {
    if (!s->active.load(std::memory_order_relaxed)) continue;
    if (self_frame && !s->include_self) continue;
    if (!topic_matches(s->pattern, m.topic())) continue;
    if (s->queue) {
      enqueue(s, m);  // a copy for the subscription's own thread
      continue;
    }
    c_.delivered.fetch_add(1, std::memory_order_relaxed);
    s->delivered.fetch_add(1, std::memory_order_relaxed);
    guarded("handler for ", s->pattern, [&] { s->fn(m); });
  }
}

// Returns whether `env` itself goes on to be delivered: a frame that is not a fragment, unless
// it lies in a run already reported lost. A fragment completing a message delivers the message.
bool bus_impl::reassemble(const wire::envelope& env) {
  const bool self_frame = env.from == id_;
  reassembler::outcome o;
  if (env.nfrag == 0) {
    o = reasm_.other(env.from, env.seq);
  } else {
    if (self_frame) {
      // Our own large messages are put back together only for subscriptions that want them.
      std::lock_guard<std::mutex> lock(handlers_mu_);
      if (std::none_of(subs_->begin(), subs_->end(), [](auto& s) { return s->include_self; }))
        return false;
    }
    o = reasm_.offer(env.from, fragment_of(env), rel_clock::now());
  }
  // The stats say what the reassembler holds before any handler runs: a handler (or whoever it
  // wakes) that reads them sees the message it was given accounted for.
  after_reassembly();
  for (const auto& l : o.losses) dispatch_loss(env.from, std::string(env.name), l.first, l.last);
  if (o.message) {
    c_.reassembled.fetch_add(1, std::memory_order_relaxed);
    const auto& r = *o.message;
    if (r.ctype == wire::json_ctype && !wire::valid_json(r.bytes, wire::max_depth - 1)) {
      count_drop(drop_reason::malformed);
    } else {
      dispatch_message(message(r.topic, peer_id{env.from}, env.name, r.first_seq, r.ts, r.ctype,
                               r.bytes),
                       self_frame);
    }
  }
  return env.nfrag == 0 && !o.swallow;
}

void bus_impl::report_stream_loss(std::uint64_t sender, const std::string& name,
                                  std::uint64_t first, std::uint64_t last) {
  const auto losses = reasm_.on_loss(sender, first, last);
  after_reassembly();  // before the handlers, as in reassemble()
  for (const auto& l : losses) dispatch_loss(sender, name, l.first, l.last);
}

// Publishes the reassembler's memory to stats() and keeps its timer on the earliest deadline.
void bus_impl::after_reassembly() {
  c_.reassembly_bytes.store(reasm_.bytes(), std::memory_order_relaxed);
  c_.reassembly_partials.store(reasm_.partials(), std::memory_order_relaxed);
  const auto next = reasm_.next_deadline();
  if (next >= reasm_timer_at_) return;
  reasm_timer_at_ = next;
  reasm_timer_.expires_at(next);
  reasm_timer_.async_wait(asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
    if (!ec) self->on_reassembly_timer();
  }));
}

void bus_impl::on_reassembly_timer() {
  reasm_timer_at_ = rel_clock::time_point::max();
  if (closed_.load()) return;
  const auto expired = reasm_.expire(rel_clock::now());
  after_reassembly();  // before the handlers, as in reassemble()
  for (const auto& [sender, l] : expired) {
    std::string name;
    {
      std::lock_guard<std::mutex> lock(rx_mu_);
      if (auto it = streams_.find(sender); it != streams_.end()) name = it->second->name;
    }
    dispatch_loss(sender, name, l.first, l.last);
  }
}

void bus_impl::dispatch_loss(std::uint64_t sender, const std::string& name, std::uint64_t first,
                             std::uint64_t last) {
  dispatch_loss(loss_event{peer_id{sender}, name, first, last, loss_cause::not_repaired, {}});
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
  if (o.include_self) self_subs_.fetch_add(1);
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
    subs_version_.fetch_add(1, std::memory_order_release);
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
    if (e->include_self) self->self_subs_.fetch_sub(1);
    // On one of the bus's threads, joining could wait for a handler that waits for this thread
    // (or is this thread): the queue is joined later instead.
    const bool join_now = e->queue && !self->on_bus_thread();
    {
      std::lock_guard<std::mutex> lock(self->handlers_mu_);
      auto next = std::make_shared<std::vector<std::shared_ptr<sub_entry>>>();
      for (auto& s : *self->subs_)
        if (s != e) next->push_back(s);
      self->subs_ = std::move(next);
      self->subs_version_.fetch_add(1, std::memory_order_release);
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

subscription bus_impl::on_peer_event(peer_handler h) {
  // The bus hears peers from the moment it is constructed, so a handler registered afterwards
  // would miss the joins heard in between (a peer answers a newcomer within milliseconds). The
  // new handler therefore first hears `joined` for every live peer, then every change, with
  // nothing lost or doubled between the two: it stays muted until a task on the strand has
  // replayed the table. Every peer event is made and dispatched within one strand handler, so
  // an event before that task is in the table it reads, and one after it reaches the handler.
  struct replayed {
    peer_handler fn;
    std::atomic<bool> live{false}, cancelled{false};
  };
  auto st = std::make_shared<replayed>();
  st->fn = std::move(h);
  auto registered = std::make_shared<subscription>(
      add_handler(peer_handlers_, peer_handler([st](const peerbus::peer_event& ev) {
        if (st->live.load(std::memory_order_acquire)) st->fn(ev);
      })));
  std::weak_ptr<bus_impl> weak = shared_from_this();
  asio::post(strand_, [weak, st] {
    auto self = weak.lock();
    if (!self || self->closed_.load()) return;
    for (const auto& p : self->peers()) {
      if (st->cancelled.load()) return;
      self->guarded("peer event handler", "",
                    [&] { st->fn(peerbus::peer_event{peerbus::peer_event_kind::joined, p}); });
    }
    st->live.store(true, std::memory_order_release);
  });
  return subscription([registered, st] {
    st->cancelled.store(true);
    registered->unsubscribe();
  });
}
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
  v.source = rx_from_->address().to_string() + ":" + std::to_string(rx_from_->port());
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
    f.header = frame.substr(0, frame.find('\n'));
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
      f.has_body = env.has_body;
      f.ctype = env.ctype;
      f.body_size = env.body.size();
      f.frag = env.frag;
      f.nfrag = env.nfrag;
      f.size = env.size;
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
