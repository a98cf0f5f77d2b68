// tests/reliability/config_test.cpp: validate() accepts the defaults and names the bad field.
#include "reliability/config.hpp"

#include <catch2/catch.hpp>

using namespace peerbus::detail;
using namespace std::chrono_literals;

TEST_CASE("reliability_config: the defaults are the documented ones", "[reliability]") {
  const reliability_config c;
  CHECK(c.nack_delay_min == 1ms);
  CHECK(c.nack_delay_max == 10ms);
  CHECK(c.nack_retry == 30ms);
  CHECK(c.nack_backoff == 2.0);
  CHECK(c.nack_retry_max == 50ms);
  CHECK(c.nack_max_tries == 60);
  CHECK(c.repair_holdoff == 10ms);
  CHECK(c.send_window_max_count == 131072);
  CHECK(c.send_window_max_bytes == 32u << 20);
  CHECK(c.max_reorder == 131072);
  CHECK(c.max_reorder_bytes == 64u << 20);
  CHECK(c.max_advance == (1u << 22));
  CHECK(c.max_ranges_per_nack == 64);
}

TEST_CASE("seq_range: count and contains", "[reliability]") {
  const seq_range r{5, 9};
  CHECK(r.count() == 5);
  CHECK(r.contains(5));
  CHECK(r.contains(9));
  CHECK_FALSE(r.contains(4));
  CHECK_FALSE(r.contains(10));
  CHECK(r == seq_range{5, 9});
  CHECK(r != seq_range{5, 8});
}

TEST_CASE("reliability_config: validate names the bad field", "[reliability]") {
  CHECK(validate(reliability_config{}).empty());
  reliability_config c;
  c.nack_backoff = 0.5;
  CHECK(validate(c) == "nack_backoff is 0.5; it must be >= 1");
  c = {};
  c.nack_delay_max = 0ms;
  CHECK(validate(c) == "nack_delay_max (0 ms) is below nack_delay_min (1 ms)");
  c = {};
  c.nack_max_tries = 0;
  CHECK(validate(c) == "nack_max_tries is 0; it must be at least 1");
  c = {};
  c.max_reorder_bytes = 0;
  CHECK(validate(c) == "max_reorder_bytes is 0; it must be at least 1");
  c = {};
  c.nack_retry_max = 1ms;
  CHECK(validate(c) == "nack_retry_max (1 ms) is below nack_retry (30 ms)");
  c = {};
  c.nack_retry = 0ms;
  CHECK(validate(c) == "nack_retry is 0 ms; it must be positive");
}
