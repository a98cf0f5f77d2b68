// peerbus/bus.hpp: the Bus: publish, subscribe, presence and counters on one multicast group.
#pragma once

#include <peerbus/call.hpp>
#include <peerbus/error.hpp>
#include <peerbus/message.hpp>
#include <peerbus/options.hpp>
#include <peerbus/peer.hpp>
#include <peerbus/stats.hpp>
#include <peerbus/subscription.hpp>
#include <peerbus/tap.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace asio {
class io_context;
}

namespace peerbus {

namespace detail {
class bus_impl;
}

using message_handler = std::function<void(const message&)>;

/// What a subscription's queue does when a message arrives and the queue is full.
enum class overflow_policy : std::uint8_t {
  drop_oldest,  ///< discard the oldest queued message to make room: the handler sees the newest
  drop_newest,  ///< discard the arriving message: the handler sees the oldest (LCM's behaviour)
  block,        ///< the bus thread waits for room: back-pressure, nothing dropped (see below)
};
const char* to_string(overflow_policy) noexcept;

/// How one subscription is served.
///
/// **Unqueued** (`queue_limit` 0, the default): the handler is called on the bus's executor as
/// each message is delivered, without a copy. A slow handler stalls the bus thread: nothing else
/// of this process is received meanwhile (other subscriptions, peer events, repairs), the kernel
/// drops what its socket buffer cannot hold, and NACK repairs recover it until the sender's
/// retransmit window has moved on (then: loss events). Memory stays bounded; time does not.
///
/// **Queued** (`queue_limit` > 0): delivery copies the message into the subscription's own
/// bounded queue (one allocation: an owned_message) and the handler runs on the subscription's
/// own thread, one call at a time, in delivery order (per sender in sequence order). A full queue
/// applies `overflow`:
/// - `drop_oldest` / `drop_newest`: the dropped message is counted (bus_stats::queue_dropped,
///   subscription_stats::dropped) and reported through on_loss as a loss_event with cause
///   `queue_overflow` and this subscription's pattern (consecutive drops of one sender in one
///   event, within about 10 ms; close() reports those still pending). Other subscriptions are
///   not affected.
/// - `block`: the bus thread waits until the handler takes a message. Meanwhile this process
///   reads nothing: the kernel's socket buffer absorbs what it can and NACK repairs recover the
///   rest while the senders still hold it (options::window_messages), so nothing is lost unless
///   the handler falls further behind than a sender's window. While waiting, the bus thread still
///   sends this process's heartbeats (peers do not expire it) and does not count the wait against
///   its peers' silence; it does not answer NACKs or run other handlers. A block handler must not
///   wait for the bus thread: `call` and `call_all` return `would_block` there (use call_async).
///
/// Ending a queued subscription (unsubscribe, or close()) discards what is still queued (not
/// reported as lost: the subscriber asked to stop) and stops its thread: from any other thread,
/// unsubscribe() returns once the handler's current call, if any, has returned; from inside a
/// handler of this bus (this one's own included) it returns at once and the thread is joined
/// later (by close() at the latest), so nothing deadlocks.
///
///     peerbus::subscribe_options q;
///     q.queue_limit = 100;
///     q.overflow = peerbus::overflow_policy::drop_oldest;
///     auto sub = bus.subscribe("video.frame", show_frame, q);
struct subscribe_options {
  /// Also deliver this process's own messages (multicast loops them back). Default off.
  bool include_self = false;
  /// Messages that may wait for the handler. 0: unqueued, the handler runs on the bus's
  /// executor (see above). Default 0.
  std::size_t queue_limit = 0;
  /// Bytes (topic + sender name + payload) that may wait, for a queued subscription; an empty
  /// queue takes any message. Must be >= 1. Default 16 MiB.
  std::size_t queue_bytes = std::size_t{16} << 20;
  /// What a full queue does. Default drop_oldest: a slow consumer sees the latest state.
  overflow_policy overflow = overflow_policy::drop_oldest;
};

/// Why messages were lost.
enum class loss_cause : std::uint8_t {
  not_repaired,    ///< they left the sender's retransmit window before we got them: no
                   ///< subscription of this process had them
  queue_overflow,  ///< one queued subscription dropped them (subscribe_options::overflow);
                   ///< `pattern` names it, the others were not affected
};
const char* to_string(loss_cause) noexcept;

/// Messages of one sender, seqs first..last, that a handler will never see. Delivery goes on
/// after the gap; this event is the explicit record of the hole.
struct loss_event {
  peer_id sender;
  std::string sender_name;
  std::uint64_t first = 0;  ///< first lost sequence number
  std::uint64_t last = 0;   ///< last lost sequence number (inclusive)
  loss_cause cause = loss_cause::not_repaired;
  std::string pattern;  ///< queue_overflow: the pattern of the subscription that dropped them
  std::uint64_t count() const noexcept { return last - first + 1; }
};
using loss_handler = std::function<void(const loss_event&)>;

/// One process's membership of a bus.
///
/// Threads: every handler (messages, peer events, losses, calls) is called on the bus's
/// executor, one at a time: the bus's own thread for `bus(options)`, or a thread running the
/// user's io_context for `bus(io_context&, options)`. The exception is the message handler of a
/// queued subscription (subscribe_options::queue_limit), which runs on that subscription's own
/// thread, concurrently with the rest. Every member function is safe to call from any thread,
/// including from inside a handler, except the blocking waits (wait_for_subscribers, call) which
/// must not be called on the bus's executor.
///
///     peerbus::options o;
///     o.name = "editor";
///     peerbus::bus bus(o);
///     auto sub = bus.subscribe("file.*", [](const peerbus::message& m) {
///       std::cout << m.topic() << " " << m.data_json() << "\n";
///     });
///     bus.publish("file.saved", {{"path", "/tmp/a.txt"}});
class bus {
 public:
  /// Joins the bus with a thread of its own. Throws config_error on a bad setting (naming it)
  /// and std::system_error when the socket cannot be opened.
  explicit bus(options opts = {});
  /// Joins the bus on the user's io_context: handlers run where that context runs.
  explicit bus(asio::io_context& ctx, options opts = {});
  /// Says goodbye (peers see "left" at once) and leaves.
  ~bus();

  bus(const bus&) = delete;
  bus& operator=(const bus&) = delete;

  /// Publishes one message to everyone subscribed to `topic`. Returns an error value, never
  /// throws, for an invalid topic, a payload too large, or a closed or passive bus.
  std::error_code publish(std::string_view topic, const nlohmann::json& data);
  /// Same with the payload given as JSON text (validated, sent as is).
  std::error_code publish_raw(std::string_view topic, std::string_view json_text);
  /// Publishes raw bytes with a content type ("image/png"; 1..127 bytes of printable ASCII
  /// without '"' or '\\'), sent as they are, without base64. Handlers see message::is_binary()
  /// and message::bytes() (for "application/json", data() parses the bytes as JSON).
  ///
  ///     bus.publish_bytes("camera.frame", jpeg_bytes, "image/jpeg");
  ///
  /// Any message up to options::max_message_size (16 MiB by default) may be published, JSON or
  /// bytes: one larger than a datagram travels in fragments and is delivered whole or reported
  /// lost (loss_event), never in part. Larger than the limit: errc::payload_too_large.
  std::error_code publish_bytes(std::string_view topic, std::string_view bytes,
                                std::string_view content_type = "application/octet-stream");

  /// Calls `handler` for every message whose topic matches `pattern`: '.'-separated segments,
  /// `*` matches one segment, `>` (last) matches the rest. Throws config_error on a bad pattern
  /// or queue setting. `opts` chooses the thread and the queue (see subscribe_options).
  [[nodiscard]] subscription subscribe(std::string_view pattern, message_handler handler,
                                       subscribe_options opts = {});

  /// Peer joined / left / expired. The handler first hears `joined` for every peer already
  /// live (the bus hears peers from its construction on, so none is missed for registering
  /// late), then each change as it happens; none is doubled or lost between the two. Like
  /// every handler it runs on the bus thread, so the first calls come shortly after this returns.
  [[nodiscard]] subscription on_peer_event(peer_handler handler);
  /// Explicit losses (see loss_event): unrepaired ones and queue overflows.
  [[nodiscard]] subscription on_loss(loss_handler handler);

  /// Every datagram heard, decoded frame by frame, drops included (the bus monitor). Costs an
  /// allocation per datagram only while a tap is installed.
  [[nodiscard]] subscription on_datagram(datagram_handler handler);

  /// Live peers other than this process.
  std::vector<peer_info> peers() const;
  std::optional<peer_info> find_peer(peer_id id) const;
  /// Live peers whose name matches `pattern` exactly or as a glob (`konsole-*`).
  std::vector<peer_info> find_peers(std::string_view pattern) const;
  /// Is a live peer named `name` here? (single-instance programs)
  bool has_peer(std::string_view name) const;

  /// Blocks until at least `n` live peers subscribe to a pattern matching `topic` (as their
  /// heartbeats say), or `timeout` passes. Returns whether they did.
  bool wait_for_subscribers(std::string_view topic, std::size_t n,
                            std::chrono::milliseconds timeout);
  /// Blocks until a live peer matching `pattern` is present, or `timeout` passes.
  bool wait_for_peer(std::string_view pattern, std::chrono::milliseconds timeout);

  /// Answers calls to `method` (1..128 characters of [A-Za-z0-9._-/:]) addressed to this
  /// peer. The handler runs on the bus's executor; it may answer through the responder at once
  /// or keep it and answer later from any thread. A handler that throws answers with its
  /// message (handler_failed). Calls to a method nobody handles get `no_such_method`. Throws
  /// config_error on a bad method name or a method already handled.
  ///
  ///     auto h = bus.handle("echo", [](const peerbus::call_request& rq, peerbus::responder r) {
  ///       r.reply(rq.params());
  ///     });
  [[nodiscard]] subscription handle(std::string_view method, call_handler handler);

  /// Calls `method` on one peer and blocks until it answers, fails, or `timeout` passes.
  /// `target`: a peer id (16 hex digits), a name, or a glob (`konsole-*`) that must match
  /// exactly one live peer (else `ambiguous`, with the candidates; use call_all for many).
  /// Never throws for expected failures: see call_result and call_errc. Must not be called on
  /// the bus's executor (returns `would_block`).
  call_result call(std::string_view target, std::string_view method, const nlohmann::json& params,
                   std::chrono::milliseconds timeout);
  /// The same without blocking: the future is ready when the call completes.
  std::future<call_result> call_async(std::string_view target, std::string_view method,
                                      const nlohmann::json& params,
                                      std::chrono::milliseconds timeout);
  /// The same with a completion handler, called once: on the bus's executor, or at once on the
  /// calling thread when the call fails before anything is sent (no_such_peer, ...).
  void call_async(std::string_view target, std::string_view method, const nlohmann::json& params,
                  std::chrono::milliseconds timeout, call_completion done);
  /// Calls every live peer matching `pattern` (a name, glob or id) and gathers one result per
  /// peer, until all answered or `timeout`; peers that did not answer have code `timeout`
  /// (multi_call_result::missing()). Blocking: not on the bus's executor.
  multi_call_result call_all(std::string_view pattern, std::string_view method,
                             const nlohmann::json& params, std::chrono::milliseconds timeout);

  bus_stats stats() const;

  peer_id id() const noexcept;
  const std::string& name() const noexcept;
  const bus_url& url() const noexcept;

  /// Says goodbye and stops; later publishes fail with errc::closed. Called by the destructor.
  void close();

 private:
  std::shared_ptr<detail::bus_impl> impl_;
};

/// The spelling used in issues and prose.
using Bus = bus;

}  // namespace peerbus
