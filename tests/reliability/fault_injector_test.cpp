// tests/reliability/fault_injector_test.cpp: seeded drops and the "rx=..,tx=..,seed=.." parser.
#include "reliability/fault_injector.hpp"

#include <catch2/catch.hpp>
#include <charconv>
#include <cmath>
#include <random>
#include <string>
#include <vector>

using namespace peerbus::detail;

namespace {

std::vector<bool> decisions(fault_injector f, int n) {
  std::vector<bool> out;
  for (int i = 0; i < n; ++i) out.push_back(f.drop());
  return out;
}

std::string parse_error(std::string_view spec) {
  std::string error;
  auto cfg = fault_injector::parse(spec, error);
  CHECK_FALSE(cfg);
  return error;
}

}  // namespace

TEST_CASE("fault_injector: rate 0 never drops, rate 1 always drops", "[reliability]") {
  fault_injector none(0.0, 1);
  fault_injector all(1.0, 1);
  fault_injector by_default;
  for (int i = 0; i < 1000; ++i) {
    CHECK_FALSE(none.drop());
    CHECK(all.drop());
    CHECK_FALSE(by_default.drop());
  }
  CHECK(none.dropped() == 0);
  CHECK(none.passed() == 1000);
  CHECK(all.dropped() == 1000);
  CHECK(all.passed() == 0);
}

TEST_CASE("fault_injector: out-of-range rates are clamped", "[reliability]") {
  CHECK(fault_injector(-0.5, 1).rate() == 0.0);
  CHECK(fault_injector(7.0, 1).rate() == 1.0);
  CHECK(fault_injector(std::nan(""), 1).rate() == 0.0);
}

TEST_CASE("fault_injector: drops the given fraction", "[reliability]") {
  for (double rate : {0.01, 0.1, 0.3, 0.5, 0.9}) {
    fault_injector f(rate, 12345);
    const int n = 200000;
    for (int i = 0; i < n; ++i) f.drop();
    CHECK(f.dropped() + f.passed() == static_cast<std::uint64_t>(n));
    const double observed = static_cast<double>(f.dropped()) / n;
    CHECK(observed == Approx(rate).margin(0.005));
  }
}

TEST_CASE("fault_injector: the same seed replays the same drops", "[reliability]") {
  CHECK(decisions(fault_injector(0.3, 42), 500) == decisions(fault_injector(0.3, 42), 500));
  CHECK(decisions(fault_injector(0.3, 42), 500) != decisions(fault_injector(0.3, 43), 500));
}

TEST_CASE("fault_injector: rx and tx of one config draw independently", "[reliability]") {
  fault_config cfg;
  cfg.rx_drop = 0.5;
  cfg.tx_drop = 0.5;
  cfg.seed = 9;
  auto rx = fault_injector::for_rx(cfg);
  auto tx = fault_injector::for_tx(cfg);
  CHECK(rx.rate() == 0.5);
  CHECK(tx.rate() == 0.5);
  CHECK(decisions(rx, 500) != decisions(tx, 500));
  CHECK(decisions(fault_injector::for_rx(cfg), 100) == decisions(fault_injector(0.5, 9), 100));
}

TEST_CASE("fault_injector: parse accepts the documented forms", "[reliability]") {
  std::string error;
  SECTION("all three") {
    auto cfg = fault_injector::parse("rx=0.1,tx=0.05,seed=42", error);
    REQUIRE(cfg);
    CHECK(cfg->rx_drop == 0.1);
    CHECK(cfg->tx_drop == 0.05);
    CHECK(cfg->seed == 42);
    CHECK(cfg->active());
  }
  SECTION("any order, any subset, spaces, trailing comma") {
    auto cfg = fault_injector::parse(" seed = 7 , rx=1 ,", error);
    REQUIRE(cfg);
    CHECK(cfg->rx_drop == 1.0);
    CHECK(cfg->tx_drop == 0.0);
    CHECK(cfg->seed == 7);
  }
  SECTION("empty spec means no faults, default seed") {
    auto cfg = fault_injector::parse("", error);
    REQUIRE(cfg);
    CHECK_FALSE(cfg->active());
    CHECK(cfg->seed == 1);
  }
  SECTION("bounds are included") {
    auto cfg = fault_injector::parse("rx=0,tx=1.0,seed=18446744073709551615", error);
    REQUIRE(cfg);
    CHECK(cfg->rx_drop == 0.0);
    CHECK(cfg->tx_drop == 1.0);
    CHECK(cfg->seed == 18446744073709551615ull);
  }
}

TEST_CASE("fault_injector: parse names the bad part", "[reliability]") {
  CHECK(parse_error("rx=1.5") == "fault spec item 'rx=1.5': rate must be between 0 and 1");
  CHECK(parse_error("rx=0.1,tx=-0.2") == "fault spec item 'tx=-0.2': rate must be between 0 and 1");
  CHECK(parse_error("rx=abc") == "fault spec item 'rx=abc': 'abc' is not a decimal number");
  CHECK(parse_error("rx=") == "fault spec item 'rx=': '' is not a decimal number");
  CHECK(parse_error("rx=0.1x") == "fault spec item 'rx=0.1x': '0.1x' is not a decimal number");
  CHECK(parse_error("rx=nan") == "fault spec item 'rx=nan': 'nan' is not a decimal number");
  CHECK(parse_error("rx=0.1,drop=0.2") ==
        "fault spec item 'drop=0.2': unknown key 'drop' (expected rx, tx or seed)");
  CHECK(parse_error("rx0.1") ==
        "fault spec item 'rx0.1' has no '=' (expected rx=R, tx=R or seed=N)");
  CHECK(parse_error("seed=-1") ==
        "fault spec item 'seed=-1': seed must be an unsigned 64-bit integer");
  CHECK(parse_error("seed=18446744073709551616") ==
        "fault spec item 'seed=18446744073709551616': seed must be an unsigned 64-bit integer");
  CHECK(parse_error("seed=") == "fault spec item 'seed=': seed must be an unsigned 64-bit integer");
  CHECK(parse_error("rx=0.1,rx=0.2") == "fault spec gives rx twice");
  CHECK(parse_error("seed=1,seed=2") == "fault spec gives seed twice");
}

TEST_CASE("fault_injector: rates read as std::from_chars reads them", "[reliability]") {
  // The parser is hand-written (no from_chars<double>, which drags libm into a static link):
  // it must give the very double from_chars gives for the rates people write.
  auto rate = [](const std::string& text) {
    std::string error;
    auto cfg = fault_injector::parse("rx=" + text, error);
    INFO(text << ": " << error);
    REQUIRE(cfg);
    return cfg->rx_drop;
  };
  auto reference = [](const std::string& text) {
    double v = -1;
    auto r = std::from_chars(text.data(), text.data() + text.size(), v, std::chars_format::fixed);
    REQUIRE(r.ec == std::errc());
    REQUIRE(r.ptr == text.data() + text.size());
    return v;
  };
  for (const char* text :
       {"0", "1", "1.", ".5", "0.5", "0.1", "0.05", "0.125", "0.3333333333333333", "0.000001",
        "0.999999999999999", "00.25", "1.000", "0.0000000000000000000001"})
    CHECK(rate(text) == reference(text));
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string text = "0.";
    const int digits = 1 + static_cast<int>(rng() % 15);
    for (int d = 0; d < digits; ++d) text += static_cast<char>('0' + rng() % 10);
    CHECK(rate(text) == reference(text));
  }
  CHECK(rate("-0") == 0.0);
  CHECK(parse_error("rx=+0.5") == "fault spec item 'rx=+0.5': '+0.5' is not a decimal number");
  CHECK(parse_error("rx=.") == "fault spec item 'rx=.': '.' is not a decimal number");
  CHECK(parse_error("rx=0.1.2") == "fault spec item 'rx=0.1.2': '0.1.2' is not a decimal number");
  CHECK(parse_error("rx=1e-3") == "fault spec item 'rx=1e-3': '1e-3' is not a decimal number");
  CHECK(parse_error("rx=-") == "fault spec item 'rx=-': '-' is not a decimal number");
  CHECK(parse_error("rx=12345678901234567890123") ==
        "fault spec item 'rx=12345678901234567890123': rate must be between 0 and 1");
}
