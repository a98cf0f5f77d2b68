// transport/platform_test.cpp: the OS seam reports what the kernel really granted.
#include "transport/platform.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <catch2/catch.hpp>

#include <fstream>
#include <unistd.h>

using namespace peerbus::detail;

namespace {

std::size_t rmem_max() {
  std::ifstream in("/proc/sys/net/core/rmem_max");
  std::size_t v = 0;
  in >> v;
  return v;
}

}  // namespace

TEST_CASE("platform: set_receive_buffer returns the size granted, not half of it", "[transport]") {
  asio::io_context ctx;
  asio::ip::udp::socket s(ctx, asio::ip::udp::v4());
  // A request within what the kernel allows is granted in full: root may exceed rmem_max
  // (SO_RCVBUFFORCE), others get up to rmem_max. Reporting less made every process warn
  // "the kernel capped the receive buffer" when it had not.
  const std::size_t cap = ::geteuid() == 0 ? (std::size_t{64} << 20) : rmem_max();
  const std::size_t want = std::min<std::size_t>(std::size_t{1} << 20, cap);
  REQUIRE(want >= 64 * 1024);
  const std::size_t got = platform::set_receive_buffer(s, want);
  CHECK(got >= want);
  CHECK(got < 2 * want + 4096);
}
