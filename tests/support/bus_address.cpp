// support/bus_address.cpp: random multicast group + kernel-chosen free port per test.
#include "support/bus_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <system_error>

namespace peerbus::test {

namespace {

// A UDP port that was free a moment ago: bind 127.0.0.1:0, read the port, close.
unsigned short free_udp_port() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "bind 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

std::string private_bus_url() {
  static std::mutex m;
  static std::set<std::string> given;
  static std::mt19937 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), static_cast<unsigned>(::getpid()),
                      static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count())};
    return std::mt19937(seq);
  }();
  std::lock_guard lk(m);
  for (;;) {
    std::uniform_int_distribution<int> third(0, 255), fourth(1, 254);
    int x = third(rng), y = fourth(rng);
    if (x == 80 && y == 66) continue;  // the default group
    std::string url = "udpm://239.255." + std::to_string(x) + "." + std::to_string(y) + ":" +
                      std::to_string(free_udp_port()) + "?ttl=0&iface=127.0.0.1";
    if (given.insert(url).second) return url;
  }
}

std::string bus_group_port(const std::string& url) {
  constexpr std::string_view scheme = "udpm://";
  auto start = url.compare(0, scheme.size(), scheme) == 0 ? scheme.size() : 0;
  auto q = url.find('?', start);
  return url.substr(start, q == std::string::npos ? std::string::npos : q - start);
}

}  // namespace peerbus::test
