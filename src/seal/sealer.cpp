// seal/sealer.cpp: the sealed datagram: header, XChaCha20-Poly1305 with the header as AD.
#include "seal/sealer.hpp"

#include <sodium.h>

#include <cstring>

namespace peerbus::detail::seal {

namespace {

static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == 32);
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == 24);
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == tag_size);

constexpr std::size_t off_key_id = 4, off_sender = 8, off_counter = 16, off_time = 24,
                      off_nonce = 32;
static_assert(off_nonce + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == header_size);

void put_be(unsigned char* p, std::uint64_t v, std::size_t n) {
  for (std::size_t i = n; i-- > 0; v >>= 8) p[i] = static_cast<unsigned char>(v);
}

std::uint64_t get_be(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

open_result refuse(drop_reason r, const char* detail) {
  open_result o;
  o.ok = false;
  o.reason = r;
  o.detail = detail;
  return o;
}

}  // namespace

sealer::sealer(const key& k, std::uint64_t sender_id, replay_guard guard)
    : key_id_(seal::key_id(k)), sender_(sender_id), guard_(std::move(guard)) {
  sodium_ready();
  // The cipher gets its own key, derived from the bus key, so that the key id (derived the same
  // way with another label) says nothing about it.
  static constexpr char label[] = "peerbus aead v1";
  crypto_generichash(aead_key_.data(), aead_key_.size(),
                     reinterpret_cast<const unsigned char*>(label), sizeof label - 1, k.data(),
                     key_bytes);
  randombytes_buf(nonce_prefix_.data(), nonce_prefix_.size());
}

sealer::~sealer() {
  sodium_memzero(aead_key_.data(), aead_key_.size());
}

void sealer::seal(std::string_view plain, std::string& out, std::int64_t now_us) {
  out.resize(header_size + plain.size() + tag_size);
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  std::memcpy(p, wire::sealed_magic.data(), wire::sealed_magic.size());
  const std::uint64_t counter = ++counter_;
  put_be(p + off_key_id, key_id_, 4);
  put_be(p + off_sender, sender_, 8);
  put_be(p + off_counter, counter, 8);
  put_be(p + off_time, static_cast<std::uint64_t>(now_us), 8);
  // 16 random bytes drawn once, then the counter: unique for this sealer's life without a
  // system call per datagram, and unrelated across processes and restarts.
  std::memcpy(p + off_nonce, nonce_prefix_.data(), nonce_prefix_.size());
  put_be(p + off_nonce + nonce_prefix_.size(), counter, 8);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      p + header_size, &clen, reinterpret_cast<const unsigned char*>(plain.data()), plain.size(), p,
      header_size, nullptr, p + off_nonce, aead_key_.data());
}

open_result sealer::open(std::string_view sealed, char* out, std::size_t out_size,
                         std::int64_t now_us) {
  if (sealed.substr(0, wire::sealed_magic.size()) != wire::sealed_magic)
    return refuse(drop_reason::unauthenticated, "open datagram on a sealed bus");
  if (sealed.size() < overhead) return refuse(drop_reason::malformed, "sealed datagram too short");
  if (sealed.size() > wire::max_datagram)
    return refuse(drop_reason::oversized, "datagram too large");
  const auto* p = reinterpret_cast<const unsigned char*>(sealed.data());
  if (get_be(p + off_key_id, 4) != key_id_)
    return refuse(drop_reason::unauthenticated, "sealed with another key");
  const std::size_t plain_size = sealed.size() - overhead;
  if (out_size < plain_size) return refuse(drop_reason::oversized, "datagram too large");
  unsigned long long mlen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<unsigned char*>(out), &mlen, nullptr, p + header_size,
          sealed.size() - header_size, p, header_size, p + off_nonce, aead_key_.data()) != 0)
    return refuse(drop_reason::unauthenticated, "authentication failed");
  open_result o;
  o.sender = get_be(p + off_sender, 8);
  o.counter = get_be(p + off_counter, 8);
  const auto sent_us = static_cast<std::int64_t>(get_be(p + off_time, 8));
  // Only now, with the header known to be genuine, may it change the replay state.
  switch (guard_.check_and_record(o.sender, o.counter, sent_us, now_us)) {
    case replay_guard::verdict::accepted:
      break;
    case replay_guard::verdict::replayed:
      return refuse(drop_reason::replayed, "replayed datagram");
    case replay_guard::verdict::behind:
      return refuse(drop_reason::replayed, "datagram counter too far behind the sender's");
    case replay_guard::verdict::stale:
      return refuse(drop_reason::replayed, "stale datagram (sent too long ago)");
    case replay_guard::verdict::from_future:
      return refuse(drop_reason::implausible, "datagram timestamped in the future");
    case replay_guard::verdict::bad_counter:
      return refuse(drop_reason::implausible, "datagram counter 0");
  }
  o.plain = std::string_view(out, static_cast<std::size_t>(mlen));
  return o;
}

open_result sealer::open(std::string_view sealed, std::string& out, std::int64_t now_us) {
  out.resize(sealed.size());
  auto r = open(sealed, out.data(), out.size(), now_us);
  out.resize(r ? r.plain.size() : 0);
  if (r) r.plain = out;
  return r;
}

}  // namespace peerbus::detail::seal
