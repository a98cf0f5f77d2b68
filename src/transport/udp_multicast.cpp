// transport/udp_multicast.cpp: opening, joining and sending on the bus's socket.
#include "transport/udp_multicast.hpp"

#include "transport/platform.hpp"

#include <peerbus/error.hpp>

#include <asio/error.hpp>
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

// "interface eth9 is not on this machine; ...", with a URL to copy that differs only there.
[[noreturn]] void not_on_this_machine(const bus_url& url, const std::string& what) {
  bus_url fixed = url;
  fixed.iface = url.group.find(':') == std::string::npos ? "127.0.0.1" : "::1";
  fixed.key.clear();
  throw config_error("interface " + url.iface + " " + what +
                     "; pass iface=ADDRESS or iface=NAME in the bus URL (`ip -brief address` "
                     "lists them), e.g. --url '" +
                     fixed.str() + "'");
}

// Linux routes IPv6 multicast even with IPV6_MULTICAST_IF set, and its lo has no multicast
// route: connecting a probe socket finds out now rather than at the first send.
void check_ipv6_route(asio::io_context& ctx, const asio::ip::udp::endpoint& group,
                      const std::string& g, const platform::interface_info& itf) {
  asio::ip::udp::socket probe(ctx);
  std::error_code ec;
  probe.open(asio::ip::udp::v6(), ec);
  if (!ec) probe.set_option(asio::ip::multicast::outbound_interface(itf.index), ec);
  if (!ec) probe.connect(group, ec);
  if (ec != asio::error::network_unreachable) return;
  if (itf.loopback)
    throw config_error("no IPv6 multicast route on " + itf.name + " for group [" + g +
                       "]: Linux gives lo none. As root: ip -6 route add local ff01::/16 dev " +
                       itf.name + " table local (then use an ff01:: group; see docs/lan.md)");
  throw config_error("no IPv6 multicast route on " + itf.name + " for group [" + g +
                     "]; is the interface up with its MULTICAST flag (ip link set " + itf.name +
                     " multicast on)?");
}

}  // namespace

udp_multicast::udp_multicast(asio::io_context& ctx, const bus_url& url, const log_handler& log)
    : socket_(ctx) {
  std::error_code ec;
  const auto group = asio::ip::make_address(url.group, ec);
  if (ec || !group.is_multicast())
    throw config_error("group " + url.group +
                       " is not a multicast address; see bus URL syntax "
                       "in docs/protocol.md 2.1");
  // Per family: the socket, what to join and send by, and (IPv6) the device to stay on.
  asio::ip::udp protocol = asio::ip::udp::v4();
  asio::ip::multicast::join_group join;
  asio::ip::multicast::outbound_interface out;
  std::string device;
  std::error_code not_v4;
  const auto iface_v4 = asio::ip::make_address_v4(url.iface, not_v4);
  if (group.is_v4()) {
    group_ = asio::ip::udp::endpoint(group, url.port);
    auto iface = iface_v4;
    if (not_v4) {  // a name (or an IPv6 address, which parse() refuses with an IPv4 group)
      const auto itf = platform::find_interface(url.iface);
      if (!itf) not_on_this_machine(url, "is not on this machine");
      if (itf->v4.is_unspecified()) not_on_this_machine(url, "has no IPv4 address");
      iface = itf->v4;
    } else if (!is_local_address(ctx, iface)) {
      not_on_this_machine(url, "is not on this machine");
    }
    join = asio::ip::multicast::join_group(group.to_v4(), iface);
    out = asio::ip::multicast::outbound_interface(iface);
  } else {
    if (!not_v4) not_on_this_machine(url, "is an IPv4 address, for an IPv6 group");
    const auto itf = platform::find_interface(url.iface);
    if (!itf) not_on_this_machine(url, "is not on this machine");
    auto g6 = group.to_v6();
    g6.scope_id(itf->index);  // ff01::, ff02:: need it; harmless for wider scopes
    group_ = asio::ip::udp::endpoint(g6, url.port);
    protocol = asio::ip::udp::v6();
    join = asio::ip::multicast::join_group(g6, itf->index);
    out = asio::ip::multicast::outbound_interface(itf->index);
    device = itf->name;
    check_ipv6_route(ctx, group_, url.group, *itf);
  }

  socket_.open(protocol, ec);
  if (ec) fail(ec, "opening the UDP socket");
  if (!device.empty()) {
    platform::receive_only_on(socket_, device, ec);
    if (ec) fail(ec, "binding the socket to interface " + device + " (SO_BINDTODEVICE)");
  }
  platform::allow_port_sharing(socket_, ec);
  if (ec) fail(ec, "sharing port " + std::to_string(url.port) + " (SO_REUSEADDR)");
  platform::receive_only_joined_groups(socket_);
  socket_.bind(asio::ip::udp::endpoint(platform::bind_address(group_.address()), url.port), ec);
  if (ec) fail(ec, "binding port " + std::to_string(url.port));
  socket_.set_option(join, ec);
  if (ec) fail(ec, "joining group " + url.group + " on interface " + url.iface);
  socket_.set_option(out, ec);
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
