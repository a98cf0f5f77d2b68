// bus/bus_impl.hpp: the machinery behind peerbus::bus: wires transport, wire, reliability and presence.
#pragma once

#include "bus/bus_limits.hpp"
#include "bus/call_table.hpp"
#include "bus/reassembly.hpp"
#include "bus/sub_queue.hpp"
#include "presence/peer_table.hpp"
#include "reliability/config.hpp"
#include "reliability/fault_injector.hpp"
#include "reliability/pacer.hpp"
#include "reliability/receive_stream.hpp"
#include "reliability/receiver_table.hpp"
#include "reliability/send_window.hpp"
#include "reliability/token_bucket.hpp"
#include "seal/sealer.hpp"
#include "transport/platform.hpp"
#include "transport/udp_multicast.hpp"
#include "wire/envelope.hpp"

#include <peerbus/bus.hpp>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <array>
#include <map>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace peerbus::detail {

class bus_impl;

/// How many user handlers (of any bus in the process) this thread is inside. A publish from
/// such a handler must not wait for receivers' reports: the thread may be the one that would
/// read them (two buses sharing one io_context thread, a relay between two buses).
inline thread_local int handler_depth = 0;
struct handler_scope {
  handler_scope() noexcept { ++handler_depth; }
  ~handler_scope() { --handler_depth; }
  handler_scope(const handler_scope&) = delete;
  handler_scope& operator=(const handler_scope&) = delete;
};

/// One received call's way back (peerbus::responder shares it). Answered at most once; when the
/// last responder goes unanswered, the destructor answers `unanswered`.
struct responder_state {
  std::weak_ptr<bus_impl> bus;
  std::uint64_t caller = 0;
  std::uint64_t cid = 0;
  std::string method;
  std::atomic<bool> answered{false};
  /// Sends the reply: `data` JSON text, or `error` JSON object text. False if already answered.
  bool answer(std::string_view data, std::string_view error);
  bool answer_error(std::string_view code, std::string_view message);
  ~responder_state();
};

/// Threads: `strand_` serialises everything on the receive side (streams_, peers_, timers,
/// handler calls). Any thread may publish: the send side (seq, window, tx buffer, tx fault
/// injection) is guarded by `send_mu_`. Other threads read the receive side's tables under
/// `rx_mu_`, which the strand holds only while it mutates them, never while calling handlers.
/// Lock order: send_mu_ may be taken while rx_mu_ is held (a heartbeat adding a flow-control
/// receiver), never the other way round.
class bus_impl : public std::enable_shared_from_this<bus_impl> {
 public:
  bus_impl(asio::io_context& ctx, options opts, std::unique_ptr<asio::io_context> owned);
  ~bus_impl();

  /// Starts receiving and announcing; for an owned context also starts its thread.
  void start();
  void close();

  std::error_code publish(std::string_view topic, std::string_view json_text);
  std::error_code publish_bytes(std::string_view topic, std::string_view bytes,
                                std::string_view ctype);
  /// The largest datagram this bus sends, before sealing (the mtu, the OS, the seal).
  std::size_t datagram_limit() const noexcept { return max_plain_; }
  subscription subscribe(std::string_view pattern, message_handler h, subscribe_options o);
  subscription on_peer_event(peer_handler h);
  subscription on_loss(loss_handler h);
  subscription on_datagram(datagram_handler h);

  std::vector<peer_info> peers() const;
  std::optional<peer_info> find_peer(peer_id id) const;
  std::vector<peer_info> find_peers(std::string_view pattern) const;
  bool has_peer(std::string_view name) const;
  bool wait_for_subscribers(std::string_view topic, std::size_t n, std::chrono::milliseconds t);
  bool wait_for_peer(std::string_view pattern, std::chrono::milliseconds t);
  bus_stats stats() const;

  // Calls (see bus.hpp). start_call completes `done` exactly once.
  subscription handle(std::string_view method, call_handler h);
  void start_call(std::string_view target, std::string_view method, std::string params_json,
                  std::chrono::milliseconds timeout, bool all,
                  std::function<void(multi_call_result)> done);
  bool on_executor() const { return strand_.running_in_this_thread(); }
  /// May this thread wait for the bus's strand? Not on the strand, nor in the handler of a block
  /// subscription (the strand may be waiting for that very handler).
  bool may_block() const;
  /// Sends one sequenced call or reply frame (any thread). `method` only for calls; `data` or
  /// `error` (JSON texts) may be empty.
  std::error_code send_sequenced(wire::frame_type type, std::uint64_t to, std::uint64_t cid,
                                 std::string_view method, std::string_view data,
                                 std::string_view error);

  peer_id id() const noexcept { return peer_id{id_}; }
  const std::string& name() const noexcept { return name_; }
  const bus_url& url() const noexcept { return url_; }

 private:
  struct sub_entry {
    std::string pattern;
    message_handler fn;                // unqueued
    std::shared_ptr<sub_queue> queue;  // queued (subscribe_options::queue_limit > 0)
    bool include_self = false;
    std::atomic<bool> active{true};
    std::atomic<std::uint64_t> delivered{0};  // unqueued handler calls (the queue counts its own)
    // Strand only: consecutive queue drops of one sender not reported yet (one loss event).
    loss_event drop_run;
    bool drop_run_open = false;
  };
  struct stream_entry {
    receive_stream stream;
    std::string name;
    rel_clock::time_point last_heard;
    // A stream whose first frame came from a sender we have not heard announce itself: we
    // cannot tell yet whether we joined after it (start from the first seq heard) or it started
    // after us and its announce and first messages were lost (start from seq 1, NACK the rest).
    // Its frames wait here, bounded, until its heartbeat (which carries its start time) says.
    bool held = false;
    std::vector<std::pair<std::uint64_t, std::string>> held_frames;
    std::size_t held_bytes = 0;
    rel_clock::time_point nack_turn{};  // when the NACK budget last served it (streams take turns)
    rel_clock::time_point created{};    // newest streams give up their buffers first
    // Flow control (docs/protocol.md 8.9): the "have" we last told this sender, when, and the
    // in-order bytes since.
    std::uint64_t reported_have = 0;
    std::uint64_t unreported_bytes = 0;
    rel_clock::time_point reported_at{};
    stream_entry(const reliability_config& c, std::uint64_t first, std::mt19937_64& rng)
        : stream(c, first, rng) {}
  };
  template <class H>
  struct handler_list {
    std::uint64_t next_id = 1;
    std::vector<std::pair<std::uint64_t, std::shared_ptr<H>>> items;
  };
  template <class H>
  subscription add_handler(handler_list<H>& list, H h);
  template <class H>
  std::vector<std::shared_ptr<H>> handlers_of(const handler_list<H>& list) const;

  // Receive side (strand).
  void receive();
  void drain_socket();
  void drain_datagrams();
  void note_overflows(std::uint32_t total);
  void check_backlog();
  void congestion(rel_clock::time_point now);
  void on_datagram(std::string_view dgram);
  bool own_datagram(std::string_view dgram) const noexcept;
  void on_frame(const wire::envelope& env, rel_clock::time_point now);
  stream_entry* stream_for(const wire::envelope& env, rel_clock::time_point now);
  bool ours_from_start(const wire::envelope& env) const noexcept;
  std::uint64_t held_start(const stream_entry& s, const wire::envelope& env) const;
  void taken_back(const wire::envelope& env, rel_clock::time_point now);
  // An announced peer from which established_frames or more have arrived (bus_limits.hpp).
  // rx_mu_ held.
  bool established(std::uint64_t sender, const stream_entry& s) const;
  // Frames were just held or buffered (`added` bytes): keeps every stream's buffers together
  // within max_buffered_total. rx_mu_ held.
  bool bound_buffers(std::size_t added);
  stream_entry* release_held(std::unique_ptr<stream_entry>& slot, std::uint64_t first,
                             rel_clock::time_point now, std::vector<std::string>& deliverable,
                             const wire::envelope* hb = nullptr);
  static std::uint64_t lowest_held(const stream_entry& s, std::uint64_t also);
  void deliver_frames(const std::vector<std::string>& frames);
  void advert(stream_entry& s, const wire::envelope& env, rel_clock::time_point now);
  template <class F>
  void guarded(std::string_view what, std::string_view which, F&& f);
  void drain(stream_entry& s, std::uint64_t sender);
  void retire(std::unique_ptr<stream_entry> gone, std::uint64_t sender, rel_clock::time_point now);
  void deliver(const wire::envelope& env);
  bool reassemble(const wire::envelope& env);
  void dispatch_message(const message& m, bool self_frame);
  void report_stream_loss(std::uint64_t sender, const std::string& name, std::uint64_t first,
                          std::uint64_t last);
  void after_reassembly();
  void on_reassembly_timer();
  void dispatch_loss(std::uint64_t sender, const std::string& name, std::uint64_t first,
                     std::uint64_t last);
  void dispatch_loss(const loss_event& ev);
  // Queued subscriptions (strand): hand a message to the queue, count and report what it drops,
  // keep heartbeats going while a block queue makes the strand wait.
  void enqueue(const std::shared_ptr<sub_entry>& s, const message& m);
  void note_queue_drop(const std::shared_ptr<sub_entry>& s, const message& dropped);
  void report_drop_runs();
  void while_blocked();
  bool on_bus_thread() const;
  // Stops every queue (no handler call starts after this) and, off the bus's threads, joins them.
  void stop_queues(bool join);
  void dispatch_peer_event(const peer_event& ev);
  void on_call(const wire::envelope& env);
  void on_reply(const wire::envelope& env);
  void arm_call_timer();
  void on_call_timer();
  void after_sequenced_send();  // any thread, send_mu_ not held
  void pace(rel_clock::duration pause);  // the publisher's wait (pacer_), send_mu_ not held
  void answer_nack(const wire::envelope& env);
  void note_congestion(std::uint64_t receiver, std::uint64_t episodes);
  void schedule_nacks(rel_clock::time_point deadline);
  void on_nack_timer();
  std::uint64_t nack_grant() const noexcept;
  void on_heartbeat_timer();
  void on_expiry_timer();
  void arm_expiry();
  void welcome_newcomer();
  void send_tail_advert();
  // Flow control, receiver side (strand, rx_mu_ held): a report of our progress ("have") for
  // this sender, when one is due (or `asked`); empty when none. Sent by the caller after
  // releasing rx_mu_.
  std::string progress_report(stream_entry& s, std::uint64_t sender, rel_clock::time_point now,
                              bool asked);
  // Whether this stream has moved far enough since our last report to owe its sender the next:
  // flow_report_frames frames or report_bytes_ bytes (rx_mu_ held).
  bool report_due(const stream_entry& s) const noexcept;

  // Send side (any thread, send_mu_ held).
  void send_locked(std::string_view datagram);
  // Sends one sequenced frame (in tx_buf_, already in the window): at once when the sender was
  // idle, else into the open batch (see batch_).
  void keep_locked(std::uint64_t seq, std::string_view frame);
  void send_sequenced_locked(std::string_view frame, rel_clock::time_point now);
  void send_lone_locked(std::string_view frame);  // the first frame of a burst, at once
  std::int64_t wall_us_locked(rel_clock::time_point now);
  void flush_batch_locked();
  void end_burst();  // strand: the sender's burst may be over (it flushes once it is)
  void burst_over();  // strand: flush what the burst batched; the next message leaves at once
  void arm_tail_advert();  // strand
  std::error_code check_publish(std::string_view topic, std::size_t size) const;
  // One msg: JSON text in "data" (ctype empty) or bytes in a body; fragments when too large.
  std::error_code send_message(std::string_view topic, std::string_view payload,
                               std::string_view ctype);
  // A message too large for one datagram: consecutive sequenced fragments (send_mu_ held).
  std::error_code send_fragments_locked(std::string_view topic, std::string_view ctype,
                                        std::string_view payload);
  void send_heartbeat();
  void send_advert_locked(bool ask = false);
  std::string advert_frame_locked(bool ask = false) const;
  // Flow control, sender side: waits (releasing `lock` meanwhile) while pushing `frames` frames
  // of `bytes` would evict a frame a live receiver still needs. Not on the bus's own threads.
  void wait_for_receivers(std::unique_lock<std::mutex>& lock, std::size_t frames, std::size_t bytes);
  // Some live receiver has not yet confirmed everything up to our highest seq (close()).
  bool unconfirmed_locked(rel_clock::time_point now, rel_clock::time_point since);
  void send_control(std::string& buf);
  std::vector<std::string> subscription_patterns(bool& truncated) const;

  peer_info to_info(const peer_record& r) const;
  static std::int64_t now_us();

  options opts_;
  bus_url url_;
  std::string name_;
  std::uint64_t id_;
  char own_hex_[16];  // id_ as written in "from" (own_datagram)
  std::int64_t start_us_;
  std::string host_;
  long pid_;
  reliability_config rel_cfg_;
  // Sealed bus (url_.key names the key): seals in send_locked, opens in on_datagram. Null: open.
  std::unique_ptr<seal::sealer> sealer_;
  std::size_t max_plain_;  // largest datagram before sealing (max_datagram - overhead if sealed)

  std::unique_ptr<asio::io_context> owned_ctx_;
  asio::io_context& ctx_;
  asio::strand<asio::io_context::executor_type> strand_;
  udp_multicast transport_;
  std::thread thread_;
  std::atomic<bool> closed_{false};

  // Send side.
  mutable std::mutex send_mu_;
  std::uint64_t next_seq_ = 1;
  send_window window_;
  pacer pacer_;  // rate limit: options::max_rate, and slowing down when receivers congest
  // Receivers that report their progress, and how far each has got (send_mu_).
  receiver_table flow_;
  std::condition_variable flow_cv_;  // a receiver reported progress (wait_for_receivers)
  rel_clock::time_point last_ask_{};  // when we last asked the receivers for their "have"
  // As a receiver (8.9): the bytes a sender may be ahead of our "have" (heartbeat rwin, half
  // the receive buffer's size as set: a quarter of what the kernel holds), and how often we report in
  // bytes so that a sender held by it hears of our progress in time. Set by start().
  std::uint64_t rwin_ = 0;
  std::uint64_t report_bytes_ = flow_report_bytes;
  std::uint64_t reports_at_ask_ = 0;  // c_.flow_reports then: news since, ask at once
  rel_clock::time_point last_blocked_report_{};  // strand: while_blocked's last progress reports
  // The last overflow count ("cong") each receiver reported: one slow-down per new episode.
  std::unordered_map<std::uint64_t, std::uint64_t> congestion_heard_;
  std::string tx_buf_;
  std::string msg_head_;  // wire::msg_head: the start of every msg frame we send
  rel_clock::time_point wall_anchor_{};  // wall_us_locked
  std::int64_t wall_anchor_us_ = 0;
  std::string sealed_tx_;  // the sealed form of the datagram being sent
  fault_injector tx_faults_;
  // Batching (docs/protocol.md 3): a sequenced frame goes out at once when the sender is idle;
  // while a burst lasts (until the bus thread next runs end_burst()), frames collect in batch_
  // and leave several to a datagram, when it is full or when the burst ends. No fixed linger.
  std::string batch_;
  std::size_t batch_frames_ = 0;
  bool in_burst_ = false;
  std::atomic<bool> end_burst_posted_{false};  // end_burst posted or its recheck armed
  // Strand only: drain_socket is running, and a handler it called published (it ends the burst).
  bool in_drain_ = false;
  bool burst_due_ = false;
  std::uint64_t burst_seen_seq_ = 1;  // next_seq_ when end_burst last looked (send_mu_)
  rel_clock::duration burst_recheck_ = busy_sender_recheck;  // end_burst's next look (send_mu_)
  std::atomic<bool> tail_pending_{false};
  token_bucket repair_budget_;  // bytes repaired per second, all askers (send_mu_)
  std::atomic<rel_clock::rep> last_nack_ns_{0};  // when we last answered a NACK
  std::uint64_t advertised_seq_ = 0;
  // When seq 1 left (µs since the epoch; 0: not yet). Heartbeats carry it ("since"): a receiver
  // that started before it was there for all our messages, even if we started first.
  std::int64_t first_sent_us_ = 0;

  // Receive side.
  platform::receive_batch rx_batch_{rx_batch_slots, rx_slot_size};
  const asio::ip::udp::endpoint* rx_from_ = nullptr;  // the source of the datagram at hand
  // Sealed bus: the opened datagram, rx_slot_size bytes. Not zero-filled: the sealer writes
  // before anything reads, so an idle bus keeps only the pages a heartbeat touches resident.
  std::unique_ptr<char[]> rx_plain_;
  bool overflow_seen_ = false;
  std::uint32_t overflow_base_ = 0;  // the socket's drop count when we last looked
  rel_clock::time_point congested_until_{};  // our NACKs carry "cong" until then
  std::uint64_t congestion_episodes_ = 0;      // the "cong" they carry
  double avg_frame_bytes_ = 200;             // sequenced frames heard (strand): see nack_grant
  rel_clock::time_point episode_start_{};
  fault_injector rx_faults_;
  std::mt19937_64 rng_;
  mutable std::mutex rx_mu_;
  std::condition_variable rx_cv_;  // presence changed (wait_for_*)
  std::unordered_map<std::uint64_t, std::unique_ptr<stream_entry>> streams_;
  std::unordered_set<std::uint64_t> gappy_;  // streams with NACKs pending
  token_bucket nack_budget_;  // seqs NACKed per second, all streams (strand; see bus_limits.hpp)
  token_bucket nack_budget_established_;  // the established streams' own, larger (bus_limits.hpp)
  // At least the bytes held and buffered by all streams (only grows between recounts).
  std::size_t buffered_estimate_ = 0;
  // Where the streams of senders that left or expired had got to: if such a sender is heard
  // again (it had not really gone: expired under overload, or a forged goodbye), its new stream
  // resumes there, so a late repair of an old seq is never delivered a second time. FIFO-bounded.
  std::unordered_map<std::uint64_t, std::uint64_t> resume_at_;
  std::deque<std::uint64_t> resume_order_;
  // Counters of streams dropped when their sender left or expired: stats() keeps them in its
  // totals, so a receiver's duplicates / recovered / lost do not vanish with the sender.
  stream_counters retired_{};
  peer_table peers_;
  // Fragmented messages being put back together (strand only), and the timer that frees those
  // that stall.
  reassembler reasm_;
  asio::steady_timer reasm_timer_;
  rel_clock::time_point reasm_timer_at_ = rel_clock::time_point::max();
  asio::steady_timer nack_timer_;
  rel_clock::time_point nack_deadline_ = rel_clock::time_point::max();
  asio::steady_timer hb_timer_;
  asio::steady_timer expiry_timer_;
  asio::steady_timer tail_timer_;
  asio::steady_timer burst_timer_;  // end_burst's recheck of a sender still busy
  asio::steady_timer welcome_timer_;  // answers a newcomer's announce with our heartbeat
  bool welcome_armed_ = false;
  rel_clock::time_point next_heartbeat_{};  // strand: when the heartbeat timer sends again

  // Queue drops not reported yet (strand): report_drop_runs() reports them a moment later, so
  // consecutive drops of one sender make one loss event.
  asio::steady_timer drop_timer_;
  bool drop_timer_armed_ = false;
  std::vector<std::shared_ptr<sub_entry>> drop_runs_;
  rel_clock::time_point last_grace_{};  // strand: while_blocked() last excused the peers' silence

  // Calls: pending outgoing calls (any thread, calls_mu_), their deadline timer (strand).
  std::mutex calls_mu_;
  call_table calls_;
  asio::steady_timer calls_timer_;
  rel_clock::time_point calls_timer_at_ = rel_clock::time_point::max();
  std::atomic<bool> sent_sequenced_{false};  // calls or replies sent: close() lingers

  // Handlers.
  std::map<std::string, std::shared_ptr<call_handler>, std::less<>> methods_;  // handlers_mu_
  mutable std::mutex handlers_mu_;
  std::shared_ptr<const std::vector<std::shared_ptr<sub_entry>>> subs_;
  std::atomic<std::uint64_t> subs_version_{0};  // bumped (under handlers_mu_) when subs_ changes
  // Strand only: dispatch_message's copy of subs_ as of subs_version_ == strand_subs_version_.
  std::shared_ptr<const std::vector<std::shared_ptr<sub_entry>>> strand_subs_;
  std::uint64_t strand_subs_version_ = 0;
  // Queues of subscriptions ended from one of the bus's threads, which must not join them there;
  // joined by the next subscribe() once they have exited, or by close().
  std::vector<std::shared_ptr<sub_queue>> orphans_;
  handler_list<peer_handler> peer_handlers_;
  handler_list<loss_handler> loss_handlers_;
  handler_list<datagram_handler> taps_;
  std::atomic<bool> tapped_{false};
  std::atomic<int> self_subs_{0};  // subscriptions with include_self: our loop-back is wanted
  // `sealed`: the outcome of opening (sealed bus) or null (open bus).
  void dispatch_tap(std::string_view dgram, bool injected, const seal::open_result* sealed);

  // Counters (atomics: written by the strand or under send_mu_, read from anywhere).
  struct counters {
    std::atomic<std::uint64_t> datagrams_received{0}, bytes_received{0}, datagrams_sent{0},
        bytes_sent{0}, send_errors{0}, receive_errors{0}, published{0}, delivered{0}, nacks_received{0},
        repairs_sent{0}, repairs_unavailable{0}, dropped_tx_injected{0}, nacks_sent{0},
        batched_frames{0}, own_datagrams{0}, rx_overflows{0}, rx_backlogs{0},
        congestion_notices{0}, rate_cuts{0}, flow_waits{0}, flow_reports{0},
        reassembled{0}, reassembly_bytes{0}, reassembly_partials{0},
        queue_dropped{0}, nacks_deferred{0}, repairs_deferred{0}, goodbyes_refuted{0}, frames_shed{0};
    std::array<std::atomic<std::uint64_t>, drop_reason_count> dropped{};
  };
  counters c_;
  void count_drop(drop_reason r) { c_.dropped[static_cast<std::size_t>(r)].fetch_add(1, std::memory_order_relaxed); }
};

// A user's handler that throws must not end the bus thread (and with it the process, through
// std::terminate): the exception is reported through the log hook and the bus goes on.
// The description is built only when something threw: this sits on the delivery path.
template <class F>
void bus_impl::guarded(std::string_view what, std::string_view which, F&& f) {
  handler_scope scope;
  try {
    f();
  } catch (const std::exception& e) {
    if (opts_.log) opts_.log(log_level::error, std::string(what) + std::string(which) + " threw: " + e.what());
  } catch (...) {
    if (opts_.log)
      opts_.log(log_level::error, std::string(what) + std::string(which) + " threw a non-exception");
  }
}

}  // namespace peerbus::detail
