// meta/test_names_test.cpp: every test case's name survives catch_discover_tests intact.
//
// ctest runs each TEST_CASE by name. catch_discover_tests passes names through CMake lists, so a
// ';' splits one test into two bogus entries, and '[' ']' '\' change what the name selects (it
// escapes ',' itself); either way ctest runs nothing and reports the test passed. This once hid
// 42 wire tests.
#include <catch2/catch.hpp>

#include <set>
#include <string>

TEST_CASE("test names: none holds a character that breaks ctest discovery", "[meta]") {
  const auto& all = Catch::getRegistryHub().getTestCaseRegistry().getAllTests();
  REQUIRE(all.size() > 100);  // the registry really is the whole suite
  std::set<std::string> seen;
  for (const auto& t : all) {
    INFO("test name: " << t.name);
    CHECK(t.name.find_first_of(";[]\\\n\"") == std::string::npos);
    CHECK(t.name.size() < 200);
    CHECK(seen.insert(t.name).second);
  }
}
