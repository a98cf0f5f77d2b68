// examples/builder.cpp: pb-builder "builds" each saved file: file.saved in, build.started/finished out.
#include "example_common.hpp"

#include <deque>
#include <mutex>
#include <string>

int main(int argc, char** argv) try {
  using namespace std::chrono_literals;
  peerbus::bus bus(example::parse_args(argc, argv, "builder",
                                       "builds every file.saved for a moment, publishing "
                                       "build.started {file} and build.finished {file, ok, ms}"));

  // The handler runs on the bus's thread, which must stay free to hear and to heartbeat: it only
  // queues the work, and this thread does the (simulated) building.
  std::mutex mu;
  std::deque<std::string> queue;
  auto saved = bus.subscribe("file.saved", [&](const peerbus::message& m) {
    auto d = m.data();
    if (!d.is_object() || !d.contains("path") || !d["path"].is_string()) return;
    std::lock_guard<std::mutex> lock(mu);
    queue.push_back(d["path"].get<std::string>());
  });

  for (int builds = 0; example::sleep_until(example::clock::now() + 20ms);) {
    std::string file;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (queue.empty()) continue;
      file = std::move(queue.front());
      queue.pop_front();
    }
    auto start = example::clock::now();
    bus.publish("build.started", {{"file", file}});
    ++builds;
    if (!example::sleep_until(start + std::chrono::milliseconds(120 + (builds * 137) % 300))) break;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(example::clock::now() - start);
    bool ok = builds % 5 != 0;  // every fifth build fails, so that the notifier has news
    nlohmann::json result = {{"file", file}, {"ok", ok}, {"ms", ms.count()}};
    if (!ok) result["error"] = file + ":42: expected ';' before '}'";
    if (auto ec = bus.publish("build.finished", result))
      example::say("could not publish build.finished: " + ec.message());
  }
  return 0;  // ~bus says goodbye
} catch (const std::exception& e) {
  std::cerr << "pb-builder: " << e.what() << "\n";
  return 1;
}
