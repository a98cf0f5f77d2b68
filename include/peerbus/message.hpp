// peerbus/message.hpp: one delivered message, as a subscription handler sees it.
#pragma once

#include <peerbus/peer.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace peerbus {

/// A message as delivered to a handler. It refers to the bus's receive buffer (or, for a queued
/// subscription, to the queue's owned copy): every view is valid only during the handler call;
/// copy what you keep (`std::string(msg.topic())`, or the whole of it as an owned_message).
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
  /// A message published as bytes with a content type (bus::publish_bytes), or a large JSON
  /// message put back together from its fragments (content type "application/json").
  message(std::string_view topic, peer_id sender, std::string_view sender_name,
          std::uint64_t seq, std::int64_t timestamp_us, std::string_view content_type,
          std::string_view bytes) noexcept
      : topic_(topic),
        sender_(sender),
        sender_name_(sender_name),
        seq_(seq),
        timestamp_us_(timestamp_us),
        data_json_(content_type == json_content_type ? bytes : std::string_view{}),
        content_type_(content_type),
        bytes_(bytes) {}

  /// The content type of JSON messages.
  static constexpr std::string_view json_content_type = "application/json";

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
  /// recording it costs nothing. Empty for a binary message (is_binary()).
  std::string_view data_json() const noexcept { return data_json_; }
  /// The payload parsed. Parsing happens here, on demand. Throws std::logic_error for a binary
  /// message: use bytes().
  nlohmann::json data() const {
    if (is_binary())
      throw std::logic_error("message on '" + std::string(topic_) + "' is binary (" +
                             std::string(content_type_) + ", " + std::to_string(bytes_.size()) +
                             " bytes): use bytes(), not data()");
    return nlohmann::json::parse(data_json_);
  }
  /// "application/json" for JSON messages; otherwise what the publisher gave publish_bytes.
  std::string_view content_type() const noexcept {
    return content_type_.empty() ? json_content_type : content_type_;
  }
  /// The payload's bytes: for a JSON message its JSON text (data_json()).
  std::string_view bytes() const noexcept { return content_type_.empty() ? data_json_ : bytes_; }
  /// Raw bytes rather than JSON: data() throws, use bytes().
  bool is_binary() const noexcept { return content_type() != json_content_type; }

 private:
  std::string_view topic_;
  peer_id sender_;
  std::string_view sender_name_;
  std::uint64_t seq_;
  std::int64_t timestamp_us_;
  std::string_view data_json_;
  std::string_view content_type_;  // empty: a JSON message carried in "data"
  std::string_view bytes_;
};

/// A message that owns its bytes: topic, sender name and payload in one allocation. What a queued
/// subscription keeps while its handler is busy; also yours to keep or hand to another thread.
///
///     std::vector<peerbus::owned_message> kept;
///     auto sub = bus.subscribe("job.*", [&](const peerbus::message& m) { kept.emplace_back(m); });
///     ... kept[0].view().data()
class owned_message {
 public:
  owned_message() = default;
  explicit owned_message(const message& m)
      : sender_(m.sender()),
        seq_(m.seq()),
        timestamp_us_(m.timestamp_us()),
        topic_size_(m.topic().size()),
        name_size_(m.sender_name().size()),
        ctype_size_(m.is_binary() ? m.content_type().size() : 0) {
    const auto payload = m.is_binary() ? m.bytes() : m.data_json();
    bytes_.reserve(topic_size_ + name_size_ + ctype_size_ + payload.size());
    bytes_.append(m.topic()).append(m.sender_name());
    if (ctype_size_) bytes_.append(m.content_type());
    bytes_.append(payload);
  }

  /// The message, with views into this object: valid while it lives and is not assigned to.
  message view() const noexcept {
    const std::string_view all(bytes_);
    const auto topic = all.substr(0, topic_size_);
    const auto name = all.substr(topic_size_, name_size_);
    const auto payload = all.substr(topic_size_ + name_size_ + ctype_size_);
    if (ctype_size_)
      return message(topic, sender_, name, seq_, timestamp_us_,
                     all.substr(topic_size_ + name_size_, ctype_size_), payload);
    return message(topic, sender_, name, seq_, timestamp_us_, payload);
  }
  /// Bytes held: topic, sender name, content type and payload (what a subscription's
  /// queue_bytes counts).
  std::size_t size() const noexcept { return bytes_.size(); }

 private:
  std::string bytes_;  // topic, sender name, content type (binary only), then the payload
  peer_id sender_{};
  std::uint64_t seq_ = 0;
  std::int64_t timestamp_us_ = 0;
  std::size_t topic_size_ = 0;
  std::size_t name_size_ = 0;
  std::size_t ctype_size_ = 0;  // 0: a JSON message
};

}  // namespace peerbus
