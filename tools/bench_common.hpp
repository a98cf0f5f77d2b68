// tools/bench_common.hpp: what `peerbus bench` shares: private buses, payloads, percentiles, plain
// UDP multicast sockets (the floor), and the arguments of every bench subcommand.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace peerbus::tools::bench {

using clock = std::chrono::steady_clock;

// ---- arguments of the subcommands (cmd_bench.cpp parses them) --------------------------------

struct latency_args {
  long long count = 20000;  ///< measured round trips
  long long warmup = 1000;  ///< round trips before measuring
  std::size_t size = 64;    ///< payload bytes
  double timeout = 120;     ///< everything ends by then, seconds
  bool raw = false;         ///< also measure plain UDP multicast
  bool json = false;
  std::string pin = "none";  ///< none, same (both processes on one CPU), split (one CPU each)
};

struct throughput_args {
  int subscribers = 1;
  long long count = 200000;
  std::size_t size = 64;
  double rate = 0;  ///< messages/s the publisher paces to; 0 as fast as possible
  double timeout = 120;
  bool raw = false;
  bool json = false;
};

/// The hidden child roles, started by the drivers above with the same binary.
struct child_args {
  bool raw = false;
  std::string listen;    ///< bus URL (bus children) or endpoint (raw) to receive on
  std::string reply;     ///< raw echo: endpoint to send the pongs to
  long long count = 0;   ///< messages expected (sink) or to echo (echo); 0 unlimited
  double deadline = 60;  ///< seconds; the child gives up then (exit 3)
  long long parent = 0;  ///< the driver's pid: the child ends when the driver goes away
  int cpu = -1;          ///< pin this process to that CPU first; -1 no pinning
};

int run_latency(const global_options& g, const latency_args& a);
int run_throughput(const global_options& g, const throughput_args& a);
int run_echo(const global_options& g, const child_args& a);
int run_sink(const global_options& g, const child_args& a);

// ---- private buses ---------------------------------------------------------------------------

/// A URL no other bus uses: a random group in 239.255.0.0/16 (never the default 239.255.80.66),
/// a UDP port the kernel just reported free, the loopback interface, TTL 0.
std::string private_url();
/// The same group with another free port (the raw floor's second socket).
std::string with_free_port(const std::string& url);

// ---- payloads --------------------------------------------------------------------------------

/// Bench payloads are JSON objects of exactly `size` bytes, `{"i":    42,"p":"xxxx"}`: the index
/// sits right-aligned in a fixed-width field (JSON allows the spaces), so writing the next index
/// costs a few stores and no allocation. The raw floor sends the same bytes.
constexpr std::size_t min_payload = 23;
constexpr std::size_t max_payload = 60000;  ///< leaves room for the envelope in one datagram
std::string make_payload(std::size_t size);
void set_index(std::string& payload, std::uint64_t index);
/// The index of a bench payload (also of a bus message's data_json), nullopt if it is not one.
std::optional<std::uint64_t> read_index(std::string_view payload);

// ---- figures ---------------------------------------------------------------------------------

struct percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;  ///< microseconds
};
/// Nearest-rank percentiles of `us` (sorted in place). All zero when empty.
percentiles summarize(std::vector<double>& us);

/// How long a process the bench starts may take to show up (join the bus, or say "ready").
constexpr std::chrono::seconds startup_limit{10};
/// The earlier of now + startup_limit and `deadline`, and how to name it in an error message:
/// "within 10 s" or "before the deadline (--timeout)".
clock::time_point startup_deadline(clock::time_point deadline);
std::string startup_limit_text(clock::time_point deadline);

/// Seconds from now until `deadline`, at least 0, as milliseconds.
std::chrono::milliseconds remaining(clock::time_point deadline);

/// Bus options of a child process: the URL given, its name, and a log that prints errors only
/// (the driver already says what the kernel capped, once).
options child_options(const global_options& g, std::string_view name, const std::string& url);

/// v rounded to the nearest whole number, halves away from zero: std::round without libm, which
/// the CLI's static link otherwise maps for this alone (docs/performance.md, section 0).
double rounded(double v);

/// CPU time this process has used so far (user + system, every thread), seconds. Unlike wall
/// time it hardly changes when other programs share the machine.
double process_cpu_seconds();

/// The CPUs this process may run on, in order.
std::vector<int> allowed_cpus();
/// Pins this thread, and so every thread it starts afterwards, to `cpu`. Throws
/// std::system_error when the kernel refuses.
void pin_to_cpu(int cpu);

/// True while the driver that started this process is alive (our parent is still `parent`).
bool parent_alive(long long parent);

// ---- plain UDP multicast ---------------------------------------------------------------------

/// One UDP socket on a multicast group, set up as the bus sets up its own (loopback interface
/// for sending, TTL 0, loop on, receive buffer as the URL says), without any protocol above it:
/// one datagram per message, no header. Throws std::system_error naming the failed step.
class raw_socket {
 public:
  /// `listen`: bind the URL's group and port and join the group there; else a send-only socket.
  raw_socket(const bus_url& url, bool listen);
  ~raw_socket();
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;

  /// Where send() goes: `to`'s group and port.
  void set_destination(const bus_url& to);
  /// Sends one datagram; false (errno kept) on failure.
  bool send(const void* data, std::size_t size);
  /// Receives one datagram into `buf`: its size, or -1 when nothing came within the receive
  /// timeout (set_timeout) or on error.
  long recv(char* buf, std::size_t cap);
  void set_timeout(std::chrono::milliseconds t);
  /// Receive buffer the kernel granted, bytes.
  std::size_t rcvbuf() const noexcept { return rcvbuf_; }

 private:
  int fd_ = -1;
  std::size_t rcvbuf_ = 0;
  sockaddr_in dest_{};
};

/// Writes `line` and a newline to stdout and flushes: a child's message to its driver.
void say(const std::string& line);

}  // namespace peerbus::tools::bench
