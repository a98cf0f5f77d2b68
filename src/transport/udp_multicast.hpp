// transport/udp_multicast.hpp: the bus's one UDP socket: joined to the group, shared by all.
#pragma once

#include <peerbus/log.hpp>
#include <peerbus/options.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <cstddef>
#include <system_error>

namespace peerbus::detail {

/// Opens the socket as a bus needs it: port shared with every other process (SO_REUSEADDR),
/// group joined on the configured interface (IPv4 by address, IPv6 by index, and bound to that
/// device), IP_MULTICAST_IF set to that interface so the bus works on a stock Linux box with no
/// multicast route, TTL (IPv6: hops) from the URL (0: never leaves this host), loop on (the
/// other processes here are on this host too), and a large receive buffer. Sending is
/// thread-safe; receiving is the caller's async loop.
class udp_multicast {
 public:
  /// Throws config_error for an interface that is not on this machine and std::system_error
  /// for any other failure, each naming what was being done.
  udp_multicast(asio::io_context& ctx, const bus_url& url, const log_handler& log);

  void send(const void* data, std::size_t size, std::error_code& ec) noexcept;

  asio::ip::udp::socket& socket() noexcept { return socket_; }
  const asio::ip::udp::endpoint& group_endpoint() const noexcept { return group_; }
  std::size_t receive_buffer() const noexcept { return rcvbuf_; }

 private:
  asio::ip::udp::socket socket_;
  asio::ip::udp::endpoint group_;
  std::size_t rcvbuf_ = 0;
};

}  // namespace peerbus::detail
