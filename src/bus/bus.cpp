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

bus_stats bus::stats() const { return impl_->stats(); }
peer_id bus::id() const noexcept { return impl_->id(); }
const std::string& bus::name() const noexcept { return impl_->name(); }
const bus_url& bus::url() const noexcept { return impl_->url(); }
void bus::close() { impl_->close(); }

}  // namespace peerbus
