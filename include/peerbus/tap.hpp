// peerbus/tap.hpp: every datagram a bus hears, decoded or not: the monitor's view of the wire.
#pragma once

#include <peerbus/peer.hpp>
#include <peerbus/stats.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace peerbus {

/// One frame (one JSON envelope) of a datagram. Views are valid during the handler call only.
struct frame_view {
  std::string_view text;   ///< the frame's bytes: JSON text, and "\n~N\n" and its body if any
  bool ok = false;         ///< decoded; otherwise `reason` and `error` say why not
  drop_reason reason = drop_reason::malformed;
  std::string_view error;  ///< "missing field 'seq'", "JSON nested too deep"...
  std::string_view type;   ///< "msg", "hb", "bye", "nack", "adv", "call", "reply"
  peer_id from;
  std::string_view name;
  std::uint64_t seq = 0;   ///< msg/call/reply: its seq; hb/bye/adv: sender's highest
  std::string_view topic;  ///< msg
  std::string_view data;   ///< payload JSON text (msg/call/reply)
  peer_id to;              ///< nack/call/reply: the peer addressed
  std::uint64_t nack_seqs = 0;  ///< nack: how many sequence numbers it asks for
  std::string_view header;      ///< the JSON text alone (text without the body)
  std::string_view ctype;       ///< msg with a body: content type
  std::size_t body_size = 0;    ///< msg with a body: its bytes (the body is text's tail)
  bool has_body = false;
  std::uint64_t frag = 0;       ///< a fragment of a large message: its index, 0-based...
  std::uint64_t nfrag = 0;      ///< ...of this many (0: not a fragment)
  std::uint64_t size = 0;       ///< ...whose whole size is this
};

/// One datagram as received, before reliability or dispatch.
struct datagram_view {
  std::chrono::system_clock::time_point received;
  std::string source;       ///< "127.0.0.1:40123"
  std::string_view bytes;   ///< as received; on a sealed bus, once opened, the open datagram
  bool sealed = false;      ///< arrived sealed and was opened with the bus's key
  bool ok = true;           ///< false: unusable as a whole (see reason/error); frames empty
  drop_reason reason = drop_reason::malformed;
  std::string_view error;
  bool injected_drop = false;  ///< fault injection dropped it (it is still shown)
  std::vector<frame_view> frames;
};

/// Called on the bus's executor for each datagram, before it is processed.
using datagram_handler = std::function<void(const datagram_view&)>;

}  // namespace peerbus
