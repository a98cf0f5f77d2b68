// peerbus/message.hpp: one delivered message, as a subscription handler sees it.
#pragma once

#include <peerbus/peer.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
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
        name_size_(m.sender_name().size()) {
    bytes_.reserve(topic_size_ + name_size_ + m.data_json().size());
    bytes_.append(m.topic()).append(m.sender_name()).append(m.data_json());
  }

  /// The message, with views into this object: valid while it lives and is not assigned to.
  message view() const noexcept {
    const std::string_view all(bytes_);
    return message(all.substr(0, topic_size_), sender_, all.substr(topic_size_, name_size_), seq_,
                   timestamp_us_, all.substr(topic_size_ + name_size_));
  }
  /// Bytes held: topic, sender name and payload (what a subscription's queue_bytes counts).
  std::size_t size() const noexcept { return bytes_.size(); }

 private:
  std::string bytes_;  // topic, then sender name, then payload JSON
  peer_id sender_{};
  std::uint64_t seq_ = 0;
  std::int64_t timestamp_us_ = 0;
  std::size_t topic_size_ = 0;
  std::size_t name_size_ = 0;
};

}  // namespace peerbus
