// transport/udp_multicast.cpp: opening, joining and sending on the bus's socket.
#include "transport/udp_multicast.hpp"

#include "transport/platform.hpp"

#include <peerbus/error.hpp>

#include <asio/ip/multicast.hpp>

#include <atomic>
#include <string>

namespace peerbus::detail {

namespace {

[[noreturn]] void fail(const std::error_code& ec, const std::string& doing) {
  throw std::system_error(ec, doing);
}

// True when `iface` is an address of this machine: binding to it succeeds only then. Portable
// where enumerating interfaces is not.
bool is_local_address(asio::io_context& ctx, const asio::ip::address_v4& iface) {
  asio::ip::udp::socket probe(ctx);
  std::error_code ec;
  probe.open(asio::ip::udp::v4(), ec);
  if (ec) return false;
  probe.bind(asio::ip::udp::endpoint(iface, 0), ec);
  return !ec;
}

}  // namespace

udp_multicast::udp_multicast(asio::io_context& ctx, const bus_url& url, const log_handler& log)
    : socket_(ctx) {
  auto group = asio::ip::make_address_v4(url.group);
  auto iface = asio::ip::make_address_v4(url.iface);
  group_ = asio::ip::udp::endpoint(group, url.port);
  if (!is_local_address(ctx, iface))
    throw config_error("interface " + url.iface +
                       " is not on this machine; pass iface=ADDRESS in the bus URL "
                       "(--url udpm://" + url.group + ":" + std::to_string(url.port) +
                       "?iface=127.0.0.1)");

  std::error_code ec;
  socket_.open(asio::ip::udp::v4(), ec);
  if (ec) fail(ec, "opening the UDP socket");
  platform::allow_port_sharing(socket_, ec);
  if (ec) fail(ec, "sharing port " + std::to_string(url.port) + " (SO_REUSEADDR/SO_REUSEPORT)");
  platform::receive_only_joined_groups(socket_);
  socket_.bind(asio::ip::udp::endpoint(platform::bind_address(group), url.port), ec);
  if (ec) fail(ec, "binding port " + std::to_string(url.port));
  socket_.set_option(asio::ip::multicast::join_group(group, iface), ec);
  if (ec) fail(ec, "joining group " + url.group + " on interface " + url.iface);
  socket_.set_option(asio::ip::multicast::outbound_interface(iface), ec);
  if (ec) fail(ec, "choosing interface " + url.iface + " for sending (IP_MULTICAST_IF)");
  socket_.set_option(asio::ip::multicast::hops(url.ttl), ec);
  if (ec) fail(ec, "setting TTL " + std::to_string(url.ttl));
  socket_.set_option(asio::ip::multicast::enable_loopback(true), ec);
  if (ec) fail(ec, "enabling multicast loop");

  rcvbuf_ = platform::set_receive_buffer(socket_, url.rcvbuf);
  if (rcvbuf_ < url.rcvbuf && log) {
    // Said once per process: every bus in it would hit the same kernel cap.
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      log(log_level::warning,
          "the kernel capped the receive buffer at " + std::to_string(rcvbuf_) + " bytes (asked " +
              std::to_string(url.rcvbuf) + "); bursts may overflow it and cost repairs. Raise "
              "the cap with: sysctl -w net.core.rmem_max=" + std::to_string(url.rcvbuf));
  }
}

void udp_multicast::send(const void* data, std::size_t size, std::error_code& ec) noexcept {
  platform::send_to(socket_, group_, data, size, ec);
}

}  // namespace peerbus::detail
