# asio.cmake: the asio::asio target for standalone Asio (Debian's libasio-dev ships no CMake package).
#
# Included by peerbus's own build and, installed as peerbus-asio.cmake, by peerbus-config.cmake so
# that consumers of the exported peerbus::peerbus target get the same asio::asio.
#
# In:  PEERBUS_ASIO_GLOBAL (optional) make the imported target GLOBAL (peerbus's own build does).
#      ASIO_INCLUDE_DIR    (cache, optional) where asio.hpp lives; found automatically otherwise.
# Out: target asio::asio (INTERFACE IMPORTED: include dir, ASIO_STANDALONE, ASIO_NO_DEPRECATED,
#      Threads::Threads) when asio.hpp is found; PEERBUS_ASIO_FOUND TRUE/FALSE; ASIO_VERSION.
#
# No include_guard(): an imported target is visible only in the directory that created it, so a
# second include from another directory must be able to create it again.

set(PEERBUS_ASIO_FOUND FALSE)
if(TARGET asio::asio)
  set(PEERBUS_ASIO_FOUND TRUE)
  return()
endif()

find_path(ASIO_INCLUDE_DIR
  NAMES asio.hpp
  DOC "Directory holding standalone Asio's asio.hpp (Debian: libasio-dev)")
if(NOT ASIO_INCLUDE_DIR)
  return()
endif()

# ASIO_VERSION is XXYYZZ in asio/version.hpp; turn it into X.Y.Z for messages.
set(ASIO_VERSION "")
if(EXISTS "${ASIO_INCLUDE_DIR}/asio/version.hpp")
  file(STRINGS "${ASIO_INCLUDE_DIR}/asio/version.hpp" _peerbus_asio_line
       REGEX "^#[ \t]*define[ \t]+ASIO_VERSION[ \t]+[0-9]+")
  if(_peerbus_asio_line MATCHES "ASIO_VERSION[ \t]+([0-9]+)")
    math(EXPR _peerbus_asio_major "${CMAKE_MATCH_1} / 100000")
    math(EXPR _peerbus_asio_minor "${CMAKE_MATCH_1} / 100 % 1000")
    math(EXPR _peerbus_asio_patch "${CMAKE_MATCH_1} % 100")
    set(ASIO_VERSION "${_peerbus_asio_major}.${_peerbus_asio_minor}.${_peerbus_asio_patch}")
  endif()
  unset(_peerbus_asio_line)
  unset(_peerbus_asio_major)
  unset(_peerbus_asio_minor)
  unset(_peerbus_asio_patch)
endif()

if(NOT TARGET Threads::Threads)
  set(THREADS_PREFER_PTHREAD_FLAG ON)
  find_package(Threads QUIET)
  if(NOT TARGET Threads::Threads)
    return()
  endif()
endif()

if(PEERBUS_ASIO_GLOBAL)
  add_library(asio::asio INTERFACE IMPORTED GLOBAL)
else()
  add_library(asio::asio INTERFACE IMPORTED)
endif()
set_target_properties(asio::asio PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${ASIO_INCLUDE_DIR}"
  INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE;ASIO_NO_DEPRECATED"
  INTERFACE_LINK_LIBRARIES Threads::Threads)
set(PEERBUS_ASIO_FOUND TRUE)
