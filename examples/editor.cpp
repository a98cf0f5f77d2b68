// examples/editor.cpp: pb-editor "saves" fake files (file.saved) and reports how their builds went.
#include "example_common.hpp"

#include <map>
#include <mutex>
#include <string>
#include <vector>

int main(int argc, char** argv) try {
  using namespace std::chrono_literals;
  peerbus::bus bus(example::parse_args(argc, argv, "editor",
                                       "publishes file.saved {path, size} every 700 ms and prints "
                                       "the build.finished of the files it saved"));

  // Files saved and not built yet, with when: a build.finished for one of them is ours.
  std::mutex mu;
  std::map<std::string, example::clock::time_point> unbuilt;

  // Handlers run on the bus's thread, one at a time; `mu` guards what the main thread shares.
  auto finished = bus.subscribe("build.finished", [&](const peerbus::message& m) {
    auto d = m.data();
    if (!d.is_object() || !d.contains("file")) return;
    std::string file = d["file"].is_string() ? d["file"].get<std::string>() : "";
    std::lock_guard<std::mutex> lock(mu);
    auto it = unbuilt.find(file);
    if (it == unbuilt.end()) return;  // someone else's save
    auto after = std::chrono::duration_cast<std::chrono::milliseconds>(example::clock::now() -
                                                                       it->second);
    unbuilt.erase(it);
    example::say(file + (d.value("ok", false) ? " built OK" : " FAILED to build") + " by " +
                 std::string(m.sender_name()) + ", " + std::to_string(after.count()) +
                 " ms after I saved it");
  });

  // Saving before anyone listens would go unheard: give a builder up to 3 s to turn up.
  if (!bus.wait_for_subscribers("file.saved", 1, 3s))
    example::say("nobody subscribes to file.saved yet; saving anyway");

  const std::vector<std::string> files = {"src/main.cpp", "src/parser.cpp", "include/parser.hpp",
                                          "src/lexer.cpp", "README.md"};
  auto next = example::clock::now() + 700ms;
  for (std::size_t i = 0; example::sleep_until(next); ++i, next += 700ms) {
    const std::string& path = files[i % files.size()];
    std::size_t size = 900 + (i * 7919) % 6000;  // fake, but it changes from save to save
    {
      std::lock_guard<std::mutex> lock(mu);
      unbuilt[path] = example::clock::now();
    }
    if (auto ec = bus.publish("file.saved", {{"path", path}, {"size", size}}))
      example::say("could not publish file.saved: " + ec.message());
  }
  return 0;  // ~bus says goodbye: the others see "editor left" at once
} catch (const std::exception& e) {
  std::cerr << "pb-editor: " << e.what() << "\n";
  return 1;
}
