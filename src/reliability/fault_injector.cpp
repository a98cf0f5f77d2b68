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

// "[-]digits[.digits]" (".5" and "1." too), what std::from_chars(chars_format::fixed) reads.
// Read by hand because libstdc++ 12 builds from_chars<double> on strtod and fesetround, and so
// links libm into every program that takes libstdc++ statically (the CLI does: libm mapped for
// that alone is about 250 KiB of an idle process). Up to 15 significant digits and 22 decimals
// it is one correctly rounded division, so exactly the double from_chars gives; longer inputs
// come within an ulp or two.
bool parse_rate(std::string_view text, double& out) {
  const bool negative = !text.empty() && text.front() == '-';
  if (negative) text.remove_prefix(1);
  std::uint64_t mantissa = 0;
  int scale = 0;  // the value is mantissa * 10^scale
  bool digits = false, point = false;
  for (const char c : text) {
    if (c == '.' && !point) {
      point = true;
      continue;
    }
    if (c < '0' || c > '9') return false;
    digits = true;
    if (mantissa < 100000000000000000ull) {  // 10^17: room for one more digit
      mantissa = mantissa * 10 + static_cast<std::uint64_t>(c - '0');
      if (point) --scale;
    } else if (!point) {
      ++scale;
    }
  }
  if (!digits) return false;
  double v = static_cast<double>(mantissa);
  for (; scale > 0 && std::isfinite(v); --scale) v *= 10.0;
  while (scale < 0) {  // 10^k is exact as a double up to k = 22
    const int k = scale < -22 ? 22 : -scale;
    double p = 1.0;
    for (int i = 0; i < k; ++i) p *= 10.0;
    v /= p;
    scale += k;
  }
  // Overflow and underflow fail, as from_chars's result_out_of_range did.
  if (!std::isfinite(v) || (v == 0.0 && mantissa != 0)) return false;
  out = negative ? -v : v;
  return true;
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
