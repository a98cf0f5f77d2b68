// main.cpp: the Catch2 v2 main for peerbus_tests (compiled once; test files only include
// catch.hpp).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
