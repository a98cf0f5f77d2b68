// support/bus_address.hpp: a private bus URL per test (random group, free port, loopback only)
// and wait_until, the deadline-bounded poll that replaces sleeps in tests.
#pragma once

#include <chrono>
#include <string>
#include <thread>

namespace peerbus::test {

// A URL no other test uses: "udpm://239.255.X.Y:PORT?ttl=0&iface=127.0.0.1" with a random group
// in 239.255.0.0/16 (never the default 239.255.80.66) and a port the kernel just handed out as
// free. Two calls never return the same URL within one process; across parallel test
// processes, the group and port are both random, so a clash needs both to collide.
std::string private_bus_url();

// The "GROUP:PORT" part of a URL from private_bus_url() (for messages and --url variants).
std::string bus_group_port(const std::string& url);

// Polls `pred` every 2 ms until it returns true (returns true) or `timeout` has passed (returns
// pred() one last time). The only place tests sleep.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return static_cast<bool>(pred());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace peerbus::test
