// reliability/fault_injector.cpp: seeded drop decisions and the fault spec parser.
#include "reliability/fault_injector.hpp"

#include <charconv>
#include <cmath>

namespace peerbus::detail {

namespace {

// Golden-ratio increment (as in splitmix64): any fixed odd constant would do, it only has to
// turn one seed into two unrelated ones.
constexpr std::uint64_t tx_seed_offset = 0x9e3779b97f4a7c15ull;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

bool parse_rate(std::string_view text, double& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out, std::chars_format::fixed);
  return ec == std::errc() && ptr == end && std::isfinite(out);
}

}  // namespace

fault_injector::fault_injector(double drop_rate, std::uint64_t seed) noexcept
    : rng_(seed), rate_(drop_rate >= 0.0 ? (drop_rate <= 1.0 ? drop_rate : 1.0) : 0.0) {}

fault_injector fault_injector::for_rx(const fault_config& cfg) noexcept {
  return fault_injector(cfg.rx_drop, cfg.seed);
}

fault_injector fault_injector::for_tx(const fault_config& cfg) noexcept {
  return fault_injector(cfg.tx_drop, cfg.seed + tx_seed_offset);
}

bool fault_injector::drop() noexcept {
  if (rate_ <= 0.0) {
    ++passed_;
    return false;
  }
  // 53 random bits as a double in [0, 1): unlike std::uniform_real_distribution, identical on
  // every standard library, so a seed replays the same drops everywhere.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  if (u < rate_) {
    ++dropped_;
    return true;
  }
  ++passed_;
  return false;
}

std::optional<fault_config> fault_injector::parse(std::string_view spec, std::string& error) {
  fault_config cfg;
  bool seen_rx = false, seen_tx = false, seen_seed = false;
  while (!spec.empty()) {
    const std::size_t comma = spec.find(',');
    const std::string_view item = trim(spec.substr(0, comma));
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (item.empty()) continue;  // "rx=0.1," is harmless

    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      error = "fault spec item " + quoted(item) + " has no '=' (expected rx=R, tx=R or seed=N)";
      return std::nullopt;
    }
    const std::string_view key = trim(item.substr(0, eq));
    const std::string_view value = trim(item.substr(eq + 1));
    if (key == "rx" || key == "tx") {
      bool& seen = key == "rx" ? seen_rx : seen_tx;
      if (seen) {
        error = "fault spec gives " + std::string(key) + " twice";
        return std::nullopt;
      }
      seen = true;
      double rate = 0.0;
      if (!parse_rate(value, rate)) {
        error =
            "fault spec item " + quoted(item) + ": " + quoted(value) + " is not a decimal number";
        return std::nullopt;
      }
      if (rate < 0.0 || rate > 1.0) {
        error = "fault spec item " + quoted(item) + ": rate must be between 0 and 1";
        return std::nullopt;
      }
      (key == "rx" ? cfg.rx_drop : cfg.tx_drop) = rate;
    } else if (key == "seed") {
      if (seen_seed) {
        error = "fault spec gives seed twice";
        return std::nullopt;
      }
      seen_seed = true;
      const char* end = value.data() + value.size();
      auto [ptr, ec] = std::from_chars(value.data(), end, cfg.seed);
      if (value.empty() || ec != std::errc() || ptr != end) {
        error = "fault spec item " + quoted(item) + ": seed must be an unsigned 64-bit integer";
        return std::nullopt;
      }
    } else {
      error = "fault spec item " + quoted(item) + ": unknown key " + quoted(key) +
              " (expected rx, tx or seed)";
      return std::nullopt;
    }
  }
  return cfg;
}

}  // namespace peerbus::detail
