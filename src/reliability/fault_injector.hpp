// reliability/fault_injector.hpp: seeded random datagram drops for tests, and their spec parser.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace peerbus::detail {

/// Parsed form of a fault spec such as $PEERBUS_FAULTS="rx=0.1,tx=0.05,seed=42".
struct fault_config {
  double rx_drop = 0.0;    ///< fraction of received datagrams dropped, in [0, 1]; default 0
  double tx_drop = 0.0;    ///< fraction of datagrams to send dropped, in [0, 1]; default 0
  std::uint64_t seed = 1;  ///< seed of both injectors; default 1 (options::fault_seed)

  bool active() const noexcept { return rx_drop > 0.0 || tx_drop > 0.0; }
};

/// Drops a fixed fraction of datagrams, chosen by a seeded generator so that a run can be
/// replayed exactly. One injector per direction (see for_rx / for_tx).
///
///     auto rx = fault_injector::for_rx(cfg);
///     if (rx.drop()) { ++stats.dropped[injected]; return; }
///
/// Not thread-safe: each injector belongs to the one path (receive or send) that calls it.
class fault_injector {
 public:
  /// Never drops.
  fault_injector() noexcept : fault_injector(0.0, 0) {}
  /// drop_rate is clamped to [0, 1] (NaN counts as 0). The same rate and seed give the same
  /// sequence of decisions on every platform.
  fault_injector(double drop_rate, std::uint64_t seed) noexcept;

  /// Injectors for each direction of a config. The two draw from different seeds derived from
  /// cfg.seed, so rx and tx drops are independent rather than mirror images.
  static fault_injector for_rx(const fault_config& cfg) noexcept;
  static fault_injector for_tx(const fault_config& cfg) noexcept;

  /// True (drop this datagram) with probability rate(). A rate of 0 draws nothing and costs a
  /// compare.
  bool drop() noexcept;

  double rate() const noexcept { return rate_; }
  std::uint64_t dropped() const noexcept { return dropped_; }
  std::uint64_t passed() const noexcept { return passed_; }

  /// Parses "rx=R,tx=R,seed=N" (any subset, any order, spaces around items allowed; empty spec
  /// = no faults). Rates are decimal numbers in [0, 1]; seed a decimal unsigned 64-bit integer.
  /// On a bad spec returns nullopt and sets `error` to a sentence naming the bad part, e.g.
  /// "fault spec item 'rx=1.5': rate must be between 0 and 1".
  static std::optional<fault_config> parse(std::string_view spec, std::string& error);

 private:
  std::mt19937_64 rng_;
  double rate_;
  std::uint64_t dropped_ = 0;
  std::uint64_t passed_ = 0;
};

}  // namespace peerbus::detail
