// bus/reassembly.hpp: puts fragmented messages back together, per sender, after the in-order
// stream; pure (takes `now`, does no I/O), bounded in memory, and every message whole or lost.
#pragma once

#include "reliability/config.hpp"
#include "wire/envelope.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace peerbus::detail {

/// One fragment as the stream delivers it (views into the frame).
struct fragment_in {
  std::uint64_t seq = 0;
  std::uint64_t frag = 0, nfrag = 0, size = 0;
  std::string_view topic, ctype, body;
  std::int64_t ts = 0;
};

inline fragment_in fragment_of(const wire::envelope& env) {
  fragment_in f;
  f.seq = env.seq;
  f.frag = env.frag;
  f.nfrag = env.nfrag;
  f.size = env.size;
  f.topic = env.topic;
  f.ctype = env.ctype;
  f.body = env.body;
  f.ts = env.ts;
  return f;
}

/// A message put back together.
struct reassembled {
  std::uint64_t first_seq = 0;  ///< seq of its first fragment (the message's seq)
  std::int64_t ts = 0;
  std::string topic, ctype, bytes;
};

/// A run of one sender's seqs to report lost (a message that cannot be completed, and the
/// stream's own losses, merged where they touch).
struct reassembly_loss {
  std::uint64_t first = 0, last = 0;
};

struct reassembly_config {
  std::size_t max_message = std::size_t{16} << 20;  ///< larger messages are refused (lost)
  std::size_t max_bytes = std::size_t{64} << 20;    ///< all partial messages together
  rel_clock::duration timeout = std::chrono::seconds(5);  ///< a partial message without progress
};

/// The fragments of each sender arrive in seq order (the receive stream's delivery order), with
/// the stream's loss reports in between. A message is delivered once every fragment came, in
/// consecutive seqs; anything else (a loss among them, a sender gone, a timeout, a fragment that
/// does not follow on, too little memory) discards the partial message and reports all of its
/// seqs lost, once: later fragments of it and the stream's losses inside it are swallowed.
///
/// Not thread-safe: the bus calls it on its strand only.
class reassembler {
 public:
  explicit reassembler(reassembly_config c) : cfg_(c) {}

  struct outcome {
    std::vector<reassembly_loss> losses;  ///< to report first, in order
    std::optional<reassembled> message;   ///< then this, when it completed
    bool swallow = false;  ///< other(): the frame lies in a run already reported lost: drop it
  };

  /// A fragment delivered by sender's stream.
  outcome offer(std::uint64_t sender, const fragment_in& f, rel_clock::time_point now);
  /// Anything else the sender's stream delivered (a whole message, a call, a reply) at `seq`:
  /// a partial message it interrupts is lost. Cheap when nothing is pending for the sender.
  outcome other(std::uint64_t sender, std::uint64_t seq);
  /// The stream lost [first, last]: returns what to report instead (the partial message it
  /// breaks included, what was already reported left out).
  std::vector<reassembly_loss> on_loss(std::uint64_t sender, std::uint64_t first, std::uint64_t last);
  /// The sender left or expired: its partial message is lost.
  std::vector<reassembly_loss> on_gone(std::uint64_t sender);
  /// Partial messages without progress for the timeout are freed and lost.
  std::vector<std::pair<std::uint64_t, reassembly_loss>> expire(rel_clock::time_point now);

  /// When expire() next has something to do (max() when nothing is pending).
  rel_clock::time_point next_deadline() const;
  bool idle() const noexcept { return senders_.empty(); }
  std::size_t bytes() const noexcept { return bytes_; }    ///< reserved by partial messages
  std::size_t partials() const noexcept { return partials_; }

 private:
  struct partial {
    std::uint64_t first_seq = 0, nfrag = 0, size = 0, next_frag = 0;
    std::string topic, ctype;
    std::int64_t ts = 0;
    std::string bytes;
    rel_clock::time_point last_progress;
  };
  struct sender_state {
    std::optional<partial> p;
    std::uint64_t reported_through = 0;  ///< seqs up to here were reported lost: swallow them
    std::uint64_t lost_through = 0;      ///< the stream's last loss ended here
  };
  // Frees the partial message and returns its seqs, up to `until` at most, as lost.
  reassembly_loss drop_partial(sender_state& s, std::uint64_t until);
  void forget_if_done(std::uint64_t sender, std::uint64_t seq);

  reassembly_config cfg_;
  std::unordered_map<std::uint64_t, sender_state> senders_;
  std::size_t bytes_ = 0;
  std::size_t partials_ = 0;
};

}  // namespace peerbus::detail
