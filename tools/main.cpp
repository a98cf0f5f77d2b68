// tools/main.cpp: the `peerbus` command: parses the command line and runs one subcommand.
#include "commands.hpp"

#include <peerbus/error.hpp>
#include <peerbus/version.hpp>

#include <iostream>
#include <vector>

using namespace peerbus::tools;

int main(int argc, char** argv) {
  CLI::App app{"peerbus: a brokerless message bus for the processes of one machine"};
  app.set_version_flag("--version", peerbus::version_string());
  app.require_subcommand(1);
  global_options g;
  // Global options are accepted before the subcommand (`peerbus --url U sub x`) as well as
  // after it, as git and docker users expect.
  add_global_options(app, g);
  std::vector<command> commands = {
      add_pub_command(app, g),
      add_sub_command(app, g),
      add_peers_command(app, g),
      add_monitor_command(app, g),
      add_record_command(app, g),
      add_replay_command(app, g),
      add_keygen_command(app, g),
      add_bench_command(app, g),
      add_call_command(app, g),
      add_serve_command(app, g),
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return exit_usage;
  }
  install_signal_handlers();
  for (auto& c : commands) {
    if (!c.app->parsed()) continue;
    try {
      return c.run();
    } catch (const peerbus::config_error& e) {
      std::cerr << "peerbus " << c.app->get_name() << ": " << e.what() << "\n";
      return exit_usage;
    } catch (const std::system_error& e) {
      std::cerr << "peerbus " << c.app->get_name() << ": " << e.what() << "\n";
      return exit_error;
    } catch (const std::exception& e) {
      std::cerr << "peerbus " << c.app->get_name() << ": " << e.what() << "\n";
      return exit_error;
    }
  }
  return exit_usage;
}
