// fuzz/datagram.cpp: libFuzzer target for everything that parses a received datagram.
//
// Feeds the bytes through the receive path's parsing exactly as bus_impl does (for_each_frame,
// decode_frame, host unescaping, subscription arrays) and then into a receive_stream and a
// peer_table driven by a fake clock, so the pure cores see hostile sequence numbers, adverts and
// NACK ranges too. Beyond "no crash, no leak, no UB" it checks the promises the bus relies on:
// a payload the decoder accepts parses with nlohmann (handlers call message::data()), a frame
// is never longer than its datagram, and the stream's memory stays within its configured bounds.
// Sealing: the bytes are also opened as a sealed datagram (header checks: no fuzzer forges a tag),
// and sealed then opened again, which must give back exactly the bytes, while any one flipped
// byte of the sealed form must be refused.
#include "bus/reassembly.hpp"
#include "presence/peer_table.hpp"
#include "reliability/config.hpp"
#include "reliability/receive_stream.hpp"
#include "seal/sealer.hpp"
#include "wire/envelope.hpp"
#include "wire/json_scan.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>

using namespace peerbus::detail;

namespace {

void require(bool ok) {
  if (!ok) std::abort();  // libFuzzer reports the input that broke a promise
}

}  // namespace

namespace {

void fuzz_sealing(std::string_view datagram) {
  using namespace peerbus::detail::seal;
  static const key k(std::array<unsigned char, key_bytes>{1, 2, 3, 4, 5, 6, 7, 8});
  constexpr std::int64_t t = 1'700'000'000'000'000;
  sealer receiver(k, 2, replay_guard(8, 30'000'000, 0));
  std::string out;
  (void)receiver.open(datagram, out, t);  // arbitrary bytes: refused, never a crash
  if (datagram.size() > max_plain) return;
  sealer sender(k, 1);
  std::string sealed;
  sender.seal(datagram, sealed, t);
  if (!datagram.empty()) {
    std::string damaged = sealed;
    damaged[static_cast<unsigned char>(datagram[0]) % damaged.size()] ^= 0x20;
    require(!receiver.open(damaged, out, t));
  }
  auto r = receiver.open(sealed, out, t);
  require(r.ok && out == datagram);
  require(!receiver.open(sealed, out, t));  // the same datagram again is a replay
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view datagram(reinterpret_cast<const char*>(data), size);
  fuzz_sealing(datagram);

  // Small bounds so the fuzzer reaches the limits quickly.
  reliability_config rcfg;
  rcfg.max_reorder = 64;
  rcfg.max_reorder_bytes = 16 * 1024;
  std::mt19937_64 rng(1);
  presence_config pcfg;
  pcfg.max_peers = 8;
  peer_table peers(pcfg);
  std::optional<receive_stream> stream;
  reassembler reasm({std::size_t{1} << 20, std::size_t{2} << 20, std::chrono::seconds(5)});
  auto now = rel_clock::time_point{} + std::chrono::seconds(1);
  const auto pnow = presence_clock::time_point{} + std::chrono::seconds(1);

  wire::for_each_frame(datagram, [&](std::string_view frame) {
    require(frame.size() <= datagram.size());
    wire::envelope env, general;
    // The canonical-message fast path agrees with the general decoder: a leading space (legal
    // JSON white space) sends the same frame down the general path.
    const std::string spaced = " " + std::string(frame);
    const auto verdict = wire::decode_frame(frame, env);
    const auto general_verdict = wire::decode_frame(spaced, general);
    require(verdict.ok == general_verdict.ok);
    require(verdict.ok ? wire::same_decoding(env, general) : verdict.reason == general_verdict.reason);
    if (!verdict) return;
    // nlohmann throws (and so the run fails) if the scanner let through what it cannot parse.
    if (!env.data.empty()) require(!nlohmann::json::parse(env.data).is_discarded());
    if (!env.error.empty()) require(nlohmann::json::parse(env.error).is_object());
    if (env.type == wire::frame_type::hb) {
      announce a;
      a.id = env.from;
      a.name = std::string(env.name);
      a.host = env.host_escaped ? wire::json_unescape(env.host) : std::string(env.host);
      a.highest_seq = env.seq;
      a.lowest_seq = env.lo;
      a.interval = std::chrono::milliseconds(env.ivl ? env.ivl : 1000);
      if (!env.subs.empty()) {
        auto subs = nlohmann::json::parse(env.subs);
        require(subs.is_array());
        for (auto& p : subs) a.subs.push_back(p.get<std::string>());
      }
      (void)peers.on_announce(a, pnow);
    }
    if (env.nfrag != 0) {  // fragments: put back together, bounded
      auto o = reasm.offer(env.from, fragment_of(env), now);
      if (o.message) require(o.message->bytes.size() == env.size);
      require(reasm.bytes() <= std::size_t{2} << 20);
    } else if (wire::is_sequenced(env.type)) {
      (void)reasm.other(env.from, env.seq);
    }
    if (wire::is_sequenced(env.type)) {
      if (!stream) stream.emplace(rcfg, env.seq, rng);
      (void)stream->offer(env.seq, env.frame, now);
    } else if (stream && (env.type == wire::frame_type::adv || env.type == wire::frame_type::hb)) {
      stream->on_advert(env.seq, env.lo, now);
    } else if (stream && env.type == wire::frame_type::nack) {
      for (std::size_t i = 0; i < env.range_count; ++i)
        stream->on_foreign_nack(seq_range{env.ranges[i].first, env.ranges[i].last}, now);
    }
    if (stream) {
      now += std::chrono::milliseconds(7);
      (void)stream->due_nacks(now);
      while (stream->pop_ready()) {
      }
      require(stream->buffered_count() <= rcfg.max_reorder);
      require(stream->buffered_bytes() <= rcfg.max_reorder_bytes + wire::max_datagram);
    }
  });
  require(peers.size() <= pcfg.max_peers);
  (void)reasm.expire(now + std::chrono::seconds(10));
  require(reasm.bytes() == 0);
  return 0;
}
