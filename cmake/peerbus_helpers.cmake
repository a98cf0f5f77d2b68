# peerbus_helpers.cmake: small functions shared by the top-level, tests/ and fuzz CMake files.
include_guard(GLOBAL)

# peerbus_set_warnings(<target>): high warnings, errors with PEERBUS_WERROR. A function and not an
# INTERFACE target so nothing warning-related ends up in the exported link interface.
function(peerbus_set_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 $<$<BOOL:${PEERBUS_WERROR}>:/WX>)
  else()
    target_compile_options(${target} PRIVATE
      -Wall -Wextra -Wpedantic $<$<BOOL:${PEERBUS_WERROR}>:-Werror>)
    # GCC's flow analysis sees through sanitizer instrumentation badly and reports uninitialized
    # reads that are not there (std::function inside std::regex, for one); the plain build keeps
    # the warning.
    if(PEERBUS_SANITIZER_FLAGS AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
  endif()
endfunction()
