// bus/misc.cpp: small public helpers: version, error category, enum names, peer id text form.
#include <peerbus/bus.hpp>
#include <peerbus/error.hpp>
#include <peerbus/log.hpp>
#include <peerbus/peer.hpp>
#include <peerbus/stats.hpp>
#include <peerbus/version.hpp>

#include "wire/envelope.hpp"

namespace peerbus {

const char* version_string() noexcept { return "0.1.0"; }

const char* to_string(log_level l) noexcept {
  switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
  }
  return "?";
}

const char* to_string(peer_event_kind k) noexcept {
  switch (k) {
    case peer_event_kind::joined: return "joined";
    case peer_event_kind::left: return "left";
    case peer_event_kind::expired: return "expired";
  }
  return "?";
}

const char* to_string(drop_reason r) noexcept {
  switch (r) {
    case drop_reason::malformed: return "malformed";
    case drop_reason::wrong_version: return "wrong_version";
    case drop_reason::bad_field: return "bad_field";
    case drop_reason::oversized: return "oversized";
    case drop_reason::unknown_type: return "unknown_type";
    case drop_reason::unauthenticated: return "unauthenticated";
    case drop_reason::implausible: return "implausible";
    case drop_reason::peer_table_full: return "peer_table_full";
    case drop_reason::injected: return "injected";
    case drop_reason::replayed: return "replayed";
  }
  return "?";
}

// Also the spellings of `peerbus sub --overflow` and of the --stats output.
const char* to_string(overflow_policy p) noexcept {
  switch (p) {
    case overflow_policy::drop_oldest: return "drop-oldest";
    case overflow_policy::drop_newest: return "drop-newest";
    case overflow_policy::block: return "block";
  }
  return "?";
}

const char* to_string(loss_cause c) noexcept {
  switch (c) {
    case loss_cause::not_repaired: return "not_repaired";
    case loss_cause::queue_overflow: return "queue_overflow";
  }
  return "?";
}

namespace {
class error_category_impl : public std::error_category {
 public:
  const char* name() const noexcept override { return "peerbus"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok: return "ok";
      case errc::bad_topic:
        return "invalid topic: 1..255 bytes of '.'-separated non-empty segments of printable "
               "ASCII without '*', '>', '\"' or '\\'";
      case errc::payload_too_large:
        return "message larger than the largest message size (options::max_message_size, "
               "16 MiB by default), or its topic, name and content type leave no room for it "
               "in a datagram of this bus's mtu";
      case errc::invalid_json: return "payload is not valid JSON";
      case errc::closed: return "the bus is closed";
      case errc::passive: return "a passive bus does not send";
      case errc::send_failed: return "the operating system refused the datagram";
      case errc::bad_content_type:
        return "invalid content type: 1..127 bytes of printable ASCII without '\"' or '\\'";
    }
    return "unknown peerbus error";
  }
};
}  // namespace

const std::error_category& category() noexcept {
  static error_category_impl c;
  return c;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

std::string peer_id::str() const {
  char buf[16];
  detail::wire::format_hex_id(value, buf);
  return std::string(buf, sizeof buf);
}

std::optional<peer_id> peer_id::parse(std::string_view text) {
  std::uint64_t v;
  if (!detail::wire::parse_hex_id(text, v)) return std::nullopt;
  return peer_id{v};
}

}  // namespace peerbus
