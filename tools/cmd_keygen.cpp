// tools/cmd_keygen.cpp: `peerbus keygen FILE [--force]`: a new key for a sealed bus (mode 0600).
#include <iostream>
#include <memory>
#include <peerbus/key_file.hpp>
#include <string>

#include "commands.hpp"

namespace peerbus::tools {

namespace {

struct keygen_args {
  std::string file;
  bool force = false;
};

int run_keygen(const keygen_args& a) {
  auto id = create_key_file(a.file, a.force);
  if (!id) {
    std::cerr << "peerbus keygen: " << a.file
              << " exists; pass --force to replace it (processes still using the old key then "
                 "no longer hear those given the new one)\n";
    return exit_error;
  }
  std::cout << "key " << *id << " written to " << a.file << " (mode 0600)\n";
  return exit_ok;
}

}  // namespace

command add_keygen_command(CLI::App& root, global_options&) {
  auto a = std::make_shared<keygen_args>();
  auto* app = root.add_subcommand(
      "keygen",
      "write a new random key for a sealed bus to FILE (mode 0600); use it with "
      "key=FILE in the bus URL, --key FILE or $PEERBUS_KEY_FILE");
  app->add_option("file", a->file, "the key file to create")->required();
  app->add_flag("-f,--force", a->force, "replace FILE if it exists");
  return {app, [a] { return run_keygen(*a); }};
}

}  // namespace peerbus::tools
