// tools/monitor_view.hpp: the monitor's full-screen terminal view (ncurses).
#pragma once

#include "monitor_model.hpp"
#include "monitor_text.hpp"

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

namespace peerbus::tools::monitor {

struct screen_config {
  std::string url;
  std::chrono::milliseconds interval{250};  ///< refresh period
  std::optional<steady::time_point> until;  ///< --duration
  bool color = true;                        ///< false: NO_COLOR or --no-color
  view_state initial;
};

/// Runs the view until q, a stop request (SIGINT/SIGTERM) or `until`; restores the terminal on
/// the way out, exceptions included. `refresh` is called (without `mu`) at each refresh to pull
/// fresh peers and stats into the model; the model is read under `mu`. Returns an exit code.
int run_screen(const screen_config& cfg, std::mutex& mu, model& m,
               const std::function<void()>& refresh);

}  // namespace peerbus::tools::monitor
