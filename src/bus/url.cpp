// bus/url.cpp: parses and prints bus URLs (udpm://GROUP:PORT?ttl=N&iface=ADDR&rcvbuf=B&mtu=M&key=PATH).
#include <peerbus/error.hpp>
#include <peerbus/options.hpp>

#include <asio/ip/address.hpp>

#include <charconv>
#include <string>

namespace peerbus {

namespace {

[[noreturn]] void bad(std::string_view url, const std::string& what) {
  throw config_error("bad bus URL '" + std::string(url) + "': " + what +
                     " (expected udpm://GROUP:PORT?ttl=N&iface=ADDRESS, e.g. " +
                     std::string(default_url) + ")");
}

template <class T>
T number(std::string_view url, std::string_view key, std::string_view text, T lo, T hi) {
  auto out_of_range = [&] {
    bad(url, std::string(key) + "=" + std::string(text) + " is out of range " +
                 std::to_string(lo) + ".." + std::to_string(hi));
  };
  // Digits, optionally after one '-': a number, even when no T holds it ("port=65536",
  // "port=-1" are out of range, not "not a number").
  std::string_view digits = text.substr(!text.empty() && text.front() == '-' ? 1 : 0);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos)
    bad(url, std::string(key) + "=" + std::string(text) + " is not a number");
  T v{};
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size() || v < lo || v > hi)
    out_of_range();
  return v;
}

}  // namespace

bus_url bus_url::parse(std::string_view url) {
  bus_url u;
  constexpr std::string_view scheme = "udpm://";
  if (url.substr(0, scheme.size()) != scheme) bad(url, "it must start with udpm://");
  std::string_view rest = url.substr(scheme.size());
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  // "[ff02::1]:7780", and also "ff02::1" written without brackets (two colons: not host:port).
  if ((!rest.empty() && rest.front() == '[') || rest.find(':') != rest.rfind(':'))
    bad(url, "IPv6 groups are not supported yet; use an IPv4 group in 239.0.0.0/8");
  std::string_view host = rest, port;
  if (auto c = rest.rfind(':'); c != std::string_view::npos) {
    host = rest.substr(0, c);
    port = rest.substr(c + 1);
    u.port = number<std::uint16_t>(url, "port", port, 1, 65535);
  }
  if (!host.empty()) {
    std::error_code ec;
    auto a = asio::ip::make_address_v4(std::string(host), ec);
    if (ec) bad(url, "group '" + std::string(host) + "' is not an IPv4 address");
    if (!a.is_multicast())
      bad(url, "group " + std::string(host) + " is not a multicast address (224.0.0.0/4)");
    u.group = a.to_string();
  }
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (kv.empty()) continue;
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) bad(url, "parameter '" + std::string(kv) + "' has no value");
    std::string_view key = kv.substr(0, eq), val = kv.substr(eq + 1);
    if (key == "ttl") {
      u.ttl = number<int>(url, key, val, 0, 255);
    } else if (key == "iface") {
      std::error_code ec;
      auto a = asio::ip::make_address_v4(std::string(val), ec);
      if (ec) bad(url, "iface=" + std::string(val) + " is not an IPv4 address");
      u.iface = a.to_string();
    } else if (key == "rcvbuf") {
      u.rcvbuf = number<std::size_t>(url, key, val, 4096, std::size_t{1} << 30);
    } else if (key == "mtu") {
      u.mtu = number<std::size_t>(url, key, val, 576, 65535);
    } else if (key == "key") {
      if (val.empty()) bad(url, "key= needs a key file path, or auto");
      u.key = std::string(val);
    } else {
      bad(url, "unknown parameter '" + std::string(key) + "' (known: ttl, iface, rcvbuf, mtu, key)");
    }
  }
  return u;
}

std::string bus_url::str() const {
  std::string s = "udpm://" + group + ":" + std::to_string(port) + "?ttl=" + std::to_string(ttl) +
                  "&iface=" + iface;
  if (rcvbuf != bus_url{}.rcvbuf) s += "&rcvbuf=" + std::to_string(rcvbuf);
  if (mtu != 0) s += "&mtu=" + std::to_string(mtu);
  if (!key.empty()) s += "&key=" + key;
  return s;
}

}  // namespace peerbus
