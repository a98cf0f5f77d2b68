// tools/cmd_call.cpp: `peerbus call TARGET METHOD [JSON]`: call a peer, or all a glob matches.
#include "commands.hpp"

#include <iostream>
#include <memory>
#include <string>


namespace peerbus::tools {

namespace {

struct call_args {
  std::string target;
  std::string method;
  std::string json = "null";
  double timeout = 5;
};

bool is_pattern(const std::string& t) {
  return t.find_first_of("*?[") != std::string::npos;
}

int exit_for(call_errc c) {
  switch (c) {
    case call_errc::timeout:
      return exit_timeout;
    case call_errc::bad_request:
      return exit_usage;
    default:
      return exit_error;
  }
}

std::string error_json(const call_result& r) {
  nlohmann::json e = {{"code", to_string(r.error.code)}, {"message", r.error.message}};
  if (!r.error.remote_code.empty()) e["remote_code"] = r.error.remote_code;
  return e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int run_call(const global_options& g, const call_args& a) {
  nlohmann::json params;
  try {
    params = nlohmann::json::parse(a.json);
  } catch (const nlohmann::json::exception&) {
    std::cerr << "peerbus call: params are not valid JSON: " << a.json << "\n";
    return exit_usage;
  }
  auto timeout = seconds(a.timeout);
  auto start = std::chrono::steady_clock::now();
  bus b(make_options(g, "peerbus-call"));
  // A new bus learns who is here from the peers' answers to its announce (within ~30 ms):
  // wait for the target to show up, then a moment more so that every instance of a name or
  // pattern has answered (a name is only unique if no second one answers).
  auto events = b.on_peer_event([](const peer_event&) { wake_waiters(); });
  auto id = peer_id::parse(a.target);
  auto present = [&] {
    return id ? b.find_peer(*id).has_value() : !b.find_peers(a.target).empty();
  };
  auto discovery = std::min(timeout, std::chrono::milliseconds(2000));
  wait_until_or_stop(present, start + discovery);
  if (!id)
    sleep_until_or_stop(
        std::max(std::chrono::steady_clock::now(), start + std::chrono::milliseconds(100)));
  if (stop_requested.load()) return exit_error;
  if (!is_pattern(a.target)) {
    auto r = b.call(a.target, a.method, params, timeout);
    if (!r) {
      std::cerr << "peerbus call: " << r.error.message << "\n";
      return exit_for(r.error.code);
    }
    std::cout << r.value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
    return exit_ok;
  }
  // A pattern: one JSON line per matching peer, replies and failures alike.
  auto m = b.call_all(a.target, a.method, params, timeout);
  if (m.error.code != call_errc::ok) {
    std::cerr << "peerbus call: " << m.error.message << "\n";
    return exit_for(m.error.code);
  }
  int rc = exit_ok;
  for (auto& r : m.results) {
    std::string line =
        "{\"peer\":\"" + r.peer.str() + "\",\"name\":" + nlohmann::json(r.peer_name).dump();
    if (r) {
      line +=
          ",\"result\":" + r.value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
          "}";
    } else {
      line += ",\"error\":" + error_json(r) + "}";
      std::cerr << "peerbus call: " << r.error.message << "\n";
      int e = exit_for(r.error.code);
      if (rc == exit_ok || (rc == exit_timeout && e != exit_timeout)) rc = e;
    }
    std::cout << line << "\n";
  }
  std::cout.flush();
  return rc;
}

}  // namespace

command add_call_command(CLI::App& root, global_options& g) {
  auto a = std::make_shared<call_args>();
  auto* app =
      root.add_subcommand("call", "call a method on a peer (id, name, or glob: one line per peer)");
  add_global_options(*app, g);
  app->add_option("target", a->target, "peer id (16 hex digits), name, or glob like 'konsole-*'")
      ->required();
  app->add_option("method", a->method, "method name, e.g. version")->required();
  app->add_option("json", a->json, "params as JSON text (default null)");
  app->add_option("-t,--timeout", a->timeout, "seconds to wait for the reply (default 5)")
      ->check(CLI::PositiveNumber);
  return {app, [&g, a] { return run_call(g, *a); }};
}

}  // namespace peerbus::tools
