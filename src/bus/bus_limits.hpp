// bus/bus_limits.hpp: the bus's own bounds on memory and bursts, in one place.
#pragma once

#include "reliability/config.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace peerbus::detail {

inline constexpr std::size_t max_streams = 4096;

// A sealed receiver refuses what was sealed before it started (docs/protocol.md 16.4), less this
// much: a sender preempted between sealing and sending (measured: 8.6 ms on 2 loaded CPUs) puts
// a datagram sealed just before our start on the wire after our socket joined, and refusing
// that counted a genuine datagram as a replay. A replay of something sealed this shortly before
// we started is accepted once; we never heard it, so it is not a duplicate for us.
inline constexpr std::int64_t seal_start_grace_us = 100'000;
// Frames held per sender while we wait for its heartbeat (stream_entry::held): about a second of
// a busy sender's traffic, the longest the wait lasts when its heartbeats arrive.
inline constexpr std::size_t max_held_frames = 16384;
inline constexpr std::size_t max_held_bytes = std::size_t{16} << 20;
// A NACK may name many messages; one NACK never makes us resend more than this, so a forged
// "NACK for a billion messages" costs a bounded burst.
inline constexpr std::uint64_t max_repairs_per_nack = 2048;
// The NACK budget (issue 8): a receiver asks for at most nack_budget_rate seqs per second
// across all streams, nack_budget_burst at once, so no input (a flood of forged senders, each
// with a phantom gap) makes it send a NACK storm. What does not fit is deferred, not lost: it
// stays due and is asked for once the budget refills (bus_stats::nacks_deferred). One stream
// gets at most max_repairs_per_nack seqs a turn (what one NACK gets repaired anyway); streams
// take turns, established ones first (an announced peer from which at least established_frames
// frames have arrived), and the others may not spend the last nack_budget_reserve seqs, kept for them.
// 65536 seqs/s is several times what real loss repair asks on loopback (a sender at 100,000
// messages/s losing 10%), and a few NACK ranges per second for a phantom gap.
inline constexpr std::uint64_t nack_budget_rate = 65536;
inline constexpr std::uint64_t nack_budget_burst = 16384;
inline constexpr std::uint64_t nack_budget_reserve = 4096;
// Established streams have a budget of their own: a receiver whose buffer overflowed must ask for
// tens of thousands of seqs within the sender's window, faster than the sender moves on.
// 1M seqs/s is a few NACK datagrams per millisecond; what it makes a sender resend is bounded
// by the sender's repair budget.
inline constexpr std::uint64_t nack_budget_established_rate = std::uint64_t{1} << 20;
inline constexpr std::uint64_t nack_budget_established_burst = std::uint64_t{1} << 17;
inline constexpr std::uint64_t established_frames = 16;
// Out of budget, the NACK timer waits until this many seqs (beyond the reserve, if it applies)
// are back: 256 at 65536/s is 4 ms, so a starved receiver wakes a few hundred times a second.
inline constexpr std::uint64_t nack_budget_quantum = 256;
// Frames held for unannounced senders and buffered out of order, all streams together: past
// max_buffered_total, the streams that are not established give theirs up, newest first, until
// the total is back under 3/4 of it. Established streams keep their own per-stream bounds.
inline constexpr std::size_t max_buffered_total = std::size_t{64} << 20;
// The repair budget: a sender resends at most repair_budget_rate bytes per second, burst
// repair_budget_burst, however many NACKs ask (each still gets at most max_repairs_per_nack).
// What does not fit is not sent now (bus_stats::repairs_deferred); the receivers ask again.
// 64 MiB/s is far above real loss repair on loopback, and bounds a forged NACK flood's cost.
inline constexpr std::uint64_t repair_budget_rate = std::uint64_t{64} << 20;
inline constexpr std::uint64_t repair_budget_burst = std::uint64_t{8} << 20;
// A closing sender lingers (like SO_LINGER) so the receivers' last repairs still find it: it
// re-advertises its tail every close_advert_every and leaves once no NACK came for the quiet
// period, or after close_linger_max at most. The quiet period must outlast the receivers' NACK
// back-off (nack_retry_max) once repairs are under way, else a receiver waiting out its back-off
// finds the sender gone.
inline constexpr auto close_quiet_idle = std::chrono::milliseconds(100);
inline constexpr auto close_quiet_repairing = std::chrono::milliseconds(100);  // + 10 * nack_retry_max
inline constexpr auto close_advert_every = std::chrono::milliseconds(100);
// Batching (bus_send.cpp, end_burst): a sender that published at least busy_sender_frames since
// the bus thread last looked is still going flat out; its open batch is looked at again after
// busy_sender_recheck rather than flushed half empty. Fewer frames: it went idle, flush now.
// The recheck bounds how long the last frames of a flat-out burst wait for company; it doubles
// while the sender keeps going, up to busy_sender_recheck_max.
inline constexpr std::uint64_t busy_sender_frames = 4;
inline constexpr rel_clock::duration busy_sender_recheck = std::chrono::microseconds(50);
inline constexpr rel_clock::duration busy_sender_recheck_max = std::chrono::microseconds(200);
// The receive loop reads up to rx_batch_slots datagrams per call (recvmmsg) into slots of
// rx_slot_size bytes (the largest UDP payload fits).
inline constexpr std::size_t rx_batch_slots = 8;
inline constexpr std::size_t rx_slot_size = 65536;
// Datagrams read per wake-up of the receive loop before other work on the strand gets a turn.
inline constexpr int max_datagrams_per_wake = 64;
// ...and for no longer than this (handlers included) before the strand's timers get a turn.
inline constexpr auto max_drain_time = std::chrono::milliseconds(20);
// After our receive buffer overflowed, our NACKs carry "cong" for this long: the gaps they ask
// about are the overflow's, found only once the backlog before them is read.
inline constexpr auto congestion_memory = std::chrono::milliseconds(500);
// Overflows within this long of an episode's first belong to it: one slow-down each.
inline constexpr auto congestion_episode = std::chrono::milliseconds(50);
// A new episode is told at once to the established senders heard within this long, at most
// max_congestion_notices of them (the most lately heard): a bounded burst, whatever floods us.
inline constexpr auto congestion_notice_recent = std::chrono::seconds(1);
inline constexpr std::size_t max_congestion_notices = 64;
inline constexpr auto close_linger_max = std::chrono::milliseconds(3000);

// Flow control by the slowest receiver (reliability/receiver_table.hpp, docs/protocol.md 8.9).
// A receiver reports its progress ("have") to a sender every flow_report_frames frames or
// flow_report_bytes bytes it got from it in order, and whenever the sender asks. A sender that
// would evict frames a receiver still needs waits, asking every flow_ask_every, and gives up on
// a receiver that makes no progress for flow_stall_max while it waits (stuck, or forged). A
// closing sender also waits for every receiver to confirm its last seq, flow_confirm_max at
// most.
inline constexpr std::uint64_t flow_report_frames = 8192;
inline constexpr std::uint64_t flow_report_bytes = std::uint64_t{4} << 20;
inline constexpr auto flow_ask_every = std::chrono::milliseconds(10);
inline constexpr auto flow_stall_max = std::chrono::milliseconds(5000);
inline constexpr auto flow_confirm_max = std::chrono::milliseconds(30000);
// A receiver answers a sender's asks at most this often (a flood of asks in one sender's name
// costs one report per interval).
inline constexpr auto flow_answer_every = std::chrono::milliseconds(2);
// A strand held up by a full block queue reports its progress this often while it moves (it
// cannot read the senders' asks meanwhile).
inline constexpr auto flow_blocked_report_every = std::chrono::milliseconds(100);

// Queued subscriptions. A strand waiting for room in a block queue wakes every
// queue_wait_tick to send a heartbeat when one is due. Queue drops are reported
// queue_drop_report_delay after the first of a run, so a burst of drops of one sender's
// consecutive messages makes one loss event rather than thousands.
inline constexpr auto queue_wait_tick = std::chrono::milliseconds(10);
inline constexpr auto queue_drop_report_delay = std::chrono::milliseconds(10);

}  // namespace peerbus::detail
