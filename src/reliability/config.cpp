// reliability/config.cpp: validation of reliability_config.
#include "reliability/config.hpp"

#include <cmath>
#include <cstdio>

namespace peerbus::detail {

namespace {

// "%g" keeps messages short: "0.5 ms", "30 ms", "0.5" rather than "0.500000".
std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string ms(rel_clock::duration d) {
  return number(std::chrono::duration<double, std::milli>(d).count()) + " ms";
}

}  // namespace

std::string validate(const reliability_config& cfg) {
  if (cfg.nack_delay_min < rel_clock::duration::zero())
    return "nack_delay_min is " + ms(cfg.nack_delay_min) + "; it must not be negative";
  if (cfg.nack_delay_max < cfg.nack_delay_min)
    return "nack_delay_max (" + ms(cfg.nack_delay_max) + ") is below nack_delay_min (" +
           ms(cfg.nack_delay_min) + ")";
  if (cfg.nack_retry <= rel_clock::duration::zero())
    return "nack_retry is " + ms(cfg.nack_retry) + "; it must be positive";
  if (!(cfg.nack_backoff >= 1.0) || !std::isfinite(cfg.nack_backoff))
    return "nack_backoff is " + number(cfg.nack_backoff) + "; it must be >= 1";
  if (cfg.nack_retry_max < cfg.nack_retry)
    return "nack_retry_max (" + ms(cfg.nack_retry_max) + ") is below nack_retry (" +
           ms(cfg.nack_retry) + ")";
  if (cfg.nack_max_tries == 0) return "nack_max_tries is 0; it must be at least 1";
  if (cfg.repair_holdoff < rel_clock::duration::zero())
    return "repair_holdoff is " + ms(cfg.repair_holdoff) + "; it must not be negative";
  if (cfg.send_window_max_count == 0) return "send_window_max_count is 0; it must be at least 1";
  if (cfg.send_window_max_bytes == 0) return "send_window_max_bytes is 0; it must be at least 1";
  if (cfg.max_reorder == 0) return "max_reorder is 0; it must be at least 1";
  if (cfg.max_reorder_bytes == 0) return "max_reorder_bytes is 0; it must be at least 1";
  if (cfg.max_advance == 0) return "max_advance is 0; it must be at least 1";
  if (cfg.max_ranges_per_nack == 0) return "max_ranges_per_nack is 0; it must be at least 1";
  return {};
}

}  // namespace peerbus::detail
