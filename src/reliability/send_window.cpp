// reliability/send_window.cpp: the retransmit ring buffer and its repair rate limit.
#include "reliability/send_window.hpp"

#include <algorithm>
#include <utility>

namespace peerbus::detail {

namespace {
// First ring size; doubling from here reaches the default 131072 in 13 steps.
constexpr std::size_t initial_slots = 16;
}  // namespace

send_window::send_window(std::size_t max_count, std::size_t max_bytes)
    : max_count_(std::max<std::size_t>(max_count, 1)),
      max_bytes_(std::max<std::size_t>(max_bytes, 1)) {}

void send_window::push(std::uint64_t seq, std::string_view frame) {
  if (seq == 0) return;
  if (count_ != 0 && seq != highest() + 1) {
    clear();
    ++resets_;
  }
  while (count_ != 0 && (count_ >= max_count_ || bytes_ + frame.size() > max_bytes_)) {
    drop_oldest();
    ++evicted_;
  }
  if (count_ == slots_.size()) grow();
  if (count_ == 0) {
    // Restart at slot 0: any slot would do, this keeps the ring's layout easy to reason about.
    head_ = 0;
    lowest_ = seq;
  }
  slot& s = slots_[(head_ + count_) % slots_.size()];
  const std::size_t old_capacity = s.frame.capacity();
  s.frame.assign(frame.data(), frame.size());
  capacity_bytes_ += s.frame.capacity() - old_capacity;
  s.repaired = false;
  ++count_;
  bytes_ += frame.size();
  highest_pushed_ = seq;
}

std::optional<std::string_view> send_window::find(std::uint64_t seq) const {
  if (count_ == 0 || seq < lowest_ || seq - lowest_ >= count_) return std::nullopt;
  return std::string_view(slots_[index_of(seq)].frame);
}

bool send_window::may_repair(std::uint64_t seq, time_point now, duration holdoff) {
  if (count_ == 0 || seq < lowest_ || seq - lowest_ >= count_) return false;
  slot& s = slots_[index_of(seq)];
  if (s.repaired && now - s.last_repair < holdoff) {
    ++repairs_held_off_;
    return false;
  }
  s.repaired = true;
  s.last_repair = now;
  ++repairs_allowed_;
  return true;
}

void send_window::clear() noexcept {
  while (count_ != 0) drop_oldest();
}

void send_window::drop_oldest() {
  slot& s = slots_[head_];
  bytes_ -= s.frame.size();
  if (capacity_bytes_ > 2 * max_bytes_) {
    // Idle buffers would otherwise keep the capacity of the largest frames ever sent in this
    // slot, up to max_count times the largest frame: give this one back.
    capacity_bytes_ -= s.frame.capacity();
    std::string().swap(s.frame);
    capacity_bytes_ += s.frame.capacity();
  } else {
    s.frame.clear();
  }
  head_ = (head_ + 1) % slots_.size();
  --count_;
  ++lowest_;
}

void send_window::grow() {
  const std::size_t new_size = std::min(max_count_, std::max(initial_slots, slots_.size() * 2));
  std::vector<slot> bigger(new_size);
  // Moving keeps each frame's buffer; the oldest lands in slot 0.
  for (std::size_t i = 0; i < slots_.size(); ++i)
    bigger[i] = std::move(slots_[(head_ + i) % slots_.size()]);
  capacity_bytes_ = 0;
  for (const slot& s : bigger) capacity_bytes_ += s.frame.capacity();
  slots_ = std::move(bigger);
  head_ = 0;
}

}  // namespace peerbus::detail
