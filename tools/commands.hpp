// tools/commands.hpp: each subcommand adds itself to the CLI and returns how to run it.
#pragma once

#include "common.hpp"

#include <functional>

namespace peerbus::tools {

struct command {
  CLI::App* app = nullptr;
  std::function<int()> run;  ///< returns the exit code
};

command add_pub_command(CLI::App& root, global_options& g);
command add_sub_command(CLI::App& root, global_options& g);
command add_peers_command(CLI::App& root, global_options& g);
command add_monitor_command(CLI::App& root, global_options& g);
command add_record_command(CLI::App& root, global_options& g);
command add_replay_command(CLI::App& root, global_options& g);
command add_keygen_command(CLI::App& root, global_options& g);
command add_bench_command(CLI::App& root, global_options& g);
command add_call_command(CLI::App& root, global_options& g);
command add_serve_command(CLI::App& root, global_options& g);

}  // namespace peerbus::tools
