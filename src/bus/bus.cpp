// bus/bus.cpp: the public peerbus::bus, a thin shell over bus_impl.
#include "bus/bus_impl.hpp"

#include <peerbus/bus.hpp>

namespace peerbus {

bus::bus(options opts) {
  auto ctx = std::make_unique<asio::io_context>(1);
  auto& ref = *ctx;
  impl_ = std::make_shared<detail::bus_impl>(ref, std::move(opts), std::move(ctx));
  impl_->start();
}

bus::bus(asio::io_context& ctx, options opts)
    : impl_(std::make_shared<detail::bus_impl>(ctx, std::move(opts), nullptr)) {
  impl_->start();
}

bus::~bus() {
  if (impl_) impl_->close();
}

std::error_code bus::publish(std::string_view topic, const nlohmann::json& data) {
  std::string text;
  try {
    text = data.dump();
  } catch (const nlohmann::json::exception&) {
    return errc::invalid_json;  // e.g. a string holding invalid UTF-8
  }
  return impl_->publish(topic, text);
}

std::error_code bus::publish_raw(std::string_view topic, std::string_view json_text) {
  return impl_->publish(topic, json_text);
}

std::error_code bus::publish_bytes(std::string_view topic, std::string_view bytes,
                                   std::string_view content_type) {
  return impl_->publish_bytes(topic, bytes, content_type);
}

subscription bus::subscribe(std::string_view pattern, message_handler handler,
                            subscribe_options opts) {
  return impl_->subscribe(pattern, std::move(handler), opts);
}

subscription bus::on_peer_event(peer_handler handler) { return impl_->on_peer_event(std::move(handler)); }
subscription bus::on_loss(loss_handler handler) { return impl_->on_loss(std::move(handler)); }
subscription bus::on_datagram(datagram_handler handler) { return impl_->on_datagram(std::move(handler)); }

std::vector<peer_info> bus::peers() const { return impl_->peers(); }
std::optional<peer_info> bus::find_peer(peer_id id) const { return impl_->find_peer(id); }
std::vector<peer_info> bus::find_peers(std::string_view pattern) const { return impl_->find_peers(pattern); }
bool bus::has_peer(std::string_view name) const { return impl_->has_peer(name); }

bool bus::wait_for_subscribers(std::string_view topic, std::size_t n,
                               std::chrono::milliseconds timeout) {
  return impl_->wait_for_subscribers(topic, n, timeout);
}
bool bus::wait_for_peer(std::string_view pattern, std::chrono::milliseconds timeout) {
  return impl_->wait_for_peer(pattern, timeout);
}

subscription bus::handle(std::string_view method, call_handler handler) {
  return impl_->handle(method, std::move(handler));
}

namespace {
// Params as JSON text; a value that cannot be written (invalid UTF-8) fails the call as a value.
bool params_text(const nlohmann::json& params, std::string& out, call_error& err) {
  try {
    out = params.dump();
    return true;
  } catch (const nlohmann::json::exception& e) {
    err.code = call_errc::bad_request;
    err.message = std::string("params cannot be encoded as JSON: ") + e.what();
    return false;
  }
}
call_result single(multi_call_result m) {
  if (m.error.code != call_errc::ok || m.results.empty()) {
    call_result r;
    r.error = std::move(m.error);
    return r;
  }
  return std::move(m.results.front());
}
}  // namespace

void bus::call_async(std::string_view target, std::string_view method,
                     const nlohmann::json& params, std::chrono::milliseconds timeout,
                     call_completion done) {
  std::string text;
  call_result bad;
  if (!params_text(params, text, bad.error)) return done(std::move(bad));
  impl_->start_call(target, method, std::move(text), timeout, false,
                    [done = std::move(done)](multi_call_result m) { done(single(std::move(m))); });
}

std::future<call_result> bus::call_async(std::string_view target, std::string_view method,
                                         const nlohmann::json& params,
                                         std::chrono::milliseconds timeout) {
  auto p = std::make_shared<std::promise<call_result>>();
  auto f = p->get_future();
  call_async(target, method, params, timeout, [p](call_result r) { p->set_value(std::move(r)); });
  return f;
}

call_result bus::call(std::string_view target, std::string_view method,
                      const nlohmann::json& params, std::chrono::milliseconds timeout) {
  if (!impl_->may_block()) {
    call_result r;
    r.error.code = call_errc::would_block;
    r.error.message =
        "bus::call blocks: use call_async on the bus's executor or in a block subscription's handler";
    return r;
  }
  return call_async(target, method, params, timeout).get();
}

multi_call_result bus::call_all(std::string_view pattern, std::string_view method,
                                const nlohmann::json& params, std::chrono::milliseconds timeout) {
  multi_call_result bad;
  if (!impl_->may_block()) {
    bad.error.code = call_errc::would_block;
    bad.error.message =
        "bus::call_all blocks: not on the bus's executor nor in a block subscription's handler";
    return bad;
  }
  std::string text;
  if (!params_text(params, text, bad.error)) return bad;
  auto p = std::make_shared<std::promise<multi_call_result>>();
  auto f = p->get_future();
  impl_->start_call(pattern, method, std::move(text), timeout, true,
                    [p](multi_call_result m) { p->set_value(std::move(m)); });
  return f.get();
}

bus_stats bus::stats() const { return impl_->stats(); }
peer_id bus::id() const noexcept { return impl_->id(); }
const std::string& bus::name() const noexcept { return impl_->name(); }
const bus_url& bus::url() const noexcept { return impl_->url(); }
void bus::close() { impl_->close(); }

}  // namespace peerbus
