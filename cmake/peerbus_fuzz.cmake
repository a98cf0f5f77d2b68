# peerbus_fuzz.cmake: targets for fuzz/*.cpp (each file is one target defining LLVMFuzzerTestOneInput).
#
# PEERBUS_FUZZ=ON (clang): libFuzzer executables in <build>/fuzz/<name>; run them with
#   scripts/fuzz_smoke.sh or by hand: build-fuzz/fuzz/<name> -max_total_time=60 fuzz/corpus/<name>
# Otherwise, with tests on: the same sources linked against a plain replay driver
# (cmake/fuzz_replay_main.cpp) and registered as ctest `fuzz_replay.<name>`, which feeds the corpus
# in fuzz/corpus/<name>/ (if any) plus deterministic pseudo-random inputs. That keeps every fuzz
# target compiling with gcc -Werror and its corpus passing in the ordinary test run.
include_guard(GLOBAL)

file(GLOB PEERBUS_FUZZ_SOURCES CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/fuzz/*.cpp")

foreach(_src IN LISTS PEERBUS_FUZZ_SOURCES)
  get_filename_component(_name "${_src}" NAME_WE)
  if(PEERBUS_FUZZ)
    set(_target peerbus_fuzz_${_name})
    add_executable(${_target} "${_src}")
    target_link_options(${_target} PRIVATE -fsanitize=fuzzer)
    set_target_properties(${_target} PROPERTIES
      OUTPUT_NAME ${_name}
      RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/fuzz)
  elseif(PEERBUS_BUILD_TESTS)
    set(_target peerbus_fuzz_replay_${_name})
    add_executable(${_target} "${_src}" "${PROJECT_SOURCE_DIR}/cmake/fuzz_replay_main.cpp")
    set_target_properties(${_target} PROPERTIES
      OUTPUT_NAME ${_name}_replay
      RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/fuzz)
    add_test(NAME fuzz_replay.${_name}
      COMMAND ${_target} "${PROJECT_SOURCE_DIR}/fuzz/corpus/${_name}")
    set_tests_properties(fuzz_replay.${_name} PROPERTIES TIMEOUT 120 LABELS fuzz)
  else()
    continue()
  endif()
  target_include_directories(${_target} PRIVATE
    ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/fuzz)
  target_link_libraries(${_target} PRIVATE peerbus::peerbus PkgConfig::SODIUM)
  peerbus_set_warnings(${_target})
endforeach()
