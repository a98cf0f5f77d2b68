// bus/call.cpp: the call layer: handle(), start_call(), call/reply frames, responders, deadlines.
#include "bus/bus_impl.hpp"

#include "wire/encode.hpp"
#include "wire/json_scan.hpp"

#include <peerbus/error.hpp>

#include <asio/bind_executor.hpp>
#include <asio/post.hpp>

#include <algorithm>

namespace peerbus {

const char* to_string(call_errc c) noexcept {
  switch (c) {
    case call_errc::ok:
      return "ok";
    case call_errc::no_such_peer:
      return "no_such_peer";
    case call_errc::ambiguous:
      return "ambiguous";
    case call_errc::bad_request:
      return "bad_request";
    case call_errc::no_such_method:
      return "no_such_method";
    case call_errc::handler_failed:
      return "handler_failed";
    case call_errc::unanswered:
      return "unanswered";
    case call_errc::peer_gone:
      return "peer_gone";
    case call_errc::timeout:
      return "timeout";
    case call_errc::closed:
      return "closed";
    case call_errc::would_block:
      return "would_block";
    case call_errc::send_failed:
      return "send_failed";
  }
  return "unknown";
}

namespace {
// Text that may hold anything (an exception's what()) still becomes valid JSON.
std::string dump_safe(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace

bool responder::reply(const nlohmann::json& result) {
  return s_ && s_->answer(dump_safe(result), {});
}
bool responder::fail(std::string_view code, std::string_view message) {
  return s_ && s_->answer_error(code.empty() ? std::string_view("error") : code, message);
}
bool responder::answered() const noexcept {
  return !s_ || s_->answered.load();
}

namespace detail {

bool responder_state::answer(std::string_view data, std::string_view error) {
  if (answered.exchange(true)) return false;
  auto b = bus.lock();
  if (!b) return false;
  auto ec = b->send_sequenced(wire::frame_type::reply, caller, cid, {}, data, error);
  if (ec == errc::payload_too_large && !data.empty()) {
    // The caller should hear why, not wait for its timeout.
    std::string err =
        dump_safe({{"code", "reply_too_large"},
                   {"message", "the reply to '" + method + "' is too large to send"}});
    ec = b->send_sequenced(wire::frame_type::reply, caller, cid, {}, {}, err);
  }
  return !ec;
}

bool responder_state::answer_error(std::string_view code, std::string_view message) {
  return answer({}, dump_safe({{"code", std::string(code)}, {"message", std::string(message)}}));
}

responder_state::~responder_state() {
  if (!answered.load())
    answer_error("unanswered", "the handler for '" + method + "' returned without replying");
}

subscription bus_impl::handle(std::string_view method, call_handler h) {
  if (!wire::valid_method(method))
    throw config_error("invalid method '" + std::string(method) +
                       "': use 1..128 characters of [A-Za-z0-9._-/:]");
  auto fn = std::make_shared<call_handler>(std::move(h));
  {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    if (methods_.count(method))
      throw config_error("method '" + std::string(method) + "' is already handled on this bus");
    methods_.emplace(std::string(method), fn);
  }
  std::weak_ptr<bus_impl> weak = shared_from_this();
  return subscription([weak, m = std::string(method), fn] {
    if (auto self = weak.lock()) {
      std::lock_guard<std::mutex> lock(self->handlers_mu_);
      if (auto it = self->methods_.find(m); it != self->methods_.end() && it->second == fn)
        self->methods_.erase(it);
    }
  });
}

std::error_code bus_impl::send_sequenced(wire::frame_type type, std::uint64_t to, std::uint64_t cid,
                                         std::string_view method, std::string_view data,
                                         std::string_view error) {
  if (closed_.load(std::memory_order_relaxed)) return errc::closed;
  if (opts_.passive) return errc::passive;
  rel_clock::duration pause{};
  {
    std::unique_lock<std::mutex> lock(send_mu_);
    if (!flow_.empty())  // as in send_message (the frame's size, about)
      wait_for_receivers(lock, 1, method.size() + data.size() + error.size() + 256);
    if (closed_.load()) return errc::closed;
    tx_buf_.clear();
    std::uint64_t seq = next_seq_;
    wire::frame_writer w(tx_buf_, type, id_);
    w.str("name", name_).uint("seq", seq).int64("ts", now_us()).id("to", to).uint("cid", cid);
    if (!method.empty()) w.str("method", method);
    if (!data.empty()) w.raw("data", data);
    if (!error.empty()) w.raw("error", error);
    w.finish();
    // As in publish(): a raw line feed can only be white space between JSON tokens.
    if (data.find('\n') != std::string_view::npos || error.find('\n') != std::string_view::npos)
      std::replace(tx_buf_.begin(), tx_buf_.end(), '\n', ' ');
    if (tx_buf_.size() > max_plain_) return errc::payload_too_large;
    ++next_seq_;
    keep_locked(seq, tx_buf_);
    send_sequenced_locked(tx_buf_, rel_clock::now());
    pause = pacer_.debt(rel_clock::now());
  }
  sent_sequenced_.store(true);
  after_sequenced_send();
  pace(pause);
  return {};
}

void bus_impl::start_call(std::string_view target, std::string_view method, std::string params_json,
                          std::chrono::milliseconds timeout, bool all,
                          std::function<void(multi_call_result)> done) {
  auto fail_now = [&](call_errc code, std::string message, std::vector<peer_id> cands = {}) {
    multi_call_result m;
    m.error.code = code;
    m.error.message = std::move(message);
    m.error.candidates = std::move(cands);
    done(std::move(m));
  };
  const std::string tgt(target);
  if (closed_.load()) return fail_now(call_errc::closed, "the bus is closed");
  if (opts_.passive) return fail_now(call_errc::send_failed, "a passive bus does not send calls");
  if (!wire::valid_method(method))
    return fail_now(call_errc::bad_request, "invalid method '" + std::string(method) +
                                                "': use 1..128 characters of [A-Za-z0-9._-/:]");
  std::vector<peer_info> found;
  if (auto id = peer_id::parse(target)) {
    if (auto p = find_peer(*id)) found.push_back(*p);
  } else {
    found = find_peers(target);
  }
  if (found.empty()) return fail_now(call_errc::no_such_peer, "no live peer matches '" + tgt + "'");
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.id < b.id; });
  if (!all && found.size() > 1) {
    std::string msg = "'" + tgt + "' matches " + std::to_string(found.size()) + " peers:";
    std::vector<peer_id> cands;
    for (auto& p : found) {
      msg += " " + p.display + " (" + p.id.str() + ")";
      cands.push_back(p.id);
    }
    return fail_now(call_errc::ambiguous, msg + "; call one by its id", std::move(cands));
  }
  std::vector<call_table::target> targets;
  for (auto& p : found) targets.push_back({p.id.value, p.display});
  auto now = rel_clock::now();
  std::uint64_t cid;
  {
    std::lock_guard<std::mutex> lock(calls_mu_);
    cid = calls_.add(targets, now, now + timeout, [done](std::vector<call_result> rs) {
      multi_call_result m;
      m.results = std::move(rs);
      done(std::move(m));
    });
  }
  for (auto& t : targets) {
    auto ec = send_sequenced(wire::frame_type::call, t.peer, cid, method, params_json, {});
    if (ec) {
      bool pending;
      {
        std::lock_guard<std::mutex> lock(calls_mu_);
        pending = calls_.remove(cid);
      }
      if (!pending) return;  // close() completed it already: exactly one outcome
      return fail_now(ec == errc::closed ? call_errc::closed : call_errc::send_failed,
                      "could not send the call: " + ec.message());
    }
  }
  std::weak_ptr<bus_impl> weak = shared_from_this();
  asio::post(strand_, [weak] {
    if (auto self = weak.lock()) self->arm_call_timer();
  });
  // A target that left between the lookup and the registration would wait for the timeout.
  for (auto& t : targets) {
    if (find_peer(peer_id{t.peer})) continue;
    std::vector<call_table::finished> fin;
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      fin = calls_.on_peer_gone(t.peer, false, rel_clock::now());
    }
    for (auto& f : fin) f.run();
  }
}

void bus_impl::arm_call_timer() {
  rel_clock::time_point d;
  {
    std::lock_guard<std::mutex> lock(calls_mu_);
    d = calls_.next_deadline();
  }
  if (d == rel_clock::time_point::max() || d >= calls_timer_at_) return;
  calls_timer_at_ = d;
  calls_timer_.expires_at(d);
  calls_timer_.async_wait(
      asio::bind_executor(strand_, [self = shared_from_this()](std::error_code ec) {
        if (!ec) self->on_call_timer();
      }));
}

void bus_impl::on_call_timer() {
  std::vector<call_table::finished> fin;
  {
    std::lock_guard<std::mutex> lock(calls_mu_);
    fin = calls_.expire(rel_clock::now());
  }
  calls_timer_at_ = rel_clock::time_point::max();
  arm_call_timer();
  for (auto& f : fin) f.run();
}

void bus_impl::on_call(const wire::envelope& env) {
  std::shared_ptr<call_handler> h;
  {
    std::lock_guard<std::mutex> lock(handlers_mu_);
    if (auto it = methods_.find(env.method); it != methods_.end()) h = it->second;
  }
  auto st = std::make_shared<responder_state>();
  st->bus = weak_from_this();
  st->caller = env.from;
  st->cid = env.cid;
  st->method = std::string(env.method);
  if (!h) {
    st->answer_error("no_such_method", name_ + " has no handler for method '" + st->method + "'");
    return;
  }
  call_request rq;
  rq.method = st->method;
  rq.params_json = env.data.empty() ? std::string("null") : std::string(env.data);
  rq.caller = peer_id{env.from};
  rq.caller_name = std::string(env.name);
  try {
    handler_scope scope;
    (*h)(rq, responder(st));
  } catch (const std::exception& e) {
    st->answer_error("handler_failed", e.what());
  } catch (...) {
    st->answer_error("handler_failed", "the handler for '" + st->method + "' threw");
  }
}

void bus_impl::on_reply(const wire::envelope& env) {
  call_result r;
  try {
    if (!env.error.empty()) {
      auto e = nlohmann::json::parse(env.error);
      std::string code = e.value("code", std::string("error"));
      r.error.remote_code = code;
      r.error.message = e.value("message", std::string());
      r.error.code = code == "no_such_method" ? call_errc::no_such_method
                     : code == "unanswered"   ? call_errc::unanswered
                                              : call_errc::handler_failed;
    } else {
      r.value = nlohmann::json::parse(env.data);
    }
  } catch (const std::exception& e) {
    r.error.code = call_errc::handler_failed;
    r.error.message = std::string("unusable reply: ") + e.what();
  }
  if (r.error.code != call_errc::ok && r.error.message.empty())
    r.error.message = "error '" + r.error.remote_code + "'";
  std::vector<call_table::finished> fin;
  {
    std::lock_guard<std::mutex> lock(calls_mu_);
    fin = calls_.on_reply(env.from, env.cid, std::move(r), rel_clock::now());
  }
  for (auto& f : fin) f.run();
}

}  // namespace detail
}  // namespace peerbus
