// transport/platform.hpp: the seam for everything that differs between operating systems.
#pragma once

#include <asio/ip/udp.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace peerbus::detail::platform {

/// Lets any number of processes bind the bus's port (SO_REUSEADDR; also SO_REUSEPORT on macOS
/// and the BSDs, which need it, but not on Linux, where it breaks per-interface delivery).
void allow_port_sharing(asio::ip::udp::socket& s, std::error_code& ec);

/// Where to bind: the group itself on Linux and macOS (so a socket hears only its own group,
/// never another bus that shares the port), the wildcard on Windows, which refuses that.
asio::ip::address bind_address(const asio::ip::address& group);

/// Linux delivers every group joined by anyone on the port unless IP_MULTICAST_ALL (IPv6:
/// IPV6_MULTICAST_ALL) is off.
void receive_only_joined_groups(asio::ip::udp::socket& s);

/// A network interface of this machine, as a bus's `iface=` names it.
struct interface_info {
  std::string name;         ///< "lo", "eth0"
  unsigned index = 0;       ///< its index: what IPv6 joins and sends by
  asio::ip::address_v4 v4;  ///< its first IPv4 address; unspecified when it has none
  bool loopback = false;
  bool multicast = false;  ///< has the MULTICAST flag (Linux's lo does not)
};

/// The interface named `name_or_address` ("eth0") or holding that address ("fd00::1");
/// nullopt when there is none. Enumerates interfaces (getifaddrs); not on Windows, where it
/// always returns nullopt.
std::optional<interface_info> find_interface(const std::string& name_or_address);

/// Receives only what arrives on interface `name` (Linux SO_BINDTODEVICE; elsewhere nothing).
/// IPv6 needs it: its membership check, unlike IPv4's, ignores the interface a group was
/// joined on, so a bus on lo would hear the same group arriving on eth0.
void receive_only_on(asio::ip::udp::socket& s, const std::string& name, std::error_code& ec);

/// Requests a receive buffer of `bytes`; returns what the kernel granted. As root on Linux the
/// request may exceed net.core.rmem_max (SO_RCVBUFFORCE).
std::size_t set_receive_buffer(asio::ip::udp::socket& s, std::size_t bytes);

/// Sends one datagram from any thread (the socket is shared with the receive loop, so this
/// calls the OS directly rather than Asio, whose socket objects are not thread-safe). Waits for
/// room when the socket's send buffer is full rather than dropping.
void send_to(asio::ip::udp::socket& s, const asio::ip::udp::endpoint& to, const void* data,
             std::size_t size, std::error_code& ec) noexcept;

/// Asks the kernel to report, with each datagram received, how many datagrams the socket has
/// dropped so far for lack of buffer room (Linux SO_RXQ_OVFL). Returns whether it will.
bool count_receive_overflows(asio::ip::udp::socket& s) noexcept;

/// One datagram received without blocking (the socket is non-blocking).
struct received {
  std::size_t size = 0;
  bool got = false;           ///< false: nothing waiting (EAGAIN), or an error in `ec`
  bool overflow_known = false;
  std::uint32_t overflows = 0;  ///< the socket's running drop count (SO_RXQ_OVFL), when known
};
/// Receives one datagram into `buf` and its source into `from`. Nothing waiting is not an
/// error: `got` is false and `ec` clear.
received receive_from(asio::ip::udp::socket& s, char* buf, std::size_t size,
                      asio::ip::udp::endpoint& from, std::error_code& ec) noexcept;

/// How full a socket's receive queue is, where the OS tells (Linux SO_MEMINFO): bytes queued
/// (as the kernel counts them, overhead included) against the buffer's size.
struct receive_queue_fill {
  std::size_t queued = 0;
  std::size_t capacity = 0;
};
std::optional<receive_queue_fill> receive_queue(asio::ip::udp::socket& s) noexcept;

/// Several datagrams received without blocking in one call where the OS has one (Linux
/// recvmmsg), else one call each. Its storage (slots x slot_size) is reserved, not touched, until
/// datagrams land in it. Not thread-safe: the receive loop owns it.
class receive_batch {
 public:
  receive_batch(std::size_t slots, std::size_t slot_size);
  ~receive_batch();
  receive_batch(const receive_batch&) = delete;
  receive_batch& operator=(const receive_batch&) = delete;
  /// Receives what is queued, up to slots() datagrams. Fewer than slots() means the socket was
  /// found empty: nothing was left behind. 0: nothing waiting (ec clear) or an error (ec set).
  std::size_t receive(asio::ip::udp::socket& s, std::error_code& ec) noexcept;
  std::size_t slots() const noexcept { return slots_; }
  /// Datagram i of the last receive and its source.
  std::string_view datagram(std::size_t i) const noexcept {
    return {storage_.get() + i * slot_size_, sizes_[i]};
  }
  const asio::ip::udp::endpoint& from(std::size_t i) const noexcept { return from_[i]; }
  /// The socket's running drop count (SO_RXQ_OVFL) after the last receive, when known.
  bool overflow_known() const noexcept { return overflow_known_; }
  std::uint32_t overflows() const noexcept { return overflows_; }

 private:
  struct os_state;
  std::size_t slots_;
  std::size_t slot_size_;
  std::unique_ptr<char[]> storage_;
  std::unique_ptr<std::size_t[]> sizes_;
  std::unique_ptr<asio::ip::udp::endpoint[]> from_;
  std::unique_ptr<os_state> os_;
  bool overflow_known_ = false;
  std::uint32_t overflows_ = 0;
};

/// The process id and host name announced in heartbeats.
/// The MTU of the interface that holds `iface`, bytes; 0 when it cannot be told (no such
/// interface, or a platform without SIOCGIFMTU).
std::size_t interface_mtu(const asio::ip::address& iface) noexcept;
/// The largest UDP payload the OS sends by default: 65507 (IPv4's limit); macOS 9216
/// (net.inet.udp.maxdgram).
std::size_t max_udp_payload() noexcept;

long process_id() noexcept;
std::string host_name();
/// The program's name, for the default bus name ("peerbus", "editor").
std::string program_name();

}  // namespace peerbus::detail::platform
