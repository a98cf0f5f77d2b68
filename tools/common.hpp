// tools/common.hpp: what every peerbus subcommand shares: global options, exit codes, signals, output.
#pragma once

#include <peerbus/bus.hpp>

#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace peerbus::tools {

/// Exit codes scripts can rely on (documented in docs/tools.md).
enum exit_code : int {
  exit_ok = 0,
  exit_error = 1,    ///< runtime failure: could not join the bus, send failed, peer error
  exit_usage = 2,    ///< bad arguments, bad URL, bad JSON
  exit_timeout = 3,  ///< waited and nothing came (messages, subscribers, peers, a reply)
};

/// Options every subcommand takes.
struct global_options {
  std::string url;     ///< --url (else $PEERBUS_URL, else the default bus)
  std::string name;    ///< --name (else "peerbus-<subcommand>")
  std::string faults;  ///< --faults rx=0.1,tx=0.1,seed=7 (else $PEERBUS_FAULTS)
  std::string key;     ///< --key FILE|auto: seal the bus (options::key_file)
  bool verbose = false;
};

void add_global_options(CLI::App& app, global_options& g);

/// Builds bus options from the globals: the log hook prints warnings and errors to stderr.
options make_options(const global_options& g, std::string_view default_name);

/// Set by SIGINT / SIGTERM, so the command can say goodbye on the way out.
extern std::atomic<bool> stop_requested;
/// Routes SIGINT and SIGTERM to a thread of their own (sigwait), which sets stop_requested and
/// wakes every waiter below: no loop needs to poll, so an idle command costs no wakeups. Call
/// before any other thread starts (the bus's threads inherit the blocked mask). A signal that
/// was ignored when the command started (a background job of a script) stays ignored.
void install_signal_handlers();
/// Sleeps until `deadline` or a stop request, whichever is first; false when stopped.
bool sleep_until_or_stop(std::chrono::steady_clock::time_point deadline);
/// Waits until `done()` holds (true), a stop is requested or `deadline` passes (false). `done`
/// runs under an internal lock; whoever changes what it reads calls wake_waiters() afterwards.
bool wait_until_or_stop(const std::function<bool()>& done,
                        std::chrono::steady_clock::time_point deadline);
/// Wakes the threads blocked in wait_until_or_stop / sleep_until_or_stop to look again.
void wake_waiters();

/// One JSON line on stdout for a message, with the payload's text as it travelled. A binary
/// message shows "ctype" and "size" instead of "data", then `extra` (",\"bytes\":...").
void print_message_json(const message& m, std::FILE* out = stdout, std::string_view extra = {});
/// Bytes as base64 (RFC 4648, padded) and as lowercase hex.
std::string base64(std::string_view bytes);
std::string hex(std::string_view bytes);
/// Decodes base64 (padded or not); false on a character outside the alphabet.
bool from_base64(std::string_view text, std::string& out);
/// Counters as one JSON object (for --stats).
std::string stats_json(const bus_stats& s);
/// A peer as one JSON object.
std::string peer_json(const peer_info& p);

/// Parses a seconds value like 2.5 into a duration.
std::chrono::milliseconds seconds(double s);

}  // namespace peerbus::tools
