// peerbus/message.hpp: one delivered message, as a subscription handler sees it.
#pragma once

#include <peerbus/peer.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>

namespace peerbus {

/// A message as delivered to a handler. It refers to the bus's receive buffer: every view is
/// valid only during the handler call; copy what you keep (`std::string(msg.topic())`).
class message {
 public:
  message(std::string_view topic, peer_id sender, std::string_view sender_name,
          std::uint64_t seq, std::int64_t timestamp_us, std::string_view data_json) noexcept
      : topic_(topic),
        sender_(sender),
        sender_name_(sender_name),
        seq_(seq),
        timestamp_us_(timestamp_us),
        data_json_(data_json) {}

  std::string_view topic() const noexcept { return topic_; }
  peer_id sender() const noexcept { return sender_; }
  std::string_view sender_name() const noexcept { return sender_name_; }
  /// Per-sender sequence number: consecutive, starting at 1 when the sender's bus starts.
  std::uint64_t seq() const noexcept { return seq_; }
  /// Sender's clock when it published, microseconds since the Unix epoch.
  std::int64_t timestamp_us() const noexcept { return timestamp_us_; }
  std::chrono::system_clock::time_point timestamp() const noexcept {
    return std::chrono::system_clock::time_point(std::chrono::microseconds(timestamp_us_));
  }
  /// The payload's JSON text exactly as it travelled (validated, not parsed): forwarding or
  /// recording it costs nothing.
  std::string_view data_json() const noexcept { return data_json_; }
  /// The payload parsed. Parsing happens here, on demand.
  nlohmann::json data() const { return nlohmann::json::parse(data_json_); }

 private:
  std::string_view topic_;
  peer_id sender_;
  std::string_view sender_name_;
  std::uint64_t seq_;
  std::int64_t timestamp_us_;
  std::string_view data_json_;
};

}  // namespace peerbus
