// reliability/send_window.cpp: the retransmit ring buffer and its repair rate limit.
#include "reliability/send_window.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace peerbus::detail {

namespace {
// First index ring size; doubling from here reaches the default 131072 in 13 steps.
constexpr std::size_t initial_entries = 16;
// First byte ring size: a few hundred small frames before the first growth.
constexpr std::size_t initial_data = 64 * 1024;
constexpr std::size_t npos = static_cast<std::size_t>(-1);
}  // namespace

send_window::send_window(std::size_t max_count, std::size_t max_bytes)
    : max_count_(std::max<std::size_t>(max_count, 1)),
      max_bytes_(std::max<std::size_t>(max_bytes, 1)) {}

std::size_t send_window::place(std::size_t size) const noexcept {
  if (count_ == 0) return size <= data_capacity_ ? 0 : npos;
  const std::size_t head = entries_[head_].offset;
  const entry& last = newest();
  const std::size_t tail = last.offset + last.size;
  if (last.offset >= head) {
    // Live frames lie in [head, tail): room after them, else before head (the ring wraps).
    if (data_capacity_ - tail >= size) return tail;
    return size <= head ? 0 : npos;
  }
  // Wrapped: live frames lie in [head, end) and [0, tail); room is [tail, head).
  return head - tail >= size ? tail : npos;
}

std::uint64_t send_window::evicts_through(std::size_t frames, std::size_t bytes) const noexcept {
  if (count_ == 0) return 0;
  std::size_t count = count_;
  std::size_t held = bytes_;
  std::uint64_t seq = lowest_;
  // As push() does, frame by frame. The bounds are all: a byte ring of twice max_bytes always
  // has room for a frame they let in (live bytes <= max_bytes - size leave two gaps, one of
  // them at least size long), and a smaller ring grows instead of evicting.
  while (count != 0 && (count + frames > max_count_ || held + bytes > max_bytes_)) {
    held -= entries_[index_of(seq)].size;
    ++seq;
    --count;
  }
  return seq == lowest_ ? 0 : seq - 1;
}

std::optional<std::uint64_t> send_window::bytes_through(std::uint64_t seq) const noexcept {
  if (count_ == 0 || seq + 1 < lowest_ || seq > highest()) return std::nullopt;
  if (seq + 1 == lowest_) {
    const entry& oldest = entries_[head_];
    return oldest.pushed_through - oldest.size;
  }
  return entries_[index_of(seq)].pushed_through;
}

void send_window::push(std::uint64_t seq, std::string_view frame) {
  if (seq == 0) return;
  if (count_ != 0 && seq != highest() + 1) {
    clear();
    ++resets_;
  }
  const std::size_t size = std::max<std::size_t>(frame.size(), 1);  // every frame has a place
  while (count_ != 0 && (count_ >= max_count_ || bytes_ + size > max_bytes_)) {
    drop_oldest();
    ++evicted_;
  }
  std::size_t at = place(size);
  if (at == npos) {
    // Grow while the byte ring is under twice the bound: the frames it keeps fit it with room
    // to wrap. At the limit, the oldest frames make room.
    const std::size_t limit = std::max(2 * max_bytes_, size);
    if (data_capacity_ < limit) {
      std::size_t capacity = std::max(initial_data, 2 * data_capacity_);
      while (capacity < 2 * (bytes_ + size)) capacity *= 2;
      regrow_data(std::min(capacity, std::max(limit, bytes_ + size)));
      at = place(size);
    }
    while (at == npos && count_ != 0) {
      drop_oldest();
      ++evicted_;
      at = place(size);
    }
    if (at == npos) {  // empty, and the ring is smaller than this one frame
      regrow_data(size);
      at = 0;
    }
  }
  if (count_ == entries_.size()) grow_index();
  if (count_ == 0) {
    // Restart at entry 0: any entry would do, this keeps the ring's layout easy to reason about.
    head_ = 0;
    lowest_ = seq;
  }
  std::memcpy(data_.get() + at, frame.data(), frame.size());
  entry& e = entries_[(head_ + count_) % entries_.size()];
  e.offset = at;
  e.size = frame.size();
  e.repaired = false;
  bytes_pushed_ += frame.size();
  e.pushed_through = bytes_pushed_;
  ++count_;
  bytes_ += frame.size();
  highest_pushed_ = seq;
}

std::optional<std::string_view> send_window::find(std::uint64_t seq) const {
  if (count_ == 0 || seq < lowest_ || seq - lowest_ >= count_) return std::nullopt;
  const entry& e = entries_[index_of(seq)];
  return std::string_view(data_.get() + e.offset, e.size);
}

bool send_window::may_repair(std::uint64_t seq, time_point now, duration holdoff) {
  if (count_ == 0 || seq < lowest_ || seq - lowest_ >= count_) return false;
  entry& e = entries_[index_of(seq)];
  if (e.repaired && now - e.last_repair < holdoff) {
    ++repairs_held_off_;
    return false;
  }
  e.repaired = true;
  e.last_repair = now;
  ++repairs_allowed_;
  return true;
}

void send_window::clear() noexcept {
  while (count_ != 0) drop_oldest();
}

void send_window::drop_oldest() {
  bytes_ -= entries_[head_].size;
  head_ = (head_ + 1) % entries_.size();
  --count_;
  ++lowest_;
}

void send_window::grow_index() {
  const std::size_t new_size = std::min(max_count_, std::max(initial_entries, entries_.size() * 2));
  std::vector<entry> bigger(new_size);
  // The oldest lands in entry 0.
  for (std::size_t i = 0; i < count_; ++i) bigger[i] = entries_[(head_ + i) % entries_.size()];
  entries_ = std::move(bigger);
  head_ = 0;
}

void send_window::regrow_data(std::size_t capacity) {
  std::unique_ptr<char[]> bigger(new char[capacity]);
  std::size_t at = 0;
  for (std::size_t i = 0; i < count_; ++i) {
    entry& e = entries_[(head_ + i) % entries_.size()];
    std::memcpy(bigger.get() + at, data_.get() + e.offset, e.size);
    e.offset = at;
    at += std::max<std::size_t>(e.size, 1);
  }
  data_ = std::move(bigger);
  data_capacity_ = capacity;
}

}  // namespace peerbus::detail
