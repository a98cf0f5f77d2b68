// bus/url_test.cpp: bus_url::parse (defaults, every parameter, every error) and its canonical
// text form.
#include <peerbus/error.hpp>
#include <peerbus/options.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using peerbus::bus_url;
using peerbus::config_error;

namespace {

// The message of the config_error that parsing `url` throws; fails the test when it throws
// nothing or something else.
std::string parse_error(std::string_view url) {
  INFO("url: " << url);
  try {
    (void)bus_url::parse(url);
  } catch (const config_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("threw something other than config_error: " << e.what());
  }
  FAIL("accepted");
  return {};
}

// Parsing `url` fails with a message that quotes the URL and names `bad_part`.
void check_refused(std::string_view url, std::string_view bad_part) {
  INFO("url: " << url);
  const std::string msg = parse_error(url);
  CHECK_THAT(msg, Catch::Contains(std::string(bad_part)));
  CHECK_THAT(msg, Catch::Contains(std::string(url)));
}

bool same(const bus_url& a, const bus_url& b) {
  return a.group == b.group && a.port == b.port && a.ttl == b.ttl && a.iface == b.iface &&
         a.rcvbuf == b.rcvbuf;
}

// The canonical form of `text` parses back to the same URL and prints the same again.
void check_round_trip(std::string_view text) {
  INFO(text);
  const auto u = bus_url::parse(text);
  const auto again = bus_url::parse(u.str());
  CHECK(same(u, again));
  CHECK(again.str() == u.str());
}

}  // namespace

TEST_CASE("bus_url: defaults", "[url]") {
  const bus_url d;
  CHECK(d.group == "239.255.80.66");
  CHECK(d.port == 7780);
  CHECK(d.ttl == 0);
  CHECK(d.iface == "127.0.0.1");
  CHECK(d.rcvbuf == (8u << 20));

  // Every part may be left out.
  CHECK(same(bus_url::parse("udpm://"), d));
  CHECK(same(bus_url::parse("udpm://?"), d));
  CHECK(same(bus_url::parse(peerbus::default_url), d));
  CHECK(d.str() == peerbus::default_url);

  const auto only_group = bus_url::parse("udpm://239.1.2.3");
  CHECK(only_group.group == "239.1.2.3");
  CHECK(only_group.port == 7780);
  CHECK(only_group.ttl == 0);
  CHECK(only_group.iface == "127.0.0.1");

  const auto only_port = bus_url::parse("udpm://:7001");
  CHECK(only_port.group == "239.255.80.66");
  CHECK(only_port.port == 7001);
}

TEST_CASE("bus_url: each parameter", "[url]") {
  auto u = bus_url::parse("udpm://224.0.0.1:1");
  CHECK(u.group == "224.0.0.1");  // lowest multicast address
  CHECK(u.port == 1);
  u = bus_url::parse("udpm://239.255.255.255:65535");
  CHECK(u.group == "239.255.255.255");  // highest
  CHECK(u.port == 65535);

  CHECK(bus_url::parse("udpm://239.1.2.3:7000?ttl=0").ttl == 0);
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?ttl=1").ttl == 1);
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?ttl=255").ttl == 255);

  // The interface need not exist to parse: the bus checks that when it opens the socket.
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?iface=192.168.1.20").iface == "192.168.1.20");
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?iface=0.0.0.0").iface == "0.0.0.0");

  CHECK(bus_url::parse("udpm://239.1.2.3:7000?rcvbuf=4096").rcvbuf == 4096);
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?rcvbuf=1073741824").rcvbuf == (1u << 30));

  // All together, in any order, with empty parameters skipped.
  u = bus_url::parse("udpm://239.9.8.7:9000?&rcvbuf=65536&&iface=10.1.2.3&ttl=4&");
  CHECK(u.group == "239.9.8.7");
  CHECK(u.port == 9000);
  CHECK(u.ttl == 4);
  CHECK(u.iface == "10.1.2.3");
  CHECK(u.rcvbuf == 65536);
}

TEST_CASE("bus_url: str() is canonical and parses back to the same URL", "[url]") {
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?iface=127.0.0.1&ttl=3").str() ==
        "udpm://239.1.2.3:7000?ttl=3&iface=127.0.0.1");
  // Defaults are spelled out, except the receive buffer.
  CHECK(bus_url::parse("udpm://239.1.2.3").str() == "udpm://239.1.2.3:7780?ttl=0&iface=127.0.0.1");
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?rcvbuf=65536").str() ==
        "udpm://239.1.2.3:7000?ttl=0&iface=127.0.0.1&rcvbuf=65536");
  for (const char* text :
       {"udpm://", "udpm://239.1.2.3:7000?ttl=3&iface=10.0.0.1&rcvbuf=4096",
        "udpm://224.0.0.251:5353?ttl=255", "udpm://:1?iface=192.0.2.2"})
    check_round_trip(text);
}

TEST_CASE("bus_url: bad scheme", "[url]") {
  for (const char* url : {"", "239.1.2.3:7000", "udp://239.1.2.3:7000", "http://239.1.2.3",
                          "UDPM://239.1.2.3", "udpm:/239.1.2.3", " udpm://239.1.2.3"}) {
    check_refused(url, "udpm://");
  }
}

TEST_CASE("bus_url: the group must be an IPv4 multicast address", "[url]") {
  for (const char* g : {"192.168.1.1", "127.0.0.1", "10.0.0.1", "223.255.255.255", "240.0.0.1",
                        "255.255.255.255", "0.0.0.0"}) {
    const std::string url = std::string("udpm://") + g + ":7000";
    check_refused(url, g);
    CHECK_THAT(parse_error(url), Catch::Contains("multicast"));
  }
  for (const char* g : {"239.1.2", "239.1.2.3.4", "239.1.2.256", "example.com", "239.1.2.x",
                        "localhost"}) {
    const std::string url = std::string("udpm://") + g + ":7000";
    check_refused(url, std::string("'") + g + "'");
    CHECK_THAT(parse_error(url), Catch::Contains("not an IPv4 address"));
  }
}

TEST_CASE("bus_url: IPv6 groups go in brackets and default to the interface ::1", "[url]") {
  auto u = bus_url::parse("udpm://[ff01::8066]:7000");
  CHECK(u.group == "ff01::8066");  // without the brackets
  CHECK(u.port == 7000);
  CHECK(u.iface == "::1");  // IPv6's loopback, as 127.0.0.1 is IPv4's
  CHECK(u.str() == "udpm://[ff01::8066]:7000?ttl=0&iface=::1");
  CHECK(bus_url::parse("udpm://[FF02:0:0::8066]").str() ==
        "udpm://[ff02::8066]:7780?ttl=0&iface=::1");
  u = bus_url::parse("udpm://[ff02::8066]:7000?ttl=1&iface=fd00::1");
  CHECK(u.ttl == 1);
  CHECK(u.iface == "fd00::1");
  CHECK(bus_url::parse("udpm://[ff05::1:3]?iface=fd00:0::2").iface == "fd00::2");
  for (const char* text : {"udpm://[ff01::8066]:7000", "udpm://[ff02::1234]:1?ttl=1&iface=eth0",
                           "udpm://[ff0e::1]:65535?ttl=255&iface=fd00::1&rcvbuf=4096"})
    check_round_trip(text);
}

TEST_CASE("bus_url: bad IPv6 groups are refused naming the bad part", "[url]") {
  // Without brackets the port's colon is ambiguous: say how to write it.
  for (const char* url : {"udpm://ff02::1", "udpm://ff02::1:7000"}) {
    const std::string msg = parse_error(url);
    CHECK_THAT(msg, Catch::Contains("brackets"));
    CHECK_THAT(msg, Catch::Contains("udpm://[ff01::8066]:7780"));
  }
  check_refused("udpm://[ff02::1", "lacks its closing ']'");
  check_refused("udpm://[ff02::1]7000", "expected :PORT");
  check_refused("udpm://[ff02::1]:", "port=");
  check_refused("udpm://[ff02::1]:70000", "port=70000");
  check_refused("udpm://[]:7000", "'[]'");
  check_refused("udpm://[fe80::zz]:7000", "'[fe80::zz]'");
  check_refused("udpm://[239.1.2.3]:7000", "'[239.1.2.3]'");
  check_refused("udpm://[::1]:7000", "not an IPv6 multicast address (ff00::/8)");
  check_refused("udpm://[fd00::1]:7000", "[fd00::1]");
  check_refused("udpm://[ff00::1]:7000", "reserved multicast scope 0");
  check_refused("udpm://[ff0f::1]:7000", "reserved multicast scope 15");
  check_refused("udpm://[ff02::1%eth0]:7000", "iface=");
}

TEST_CASE("bus_url: the interface address must be of the group's family", "[url]") {
  check_refused("udpm://[ff02::1]:7000?iface=127.0.0.1", "iface=127.0.0.1 is an IPv4 address");
  CHECK_THAT(parse_error("udpm://[ff02::1]:7000?iface=127.0.0.1"), Catch::Contains("iface=::1"));
  check_refused("udpm://239.1.2.3:7000?iface=::1", "iface=::1 is an IPv6 address");
  CHECK_THAT(parse_error("udpm://239.1.2.3:7000?iface=::1"), Catch::Contains("iface=127.0.0.1"));
  // A name serves both families.
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?iface=lo").iface == "lo");
  CHECK(bus_url::parse("udpm://[ff02::1]:7000?iface=lo").iface == "lo");
}

TEST_CASE("bus_url: bad port", "[url]") {
  check_refused("udpm://239.1.2.3:0", "port=0");
  check_refused("udpm://239.1.2.3:65536", "port=65536");
  check_refused("udpm://239.1.2.3:99999999999999999999", "port=99999999999999999999");
  check_refused("udpm://239.1.2.3:-1", "port=-1");
  for (const char* url : {"udpm://239.1.2.3:0", "udpm://239.1.2.3:65536", "udpm://239.1.2.3:-1"}) {
    INFO(url);
    CHECK_THAT(parse_error(url), Catch::Contains("out of range 1..65535"));
  }
  for (const char* url : {"udpm://239.1.2.3:abc", "udpm://239.1.2.3:", "udpm://239.1.2.3:80a",
                          "udpm://239.1.2.3: 80", "udpm://239.1.2.3:+80", "udpm://239.1.2.3:8.0"}) {
    INFO(url);
    const std::string msg = parse_error(url);
    CHECK_THAT(msg, Catch::Contains("port="));
    CHECK_THAT(msg, Catch::Contains("is not a number"));
  }
  check_refused("udpm://239.1.2.3:abc", "port=abc");
}

TEST_CASE("bus_url: bad ttl and rcvbuf", "[url]") {
  check_refused("udpm://239.1.2.3:7000?ttl=256", "ttl=256");
  CHECK_THAT(parse_error("udpm://239.1.2.3:7000?ttl=256"), Catch::Contains("out of range 0..255"));
  check_refused("udpm://239.1.2.3:7000?ttl=-1", "ttl=-1");
  CHECK_THAT(parse_error("udpm://239.1.2.3:7000?ttl=-1"), Catch::Contains("out of range"));
  check_refused("udpm://239.1.2.3:7000?ttl=99999999999", "ttl=99999999999");
  CHECK_THAT(parse_error("udpm://239.1.2.3:7000?ttl=99999999999"), Catch::Contains("out of range"));
  check_refused("udpm://239.1.2.3:7000?ttl=one", "ttl=one");
  CHECK_THAT(parse_error("udpm://239.1.2.3:7000?ttl=one"), Catch::Contains("not a number"));
  check_refused("udpm://239.1.2.3:7000?ttl=", "ttl=");
  check_refused("udpm://239.1.2.3:7000?ttl", "'ttl'");
  CHECK_THAT(parse_error("udpm://239.1.2.3:7000?ttl"), Catch::Contains("has no value"));

  check_refused("udpm://239.1.2.3:7000?rcvbuf=100", "rcvbuf=100");
  CHECK_THAT(parse_error("udpm://239.1.2.3:7000?rcvbuf=100"), Catch::Contains("out of range"));
  check_refused("udpm://239.1.2.3:7000?rcvbuf=2147483648", "rcvbuf=2147483648");
  check_refused("udpm://239.1.2.3:7000?rcvbuf=8M", "rcvbuf=8M");
}

TEST_CASE("bus_url: iface is an address or an interface name", "[url]") {
  for (const char* v : {"eth0", "lo", "veth-a.10", "wlp2s0", "br_lan", "abcdefghijklmno"}) {
    INFO(v);
    const auto u = bus_url::parse(std::string("udpm://239.1.2.3:7000?ttl=1&iface=") + v);
    CHECK(u.iface == v);
    CHECK(u.str() == std::string("udpm://239.1.2.3:7000?ttl=1&iface=") + v);
  }
}

TEST_CASE("bus_url: bad iface", "[url]") {
  // Digits and dots only: meant as an IPv4 address.
  for (const char* v : {"127.0.0", "127.0.0.1.1", "300.1.1.1", "1", "."}) {
    const std::string url = std::string("udpm://239.1.2.3:7000?iface=") + v;
    check_refused(url, std::string("iface=") + v);
    CHECK_THAT(parse_error(url), Catch::Contains("not an IPv4 address"));
  }
  // A colon: meant as an IPv6 address.
  for (const char* v : {"::g", "fd00:::1", "1:2:3:4:5:6:7:8:9"}) {
    const std::string url = std::string("udpm://[ff02::1]:7000?iface=") + v;
    check_refused(url, std::string("iface=") + v);
    CHECK_THAT(parse_error(url), Catch::Contains("not an IPv6 address"));
  }
  check_refused("udpm://[ff02::1]:7000?iface=fe80::1%eth0", "iface=eth0");
  // Anything else must be a name Linux would take.
  for (const char* v : {"abcdefghijklmnop", "eth 0", "eth/0", "eth0!"}) {
    const std::string url = std::string("udpm://239.1.2.3:7000?iface=") + v;
    check_refused(url, std::string("iface=") + v);
    CHECK_THAT(parse_error(url), Catch::Contains("interface name"));
  }
  // An alias label is no interface of its own.
  check_refused("udpm://239.1.2.3:7000?iface=eth0:1", "alias labels");
  check_refused("udpm://239.1.2.3:7000?iface=", "iface= needs an address or an interface name");
}

TEST_CASE("bus_url: unknown parameter", "[url]") {
  check_refused("udpm://239.1.2.3:7000?foo=1", "'foo'");
  check_refused("udpm://239.1.2.3:7000?ttl=1&TTL=2", "'TTL'");
  check_refused("udpm://239.1.2.3:7000?interface=127.0.0.1", "'interface'");
  // And the message lists the ones that exist.
  const std::string msg = parse_error("udpm://239.1.2.3:7000?foo=1");
  CHECK_THAT(msg, Catch::Contains("ttl"));
  CHECK_THAT(msg, Catch::Contains("iface"));
  CHECK_THAT(msg, Catch::Contains("rcvbuf"));
  CHECK_THAT(msg, Catch::Contains("key"));
}

TEST_CASE("bus_url: key names the key file of a sealed bus", "[url]") {
  CHECK(bus_url{}.key.empty());
  CHECK(bus_url::parse("udpm://").key.empty());
  const auto u = bus_url::parse("udpm://239.1.2.3:7000?ttl=0&key=/run/user/1000/app.key");
  CHECK(u.key == "/run/user/1000/app.key");
  CHECK(u.group == "239.1.2.3");
  // Printed back last, so the canonical form parses to the same thing.
  CHECK(u.str() == "udpm://239.1.2.3:7000?ttl=0&iface=127.0.0.1&key=/run/user/1000/app.key");
  CHECK(bus_url::parse(u.str()).key == u.key);
  CHECK(bus_url::parse("udpm://?key=auto").key == "auto");
  CHECK(bus_url::parse("udpm://?key=rel/path=odd.key").key == "rel/path=odd.key");
  CHECK(bus_url::parse("udpm://?key=a&key=b").key == "b");  // the last one, like the others
  check_refused("udpm://239.1.2.3:7000?key=", "key=");
  CHECK(bus_url{}.str() == peerbus::default_url);  // an open bus prints no key
}

TEST_CASE("bus_url: config_error is an invalid_argument", "[url]") {
  // Callers that catch the standard type see it too.
  CHECK_THROWS_AS(bus_url::parse("nope"), std::invalid_argument);
  CHECK_THROWS_AS(bus_url::parse("nope"), config_error);
}

TEST_CASE("bus_url: mtu", "[url]") {
  CHECK(bus_url::parse("udpm://").mtu == 0);  // default: the interface's
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?mtu=1500").mtu == 1500);
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?mtu=576").mtu == 576);
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?mtu=65535").mtu == 65535);
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?mtu=9000").str() ==
        "udpm://239.1.2.3:7000?ttl=0&iface=127.0.0.1&mtu=9000");
  CHECK(bus_url::parse("udpm://239.1.2.3:7000?mtu=9000&key=k").str() ==
        "udpm://239.1.2.3:7000?ttl=0&iface=127.0.0.1&mtu=9000&key=k");
  CHECK(bus_url::parse("udpm://239.1.2.3:7000").str().find("mtu") == std::string::npos);
  check_refused("udpm://239.1.2.3:7000?mtu=575", "mtu=575");
  CHECK_THAT(parse_error("udpm://239.1.2.3:7000?mtu=575"), Catch::Contains("out of range 576..65535"));
  check_refused("udpm://239.1.2.3:7000?mtu=65536", "mtu=65536");
  check_refused("udpm://239.1.2.3:7000?mtu=1.5k", "mtu=1.5k");
  CHECK_THAT(parse_error("udpm://239.1.2.3:7000?mtu=jumbo"), Catch::Contains("not a number"));
}
