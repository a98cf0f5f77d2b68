# Makefile: thin convenience wrapper around CMake/ctest; CMakeLists.txt is the real build.
#
#   make build      install missing Debian packages, configure + build in build/
#   make test       build, then the whole ctest suite (unit, integration, install_consumer)
#   make demo       build, then ./examples/demo.sh
#   make asan       ASan+UBSan build in build-asan/ and the whole suite there
#   make fuzz       clang libFuzzer build in build-fuzz/ (only if fuzz/ exists)
#   make fuzz-smoke make fuzz, then every fuzz target for FUZZ_SECONDS seconds
#   make install    build, then install into PREFIX (default /usr/local)
#   make format     clang-format every C++ file in place
#   make clean      remove build/, build-asan/, build-fuzz/
#
# Variables: CMAKE_FLAGS (extra -D... for every configure; CI passes -DPEERBUS_WERROR=ON),
# BUILD_TYPE, JOBS, CTEST_JOBS, CTEST_FLAGS, PREFIX, FUZZ_SECONDS.

BUILD_DIR    ?= build
ASAN_DIR     ?= build-asan
FUZZ_DIR     ?= build-fuzz
BUILD_TYPE   ?= RelWithDebInfo
CMAKE_FLAGS  ?=
JOBS         ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS   ?= 2
CTEST_FLAGS  ?=
PREFIX       ?= /usr/local
FUZZ_SECONDS ?= 30
CLANGXX      ?= clang++

# Sanitizer runtime settings for the asan target; the environment wins when it sets them.
ASAN_OPTIONS  ?= detect_leaks=1
UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS UBSAN_OPTIONS

DEPS  := ./scripts/deps.sh
CTEST := ctest --output-on-failure -j$(CTEST_JOBS) $(CTEST_FLAGS)

.DEFAULT_GOAL := build
.PHONY: help deps deps-test build test demo asan fuzz fuzz-smoke install format clean

help:
	@sed -n '3,15p' Makefile | sed 's/^# \{0,1\}//'

deps:
	@$(DEPS) build

deps-test:
	@$(DEPS) test

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j$(JOBS)

test: deps-test build
	cd $(BUILD_DIR) && $(CTEST)

demo: deps-test build
	@test -x examples/demo.sh || { echo "examples/demo.sh is missing or not executable" >&2; exit 1; }
	PEERBUS_BIN=$(CURDIR)/$(BUILD_DIR)/bin/peerbus ./examples/demo.sh

# Debug (asserts on) at -O1: the usual sanitizer trade-off between speed and readable stacks.
asan: deps-test
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
	  -DPEERBUS_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_DIR) -j$(JOBS)
	cd $(ASAN_DIR) && $(CTEST)

fuzz:
	@if [ ! -d fuzz ]; then echo "make fuzz: no fuzz/ directory yet, nothing to build"; exit 0; fi; \
	set -e; \
	$(DEPS) fuzz; \
	cmake -S . -B $(FUZZ_DIR) -DCMAKE_CXX_COMPILER=$(CLANGXX) -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DPEERBUS_FUZZ=ON -DPEERBUS_BUILD_TESTS=OFF \
	  -DPEERBUS_BUILD_TOOLS=OFF -DPEERBUS_BUILD_EXAMPLES=OFF -DPEERBUS_INSTALL=OFF $(CMAKE_FLAGS); \
	cmake --build $(FUZZ_DIR) -j$(JOBS)

fuzz-smoke: fuzz
	@if [ ! -d fuzz ]; then echo "make fuzz-smoke: no fuzz/ directory yet, skipped"; exit 0; fi; \
	./scripts/fuzz_smoke.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

install: build
	cmake --install $(BUILD_DIR) --prefix "$(PREFIX)"

format:
	@command -v clang-format >/dev/null || { echo "clang-format not installed" >&2; exit 1; }
	git ls-files -co --exclude-standard -- '*.cpp' '*.hpp' '*.h' | xargs -r clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR)
