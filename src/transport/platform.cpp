// transport/platform.cpp: POSIX (Linux, macOS) implementation of the platform seam; Windows
// branches are written but not tested here (see docs/architecture.md).
#include "transport/platform.hpp"

#include <asio/ip/multicast.hpp>
#include <asio/socket_base.hpp>

#include <algorithm>
#include <string>

#ifdef _WIN32
#include <process.h>
#include <winsock2.h>
#else
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <climits>
#include <fstream>
#endif

namespace peerbus::detail::platform {

void allow_port_sharing(asio::ip::udp::socket& s, std::error_code& ec) {
  s.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return;
#if defined(SO_REUSEPORT) && !defined(_WIN32)
  int one = 1;
  if (::setsockopt(s.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    ec = std::error_code(errno, std::system_category());
#endif
}

asio::ip::address bind_address(const asio::ip::address& group) {
#ifdef _WIN32
  return group.is_v6() ? asio::ip::address(asio::ip::address_v6::any())
                       : asio::ip::address(asio::ip::address_v4::any());
#else
  return group;
#endif
}

void receive_only_joined_groups(asio::ip::udp::socket& s) {
#if defined(__linux__) && defined(IP_MULTICAST_ALL)
  int zero = 0;
  (void)::setsockopt(s.native_handle(), IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero);
#else
  (void)s;
#endif
}

std::size_t set_receive_buffer(asio::ip::udp::socket& s, std::size_t bytes) {
  int want = bytes > static_cast<std::size_t>(INT_MAX / 2) ? INT_MAX / 2 : static_cast<int>(bytes);
#if defined(__linux__) && defined(SO_RCVBUFFORCE)
  if (::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0)
#endif
  {
    std::error_code ec;
    s.set_option(asio::socket_base::receive_buffer_size(want), ec);
  }
  asio::socket_base::receive_buffer_size got;
  std::error_code ec;
  s.get_option(got, ec);
  if (ec) return 0;
  // Linux reports twice what it grants for data; Asio's get_option already halves it
  // (asio/detail/impl/socket_ops.ipp), so halving again here would under-report by 2x.
  return static_cast<std::size_t>(got.value());
}

void send_to(asio::ip::udp::socket& s, const asio::ip::udp::endpoint& to, const void* data,
             std::size_t size, std::error_code& ec) noexcept {
  ec.clear();
#ifdef _WIN32
  int n = ::sendto(s.native_handle(), static_cast<const char*>(data), static_cast<int>(size), 0,
                   to.data(), static_cast<int>(to.size()));
  if (n < 0) ec = std::error_code(::WSAGetLastError(), std::system_category());
#else
  for (int attempt = 0;; ++attempt) {
    ssize_t n = ::sendto(s.native_handle(), data, size, 0, to.data(),
                         static_cast<socklen_t>(to.size()));
    if (n >= 0) return;
    int err = errno;
    if (err == EINTR) continue;
    if ((err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) && attempt < 1000) {
      // The socket is non-blocking (Asio's receive loop made it so): wait for room instead of
      // dropping, which paces a sender that outruns the kernel.
      pollfd p{s.native_handle(), POLLOUT, 0};
      (void)::poll(&p, 1, 10);
      continue;
    }
    ec = std::error_code(err, std::system_category());
    return;
  }
#endif
}

std::size_t interface_mtu(const asio::ip::address& iface) noexcept {
#if defined(SIOCGIFMTU) && !defined(_WIN32)
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return 0;
  std::string name;
  for (ifaddrs* a = list; a && name.empty(); a = a->ifa_next) {
    if (!a->ifa_addr) continue;
    if (iface.is_v4() && a->ifa_addr->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
      if (ntohl(in->sin_addr.s_addr) == iface.to_v4().to_uint()) name = a->ifa_name;
    } else if (iface.is_v6() && a->ifa_addr->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
      const auto want = iface.to_v6().to_bytes();
      if (std::equal(want.begin(), want.end(), in6->sin6_addr.s6_addr)) name = a->ifa_name;
    }
  }
  ::freeifaddrs(list);
  if (name.empty() || name.size() >= IFNAMSIZ) return 0;
  const int fd = ::socket(iface.is_v6() ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return 0;
  ifreq req{};
  std::copy(name.begin(), name.end(), req.ifr_name);
  const int rc = ::ioctl(fd, SIOCGIFMTU, &req);
  ::close(fd);
  return rc == 0 && req.ifr_mtu > 0 ? static_cast<std::size_t>(req.ifr_mtu) : 0;
#else
  (void)iface;
  return 0;
#endif
}

std::size_t max_udp_payload() noexcept {
#ifdef __APPLE__
  return 9216;
#else
  return 65507;
#endif
}

long process_id() noexcept {
#ifdef _WIN32
  return static_cast<long>(_getpid());
#else
  return static_cast<long>(::getpid());
#endif
}

std::string host_name() {
  char buf[256] = {0};
#ifndef _WIN32
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
#endif
  return buf[0] ? std::string(buf) : std::string("localhost");
}

std::string program_name() {
#ifdef __linux__
  std::ifstream comm("/proc/self/comm");
  std::string name;
  if (std::getline(comm, name) && !name.empty()) return name;
#endif
  return "peer";
}

}  // namespace peerbus::detail::platform
