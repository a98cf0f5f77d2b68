// bus/url.cpp: parses and prints bus URLs (udpm://GROUP:PORT?ttl=N&iface=ADDR&rcvbuf=B&mtu=M&key=PATH),
// GROUP being IPv4 ("239.1.2.3") or bracketed IPv6 ("[ff02::8066]").
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
                     std::string(default_url) + " or udpm://[ff02::8066]:7780?ttl=1&iface=eth0)");
}

// "[ff02::8066]" without the brackets: an IPv6 multicast group of a usable scope.
std::string ipv6_group(std::string_view url, std::string_view text) {
  const std::string g(text);
  if (g.find('%') != std::string::npos)
    bad(url, "group [" + g + "] has a zone; name the interface with iface= instead (iface=eth0)");
  std::error_code ec;
  auto a = asio::ip::make_address_v6(g, ec);
  if (ec) bad(url, "group '[" + g + "]' is not an IPv6 address");
  if (!a.is_multicast())
    bad(url, "group [" + g + "] is not an IPv6 multicast address (ff00::/8), e.g. [ff01::8066]");
  const unsigned scope = a.to_bytes()[1] & 0x0fu;
  if (scope == 0 || scope == 0xf)
    bad(url, "group [" + g + "] has the reserved multicast scope " + std::to_string(scope) +
                 "; use ff01:: (this interface), ff02:: (the link) or ff05:: (the site)");
  return a.to_string();
}

// iface=: an IPv4 or IPv6 address (normalised), or an interface name as Linux allows it.
std::string interface_text(std::string_view url, std::string_view val) {
  const std::string v(val);
  std::error_code ec;
  if (v.empty())
    bad(url, "iface= needs an address or an interface name (iface=127.0.0.1, iface=eth0)");
  if (v.find_first_not_of("0123456789.") == std::string::npos) {
    auto a = asio::ip::make_address_v4(v, ec);
    if (ec) bad(url, "iface=" + v + " is not an IPv4 address");
    return a.to_string();
  }
  if (v.find(':') != std::string::npos) {
    if (v.find('%') != std::string::npos)
      bad(url, "iface=" + v + " has a zone; give the interface by name instead (iface=eth0)");
    auto a = asio::ip::make_address_v6(v, ec);
    if (ec)
      bad(url, "iface=" + v +
                   " is not an IPv6 address, and interface names have no ':' "
                   "(alias labels such as eth0:1 are not interfaces: give the address)");
    return a.to_string();
  }
  if (v.size() > 15 ||
      v.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos)
    bad(url,
        "iface=" + v + " is neither an address nor an interface name (1..15 of A-Z a-z 0-9 . _ -)");
  return v;
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
  std::string_view host = rest;
  bool v6 = false;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos)
      bad(url, "group '" + std::string(rest) + "' lacks its closing ']'");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty() && after.front() != ':')
      bad(url, "'" + std::string(after) + "' after the group; expected :PORT");
    if (!after.empty()) u.port = number<std::uint16_t>(url, "port", after.substr(1), 1, 65535);
    u.group = ipv6_group(url, host);
    v6 = true;
  } else if (rest.find(':') != rest.rfind(':')) {
    bad(url, "an IPv6 group goes in brackets, e.g. udpm://[ff01::8066]:7780 (not '" +
                 std::string(rest) + "')");
  } else {
    if (auto c = rest.rfind(':'); c != std::string_view::npos) {
      host = rest.substr(0, c);
      u.port = number<std::uint16_t>(url, "port", rest.substr(c + 1), 1, 65535);
    }
    if (!host.empty()) {
      std::error_code ec;
      auto a = asio::ip::make_address_v4(std::string(host), ec);
      if (ec) bad(url, "group '" + std::string(host) + "' is not an IPv4 address");
      if (!a.is_multicast())
        bad(url, "group " + std::string(host) + " is not a multicast address (224.0.0.0/4)");
      u.group = a.to_string();
    }
  }
  bool iface_given = false;
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
      u.iface = interface_text(url, val);
      iface_given = true;
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
  // An address must be of the group's family; a name serves both. IPv6's loopback is ::1.
  if (v6 && !iface_given) u.iface = "::1";
  const bool iface_v6 = u.iface.find(':') != std::string::npos;
  const bool iface_v4 = u.iface.find_first_not_of("0123456789.") == std::string::npos;
  if (v6 && iface_v4)
    bad(url, "iface=" + u.iface + " is an IPv4 address but group [" + u.group +
                 "] is IPv6; give an IPv6 address (iface=::1) or the interface's name");
  if (!v6 && iface_v6)
    bad(url, "iface=" + u.iface + " is an IPv6 address but group " + u.group +
                 " is IPv4; give an IPv4 address (iface=127.0.0.1) or the interface's name");
  return u;
}

std::string bus_url::str() const {
  const bool v6 = group.find(':') != std::string::npos;
  std::string s = "udpm://" + (v6 ? "[" + group + "]" : group) + ":" + std::to_string(port) +
                  "?ttl=" + std::to_string(ttl) + "&iface=" + iface;
  if (rcvbuf != bus_url{}.rcvbuf) s += "&rcvbuf=" + std::to_string(rcvbuf);
  if (mtu != 0) s += "&mtu=" + std::to_string(mtu);
  if (!key.empty()) s += "&key=" + key;
  return s;
}

}  // namespace peerbus
