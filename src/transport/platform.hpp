// transport/platform.hpp: the seam for everything that differs between operating systems.
#pragma once

#include <asio/ip/udp.hpp>

#include <cstddef>
#include <system_error>

namespace peerbus::detail::platform {

/// Lets any number of processes bind the bus's port (SO_REUSEADDR, and SO_REUSEPORT where it
/// exists: Linux, macOS, BSDs).
void allow_port_sharing(asio::ip::udp::socket& s, std::error_code& ec);

/// Where to bind: the group itself on Linux and macOS (so a socket hears only its own group,
/// never another bus that shares the port), the wildcard on Windows, which refuses that.
asio::ip::address bind_address(const asio::ip::address& group);

/// Linux delivers every group joined by anyone on the port unless IP_MULTICAST_ALL is off.
void receive_only_joined_groups(asio::ip::udp::socket& s);

/// Requests a receive buffer of `bytes`; returns what the kernel granted. As root on Linux the
/// request may exceed net.core.rmem_max (SO_RCVBUFFORCE).
std::size_t set_receive_buffer(asio::ip::udp::socket& s, std::size_t bytes);

/// Sends one datagram from any thread (the socket is shared with the receive loop, so this
/// calls the OS directly rather than Asio, whose socket objects are not thread-safe). Waits for
/// room when the socket's send buffer is full rather than dropping.
void send_to(asio::ip::udp::socket& s, const asio::ip::udp::endpoint& to, const void* data,
             std::size_t size, std::error_code& ec) noexcept;

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
