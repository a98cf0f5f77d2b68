// peerbus/call.hpp: calls between peers: requests, responders, results and their error codes.
#pragma once

#include <peerbus/peer.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace peerbus {

namespace detail {
struct responder_state;
}

/// Why a call failed. Expected outcomes: they come back in call_result, never as exceptions.
enum class call_errc {
  ok = 0,
  no_such_peer,    ///< no live peer matches the target (fails at once, nothing is sent)
  ambiguous,       ///< a name or pattern given to call() matches several peers (see candidates)
  bad_request,     ///< the method name is not valid, or params could not be encoded
  no_such_method,  ///< the peer has no handler for the method (its reply)
  handler_failed,  ///< the peer's handler threw, or answered with fail() (its reply)
  unanswered,      ///< the peer's handler dropped its responder without answering (its reply)
  peer_gone,       ///< the peer left or expired during the call
  timeout,         ///< no reply within the timeout
  closed,          ///< this bus is closed (or closed during the call)
  would_block,     ///< a blocking call() was made on the bus's own executor, or in the handler
                   ///< of a block subscription (subscribe_options)
  send_failed,     ///< the request could not be sent (too large, passive bus)
};
const char* to_string(call_errc) noexcept;

struct call_error {
  call_errc code = call_errc::ok;
  /// The code string as the peer wrote it in its error reply ("no_such_method", or any code a
  /// handler passed to responder::fail); empty for errors made locally.
  std::string remote_code;
  /// What went wrong, for a person: "no reply from editor@3f9a within 2000 ms".
  std::string message;
  /// ambiguous: the peers the target matched.
  std::vector<peer_id> candidates;
};

/// The outcome of a call to one peer: the reply's JSON, or an error.
struct call_result {
  peer_id peer;  ///< who answered (or should have); zero when no peer was resolved
  std::string peer_name;
  nlohmann::json value;                  ///< the reply's data when ok()
  call_error error;                      ///< code ok on success
  std::chrono::microseconds elapsed{0};  ///< from sending to the outcome

  bool ok() const noexcept { return error.code == call_errc::ok; }
  explicit operator bool() const noexcept { return ok(); }
};

/// The outcome of a call to every peer matching a pattern (bus::call_all): one result per peer
/// that matched when the call was made, in peer-id order. Peers that did not answer in time have
/// error code `timeout` (listed by missing()).
struct multi_call_result {
  std::vector<call_result> results;
  call_error error;  ///< set when the call could not be made at all (no_such_peer, bad_request..)

  bool ok() const noexcept {
    if (error.code != call_errc::ok) return false;
    for (auto& r : results)
      if (!r.ok()) return false;
    return true;
  }
  std::vector<peer_id> missing() const {
    std::vector<peer_id> out;
    for (auto& r : results)
      if (r.error.code == call_errc::timeout) out.push_back(r.peer);
    return out;
  }
};

/// A call as its handler sees it. Everything is owned: keep it as long as you like.
struct call_request {
  std::string method;
  std::string params_json;  ///< the params' JSON text as it travelled ("null" when none)
  peer_id caller;
  std::string caller_name;
  nlohmann::json params() const { return nlohmann::json::parse(params_json); }
};

/// The way back to the caller. Answer once, at once or later, from any thread; later answers
/// are ignored. Copies share one answer. When the last copy is destroyed unanswered, the caller
/// gets an `unanswered` error, so a forgotten deferred reply never leaves it waiting for the
/// timeout. Sending is fire-and-forget: a bus already closed drops the answer.
class responder {
 public:
  responder() = default;
  explicit responder(std::shared_ptr<detail::responder_state> s) : s_(std::move(s)) {}

  /// Replies with `result`. Returns false when already answered (or the bus is gone).
  bool reply(const nlohmann::json& result);
  /// Replies with an error: `code` a short machine-readable word ("not_found"), `message` for a
  /// person. The caller sees call_errc::handler_failed with remote_code = code.
  bool fail(std::string_view code, std::string_view message);
  bool answered() const noexcept;

 private:
  std::shared_ptr<detail::responder_state> s_;
};

using call_handler = std::function<void(const call_request&, responder)>;
using call_completion = std::function<void(call_result)>;

}  // namespace peerbus
