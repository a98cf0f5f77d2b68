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
#include <cstring>
#include <sys/uio.h>
#ifdef __linux__
#include <linux/sock_diag.h>
#endif
#include <fstream>
#endif

namespace peerbus::detail::platform {

void allow_port_sharing(asio::ip::udp::socket& s, std::error_code& ec) {
  s.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return;
  // Not on Linux, where SO_REUSEADDR alone lets UDP sockets share a port, and SO_REUSEPORT
  // hands each multicast datagram to one socket of the group whatever interface it joined on:
  // a bus on lo would take the LAN bus's datagrams of the same group and port (docs/lan.md).
#if defined(SO_REUSEPORT) && !defined(_WIN32) && !defined(__linux__)
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
  std::error_code ec;
  if (s.local_endpoint(ec).protocol() == asio::ip::udp::v4()) {
    (void)::setsockopt(s.native_handle(), IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero);
  } else {
    // Linux 4.20 and later; glibc's headers may lack the name (linux/in6.h: 29).
#ifndef IPV6_MULTICAST_ALL
    constexpr int IPV6_MULTICAST_ALL = 29;
#endif
    (void)::setsockopt(s.native_handle(), IPPROTO_IPV6, IPV6_MULTICAST_ALL, &zero, sizeof zero);
  }
#else
  (void)s;
#endif
}

std::optional<interface_info> find_interface(const std::string& name_or_address) {
#ifdef _WIN32
  (void)name_or_address;
  return std::nullopt;
#else
  std::error_code ec;
  const auto addr = asio::ip::make_address(name_or_address, ec);
  const bool by_address = !ec;
  ifaddrs* all = nullptr;
  if (::getifaddrs(&all) != 0) return std::nullopt;
  std::optional<interface_info> found;
  // First the interface itself, by name or address; then, by name, its first IPv4 address.
  for (ifaddrs* i = all; i && !found; i = i->ifa_next) {
    if (!i->ifa_name) continue;
    bool match = !by_address && name_or_address == i->ifa_name;
    if (by_address && i->ifa_addr && i->ifa_addr->sa_family == AF_INET && addr.is_v4()) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      match = ntohl(sin->sin_addr.s_addr) == addr.to_v4().to_uint();
    } else if (by_address && i->ifa_addr && i->ifa_addr->sa_family == AF_INET6 && addr.is_v6()) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      asio::ip::address_v6::bytes_type b;
      std::copy(sin6->sin6_addr.s6_addr, sin6->sin6_addr.s6_addr + 16, b.begin());
      match = b == addr.to_v6().to_bytes();
    }
    if (!match) continue;
    found = interface_info{};
    found->name = i->ifa_name;
    found->index = ::if_nametoindex(i->ifa_name);
    found->loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
    found->multicast = (i->ifa_flags & IFF_MULTICAST) != 0;
  }
  for (ifaddrs* i = all; i && found; i = i->ifa_next)
    if (i->ifa_name && found->name == i->ifa_name && i->ifa_addr &&
        i->ifa_addr->sa_family == AF_INET) {
      found->v4 = asio::ip::address_v4(
          ntohl(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr));
      break;
    }
  ::freeifaddrs(all);
  if (found && found->index == 0) return std::nullopt;
  return found;
#endif
}

void receive_only_on(asio::ip::udp::socket& s, const std::string& name, std::error_code& ec) {
  ec.clear();
#if defined(__linux__) && defined(SO_BINDTODEVICE)
  // Unprivileged since Linux 5.7 when the socket is not bound to a device yet.
  if (::setsockopt(s.native_handle(), SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                   static_cast<socklen_t>(name.size())) != 0)
    ec = std::error_code(errno, std::system_category());
#else
  (void)s;
  (void)name;
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

bool count_receive_overflows(asio::ip::udp::socket& s) noexcept {
#if defined(__linux__) && defined(SO_RXQ_OVFL)
  int one = 1;
  return ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) == 0;
#else
  (void)s;
  return false;
#endif
}

received receive_from(asio::ip::udp::socket& s, char* buf, std::size_t size,
                      asio::ip::udp::endpoint& from, std::error_code& ec) noexcept {
  ec.clear();
  received r;
#ifdef _WIN32
  int len = static_cast<int>(from.capacity());
  int n = ::recvfrom(s.native_handle(), buf, static_cast<int>(size), 0, from.data(), &len);
  if (n < 0) {
    int err = ::WSAGetLastError();
    if (err != WSAEWOULDBLOCK) ec = std::error_code(err, std::system_category());
    return r;
  }
  from.resize(static_cast<std::size_t>(len));
  r.size = static_cast<std::size_t>(n);
  r.got = true;
#else
  iovec iov{buf, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint32_t))];
  msghdr msg{};
  msg.msg_name = from.data();
  msg.msg_namelen = static_cast<socklen_t>(from.capacity());
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(s.native_handle(), &msg, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) ec = std::error_code(errno, std::system_category());
    return r;
  }
  from.resize(msg.msg_namelen);
  r.size = static_cast<std::size_t>(n);
  r.got = true;
#if defined(__linux__) && defined(SO_RXQ_OVFL)
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
      std::memcpy(&r.overflows, CMSG_DATA(c), sizeof r.overflows);
      r.overflow_known = true;
    }
  }
#endif
#endif
  return r;
}

std::optional<receive_queue_fill> receive_queue(asio::ip::udp::socket& s) noexcept {
#if defined(__linux__) && defined(SO_MEMINFO)
  std::uint32_t mem[SK_MEMINFO_VARS] = {};
  socklen_t len = sizeof mem;
  if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 ||
      len < (SK_MEMINFO_RCVBUF + 1) * sizeof(std::uint32_t))
    return std::nullopt;
  return receive_queue_fill{mem[SK_MEMINFO_RMEM_ALLOC], mem[SK_MEMINFO_RCVBUF]};
#else
  (void)s;
  return std::nullopt;
#endif
}

#if defined(__linux__)
struct receive_batch::os_state {
  static constexpr std::size_t control_size = CMSG_SPACE(sizeof(std::uint32_t));
  std::unique_ptr<mmsghdr[]> msgs;
  std::unique_ptr<iovec[]> iov;
  std::unique_ptr<char[]> control;
};
#else
struct receive_batch::os_state {};
#endif

receive_batch::receive_batch(std::size_t slots, std::size_t slot_size)
    : slots_(std::max<std::size_t>(slots, 1)),
      slot_size_(slot_size),
      storage_(new char[slots_ * slot_size]),  // not value-initialised: untouched until used
      sizes_(new std::size_t[slots_]()),
      from_(new asio::ip::udp::endpoint[slots_]),
      os_(std::make_unique<os_state>()) {
#if defined(__linux__)
  os_->msgs.reset(new mmsghdr[slots_]());
  os_->iov.reset(new iovec[slots_]());
  os_->control.reset(new char[slots_ * os_state::control_size]());
  for (std::size_t i = 0; i < slots_; ++i) {
    os_->iov[i] = iovec{storage_.get() + i * slot_size_, slot_size_};
    msghdr& m = os_->msgs[i].msg_hdr;
    m.msg_iov = &os_->iov[i];
    m.msg_iovlen = 1;
  }
#endif
}

receive_batch::~receive_batch() = default;

std::size_t receive_batch::receive(asio::ip::udp::socket& s, std::error_code& ec) noexcept {
  ec.clear();
#if defined(__linux__)
  for (std::size_t i = 0; i < slots_; ++i) {
    msghdr& m = os_->msgs[i].msg_hdr;  // recvmmsg rewrites the lengths: set them afresh
    m.msg_name = from_[i].data();
    m.msg_namelen = static_cast<socklen_t>(from_[i].capacity());
    m.msg_control = os_->control.get() + i * os_state::control_size;
    m.msg_controllen = os_state::control_size;
    m.msg_flags = 0;
  }
  int n;
  do {
    // The socket is non-blocking; MSG_DONTWAIT says so again, and recvmmsg returns what it got
    // once the queue is empty instead of waiting to fill every slot.
    n = ::recvmmsg(s.native_handle(), os_->msgs.get(), static_cast<unsigned>(slots_), MSG_DONTWAIT,
                   nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) ec = std::error_code(errno, std::system_category());
    return 0;
  }
  for (int i = 0; i < n; ++i) {
    msghdr& m = os_->msgs[i].msg_hdr;
    from_[i].resize(m.msg_namelen);
    sizes_[i] = os_->msgs[i].msg_len;
#if defined(SO_RXQ_OVFL)
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
        std::memcpy(&overflows_, CMSG_DATA(c), sizeof overflows_);
        overflow_known_ = true;
      }
    }
#endif
  }
  return static_cast<std::size_t>(n);
#else
  std::size_t n = 0;
  for (; n < slots_; ++n) {
    auto r = receive_from(s, storage_.get() + n * slot_size_, slot_size_, from_[n], ec);
    if (!r.got) break;
    sizes_[n] = r.size;
    if (r.overflow_known) {
      overflow_known_ = true;
      overflows_ = r.overflows;
    }
  }
  if (n > 0) ec.clear();  // an error after datagrams: reported by the next call
  return n;
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
