// tools/bench_common.cpp: private bus URLs, bench payloads, percentiles and the plain UDP
// multicast socket that measures the floor.
#include "bench_common.hpp"

#include <arpa/inet.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <random>
#include <system_error>

namespace peerbus::tools::bench {

namespace {

[[noreturn]] void fail(const std::string& doing) {
  throw std::system_error(errno, std::generic_category(), doing);
}

// A UDP port that was free a moment ago: bind 127.0.0.1:0, read the port, close.
std::uint16_t free_udp_port() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("bench: opening a socket to find a free port");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    fail("bench: finding a free UDP port on 127.0.0.1");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

constexpr std::string_view payload_head = "{\"i\":";
constexpr std::size_t index_width = 10;
constexpr std::string_view payload_mid = ",\"p\":\"";

in_addr parse_v4(const std::string& text, const char* what) {
  in_addr a{};
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1)
    throw config_error(std::string("bench: ") + what + " '" + text + "' is not an IPv4 address");
  return a;
}

}  // namespace

std::string private_url() {
  std::random_device rd;
  std::mt19937 rng(rd() ^ static_cast<unsigned>(::getpid()));
  std::uniform_int_distribution<int> third(0, 255), fourth(1, 254);
  int x = 80, y = 66;
  while (x == 80 && y == 66) {  // never the default group
    x = third(rng);
    y = fourth(rng);
  }
  bus_url u;
  u.group = "239.255." + std::to_string(x) + "." + std::to_string(y);
  u.port = free_udp_port();
  u.ttl = 0;
  u.iface = "127.0.0.1";
  return u.str();
}

std::string with_free_port(const std::string& url) {
  auto u = bus_url::parse(url);
  auto old = u.port;
  while (u.port == old) u.port = free_udp_port();
  return u.str();
}

std::string make_payload(std::size_t size) {
  if (size < min_payload) size = min_payload;
  std::string p;
  p.reserve(size);
  p += payload_head;
  p.append(index_width, ' ');
  p += payload_mid;
  p.append(size - min_payload, 'x');
  p += "\"}";
  set_index(p, 0);
  return p;
}

void set_index(std::string& payload, std::uint64_t index) {
  char* field = payload.data() + payload_head.size();
  std::size_t pos = index_width;
  do {
    field[--pos] = static_cast<char>('0' + index % 10);
    index /= 10;
  } while (index != 0 && pos > 0);
  while (pos > 0) field[--pos] = ' ';
}

std::optional<std::uint64_t> read_index(std::string_view payload) {
  if (payload.size() < min_payload || payload.substr(0, payload_head.size()) != payload_head)
    return std::nullopt;
  auto field = payload.substr(payload_head.size(), index_width);
  std::uint64_t v = 0;
  bool digits = false;
  for (char c : field) {
    if (c == ' ' && !digits) continue;
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
    digits = true;
  }
  if (!digits) return std::nullopt;
  return v;
}

percentiles summarize(std::vector<double>& us) {
  percentiles p;
  if (us.empty()) return p;
  std::sort(us.begin(), us.end());
  auto rank = [&](double q) {
    auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(us.size())));
    return us[std::min(us.size() - 1, k == 0 ? 0 : k - 1)];
  };
  p.p50 = rank(0.50);
  p.p90 = rank(0.90);
  p.p99 = rank(0.99);
  p.max = us.back();
  double sum = 0;
  for (double v : us) sum += v;
  p.mean = sum / static_cast<double>(us.size());
  return p;
}

clock::time_point startup_deadline(clock::time_point deadline) {
  return std::min(deadline, clock::now() + startup_limit);
}

std::string startup_limit_text(clock::time_point deadline) {
  return clock::now() >= deadline ? "before the deadline (--timeout)"
                                  : "within " + std::to_string(startup_limit.count()) + " s";
}

std::chrono::milliseconds remaining(clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  return left.count() < 0 ? std::chrono::milliseconds(0) : left;
}

options child_options(const global_options& g, std::string_view name, const std::string& url) {
  options o = make_options(g, name);
  o.url = url;
  auto print = o.log;
  o.log = [print](log_level l, std::string_view text) {
    if (l >= log_level::error && print) print(l, text);
  };
  return o;
}

double rounded(double v) {
  // From 2^52 on every double is whole already; NaN and infinities go back as they came.
  constexpr double whole_from = 4503599627370496.0;
  if (!(v > -whole_from && v < whole_from)) return v;
  const double whole = static_cast<double>(static_cast<long long>(v));  // toward zero
  const double rest = v - whole;                                         // exact
  if (rest >= 0.5) return whole + 1.0;
  if (rest <= -0.5) return whole - 1.0;
  return std::copysign(whole, v);  // -0.3 gives -0, as std::round does
}

double process_cpu_seconds() {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return 0;
  auto sec = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

std::vector<int> allowed_cpus() {
  std::vector<int> out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0)
    fail("bench: pinning to CPU " + std::to_string(cpu));
}

bool parent_alive(long long parent) {
  return parent <= 0 || static_cast<long long>(::getppid()) == parent;
}

raw_socket::raw_socket(const bus_url& url, bool listen) {
  in_addr group = parse_v4(url.group, "group");
  in_addr iface = parse_v4(url.iface, "interface");
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) fail("bench: opening a UDP socket");
  int one = 1, zero = 0;
  auto opt = [&](int level, int name, const void* v, socklen_t len, const char* doing) {
    if (::setsockopt(fd_, level, name, v, len) != 0) {
      int err = errno;
      ::close(fd_);
      fd_ = -1;
      errno = err;
      fail(std::string("bench: raw socket: ") + doing);
    }
  };
  if (listen) {
    // Several receivers share the port (one per process), as the bus's sockets do.
    opt(SOL_SOCKET, SO_REUSEADDR, &one, sizeof one, "SO_REUSEADDR");
    opt(SOL_SOCKET, SO_REUSEPORT, &one, sizeof one, "SO_REUSEPORT");
    opt(IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero, "IP_MULTICAST_ALL");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr = group;
    a.sin_port = htons(url.port);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      int err = errno;
      ::close(fd_);
      fd_ = -1;
      errno = err;
      fail("bench: raw socket: binding " + url.group + ":" + std::to_string(url.port));
    }
    ip_mreq m{};
    m.imr_multiaddr = group;
    m.imr_interface = iface;
    opt(IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m, "joining the group");
    // The same receive buffer the bus asks for (SO_RCVBUFFORCE as root, else capped).
    int want = url.rcvbuf > static_cast<std::size_t>(INT_MAX / 2) ? INT_MAX / 2
                                                                  : static_cast<int>(url.rcvbuf);
    if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) != 0)
      (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    int got = 0;
    socklen_t len = sizeof got;
    if (::getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0)
      rcvbuf_ = static_cast<std::size_t>(got) / 2;  // Linux reports twice what it grants for data
  }
  opt(IPPROTO_IP, IP_MULTICAST_IF, &iface, sizeof iface, "IP_MULTICAST_IF");
  unsigned char ttl = static_cast<unsigned char>(url.ttl), loop = 1;
  opt(IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl, "IP_MULTICAST_TTL");
  opt(IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop, "IP_MULTICAST_LOOP");
  set_destination(url);
}

raw_socket::~raw_socket() {
  if (fd_ >= 0) ::close(fd_);
}

void raw_socket::set_destination(const bus_url& to) {
  dest_ = {};
  dest_.sin_family = AF_INET;
  dest_.sin_addr = parse_v4(to.group, "group");
  dest_.sin_port = htons(to.port);
}

bool raw_socket::send(const void* data, std::size_t size) {
  for (;;) {
    ssize_t n =
        ::sendto(fd_, data, size, 0, reinterpret_cast<const sockaddr*>(&dest_), sizeof dest_);
    if (n >= 0) return true;
    if (errno != EINTR) return false;
  }
}

long raw_socket::recv(char* buf, std::size_t cap) {
  for (;;) {
    ssize_t n = ::recv(fd_, buf, cap, 0);
    if (n >= 0) return static_cast<long>(n);
    if (errno != EINTR) return -1;
  }
}

void raw_socket::set_timeout(std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1000;  // 0 would mean "block forever"
  if (::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
    fail("bench: raw socket: SO_RCVTIMEO");
}

void say(const std::string& line) {
  std::string l = line;
  l += '\n';
  std::fwrite(l.data(), 1, l.size(), stdout);
  std::fflush(stdout);
}

}  // namespace peerbus::tools::bench
