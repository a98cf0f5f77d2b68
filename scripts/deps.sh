#!/usr/bin/env bash
# deps.sh: makes sure the Debian packages peerbus needs are installed; silent when they all are.
#
# usage: scripts/deps.sh [--check] [build|test|fuzz]
#   build  compilers, CMake and the libraries (default)
#   test   build + what the test suite and demo use (iproute2, iptables, tmux); clang is tried
#          too but only warned about when it cannot be installed (it is for `make fuzz`)
#   fuzz   build + clang, required
#   --check  only report what is missing (exit 1 if anything is), never install
#
# Missing packages are installed with apt-get as root, or through `sudo -n` when that works
# without a password; otherwise it exits 1 and prints the exact command to run. Never prompts.
set -euo pipefail

build_pkgs=(cmake g++ make pkg-config libasio-dev nlohmann-json3-dev libfmt-dev catch2
  libsodium-dev libcli11-dev libncurses-dev python3)
test_pkgs=(iproute2 iptables tmux)

check_only=0
mode=build
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    build | test | fuzz) mode=$arg ;;
    -h | --help)
      sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "deps.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

required=("${build_pkgs[@]}")
optional=()
case "$mode" in
  test) required+=("${test_pkgs[@]}") optional+=(clang libclang-rt-dev) ;;
  fuzz) required+=(clang libclang-rt-dev) ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps.sh: warning: dpkg-query not found (not Debian/Ubuntu?); cannot check packages." >&2
  echo "deps.sh: peerbus needs the equivalents of: ${required[*]} ${optional[*]}" >&2
  exit 0
fi

is_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

missing=()
for pkg in "${required[@]}"; do is_installed "$pkg" || missing+=("$pkg"); done
missing_optional=()
for pkg in "${optional[@]}"; do is_installed "$pkg" || missing_optional+=("$pkg"); done

((${#missing[@]} + ${#missing_optional[@]} == 0)) && exit 0

install_hint() {
  echo "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $*"
}

if ((check_only)); then
  ((${#missing_optional[@]})) && echo "deps.sh: optional packages missing: ${missing_optional[*]}" >&2
  if ((${#missing[@]})); then
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "deps.sh: install them with: $(install_hint "${missing[@]}")" >&2
    exit 1
  fi
  exit 0
fi

# How to become root without asking anyone anything.
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true </dev/null >/dev/null 2>&1; then
  as_root=(sudo -n)
else
  if ((${#missing[@]})); then
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "deps.sh: not root and no password-less sudo; run this, then retry:" >&2
    echo "  $(install_hint "${missing[@]}" "${missing_optional[@]}")" >&2
    exit 1
  fi
  echo "deps.sh: warning: optional packages missing (needed only for make fuzz): ${missing_optional[*]}" >&2
  echo "deps.sh: to install: $(install_hint "${missing_optional[@]}")" >&2
  exit 0
fi

apt_get() {
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null
}

to_install=("${missing[@]}" "${missing_optional[@]}")
echo "deps.sh: installing: ${to_install[*]}" >&2
apt_get update >/dev/null || echo "deps.sh: warning: apt-get update failed; trying anyway" >&2

if ((${#missing[@]})); then
  if ! apt_get install --no-install-recommends "${missing[@]}"; then
    echo "deps.sh: apt-get install failed; run by hand: $(install_hint "${missing[@]}")" >&2
    exit 1
  fi
fi
for pkg in "${missing_optional[@]}"; do
  apt_get install --no-install-recommends "$pkg" ||
    echo "deps.sh: warning: could not install optional package $pkg (needed only for make fuzz)" >&2
done
exit 0
