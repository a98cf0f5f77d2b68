// examples/notifier.cpp: pb-notifier turns build.* messages and peer joins/leaves into notifications.
#include "example_common.hpp"

#include <string>

int main(int argc, char** argv) try {
  peerbus::bus bus(example::parse_args(argc, argv, "notifier",
                                       "prints a desktop-style notification for each build.* "
                                       "message and for each peer that joins or leaves"));

  // Both handlers run on the bus's thread; example::say() is safe from any thread.
  auto builds = bus.subscribe("build.*", [](const peerbus::message& m) {
    auto d = m.data();
    if (!d.is_object()) return;
    std::string file = d.value("file", std::string("?"));
    if (m.topic() == "build.started") {
      example::say("(i) Building " + file + " ...");
    } else if (m.topic() == "build.finished" && d.value("ok", false)) {
      example::say("(v) Build OK: " + file + " in " + std::to_string(d.value("ms", 0)) + " ms");
    } else if (m.topic() == "build.finished") {
      example::say("(x) Build FAILED: " + file + ": " + d.value("error", std::string("?")));
    } else {
      example::say("(i) " + std::string(m.topic()) + " from " + std::string(m.sender_name()));
    }
  });

  auto peers = bus.on_peer_event([](const peerbus::peer_event& e) {
    const auto& p = e.peer;
    switch (e.kind) {
      case peerbus::peer_event_kind::joined:
        example::say("(+) " + p.display + " joined (pid " + std::to_string(p.pid) + ")");
        break;
      case peerbus::peer_event_kind::left:
        example::say("(-) " + p.display + " left the bus");
        break;
      case peerbus::peer_event_kind::expired:
        example::say("(!) " + p.display + " went silent (expired)");
        break;
    }
  });

  while (example::sleep_until(example::clock::time_point::max())) {
  }
  return 0;  // ~bus says goodbye
} catch (const std::exception& e) {
  std::cerr << "pb-notifier: " << e.what() << "\n";
  return 1;
}
