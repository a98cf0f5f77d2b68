// main.cpp: prints the installed peerbus's version, proving headers, library and deps all link.
#include <cstdio>
#include <peerbus/version.hpp>

int main() {
  std::printf("peerbus %s\n", peerbus::version_string());
  return 0;
}
