#!/usr/bin/env bash
# consumer_test.sh: installs a peerbus build into a scratch prefix and uses it like a stranger would:
# find_package(peerbus) from tests/consumer, pkg-config, and every public header on its own.
# Run by ctest as `install_consumer` (see tests/CMakeLists.txt); usable by hand with the same flags.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: consumer_test.sh --build-dir DIR --work-dir DIR --consumer-src DIR [--config CFG]
                        [--cxx COMPILER] [--generator GEN] [--expect-version X.Y.Z]
                        [--library-type STATIC_LIBRARY|SHARED_LIBRARY] [--extra-flags "FLAGS"]
USAGE
  exit 2
}

build_dir='' work_dir='' consumer_src='' config='' cxx=c++ generator='' expect_version=''
library_type=STATIC_LIBRARY extra_flags=''
while (($#)); do
  [[ $# -ge 2 ]] || usage
  case "$1" in
    --build-dir) build_dir=$2 ;;
    --work-dir) work_dir=$2 ;;
    --consumer-src) consumer_src=$2 ;;
    --config) config=$2 ;;
    --cxx) cxx=$2 ;;
    --generator) generator=$2 ;;
    --expect-version) expect_version=$2 ;;
    --library-type) library_type=$2 ;;
    --extra-flags) extra_flags=$2 ;;
    *) usage ;;
  esac
  shift 2
done
[[ -n $build_dir && -n $work_dir && -n $consumer_src ]] || usage

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

prefix=$work_dir/prefix
consumer_build=$work_dir/consumer-build
rm -rf -- "$work_dir"
mkdir -p -- "$work_dir"

# The sanitizer build's libpeerbus.a needs the sanitizer runtimes at link time; pass its flags on.
read -r -a extra <<<"$extra_flags"

step "install $build_dir into $prefix"
install_cmd=(cmake --install "$build_dir" --prefix "$prefix")
[[ -n $config ]] && install_cmd+=(--config "$config")
"${install_cmd[@]}" >"$work_dir/install.log" || { cat "$work_dir/install.log"; fail "cmake --install"; }
echo "installed $(wc -l <"$work_dir/install.log") files"

config_file=$(find "$prefix" -name peerbus-config.cmake -print -quit)
[[ -n $config_file ]] || fail "no peerbus-config.cmake under $prefix"
pc_file=$(find "$prefix" -name peerbus.pc -print -quit)
[[ -n $pc_file ]] || fail "no peerbus.pc under $prefix"

step "configure and build tests/consumer with find_package(peerbus)"
configure=(cmake -S "$consumer_src" -B "$consumer_build"
  -DCMAKE_PREFIX_PATH="$prefix"
  -DCMAKE_CXX_COMPILER="$cxx"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_CXX_FLAGS="$extra_flags"
  -DCMAKE_EXE_LINKER_FLAGS="$extra_flags")
[[ -n $generator ]] && configure+=(-G "$generator")
[[ -n $config ]] && configure+=(-DCMAKE_BUILD_TYPE="$config")
"${configure[@]}"
found_dir=$(sed -n 's/^peerbus_DIR:[A-Z]*=//p' "$consumer_build/CMakeCache.txt")
[[ $found_dir == "$prefix"/* ]] || fail "consumer found peerbus in '$found_dir', not in $prefix"
build=(cmake --build "$consumer_build")
[[ -n $config ]] && build+=(--config "$config")
"${build[@]}"

consumer_bin=$(find "$consumer_build" -type f -name consumer -perm -u+x -print -quit)
[[ -n $consumer_bin ]] || fail "consumer executable not built"
output=$("$consumer_bin")
echo "consumer says: $output"
if [[ -n $expect_version && $output != *"$expect_version"* ]]; then
  fail "consumer printed '$output', expected it to contain version $expect_version"
fi

step "pkg-config (PKG_CONFIG_PATH=$(dirname "$pc_file"))"
command -v pkg-config >/dev/null || fail "pkg-config not installed"
PKG_CONFIG_PATH=$(dirname "$pc_file")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
pkg-config --cflags --libs peerbus || fail "pkg-config --cflags --libs peerbus"
pc_version=$(pkg-config --modversion peerbus)
if [[ -n $expect_version && $pc_version != "$expect_version" ]]; then
  fail "pkg-config says version $pc_version, expected $expect_version"
fi
read -r -a pc_cflags <<<"$(pkg-config --cflags peerbus)"
# A static libpeerbus.a needs its Requires.private (libsodium) on the link line: --static.
if [[ $library_type == STATIC_LIBRARY ]]; then
  read -r -a pc_libs <<<"$(pkg-config --static --libs peerbus)"
else
  read -r -a pc_libs <<<"$(pkg-config --libs peerbus)"
  pc_libs+=("-Wl,-rpath,$(pkg-config --variable=libdir peerbus)")
fi
echo "link line: ${pc_libs[*]}"
"$cxx" -std=c++17 "${extra[@]}" "${pc_cflags[@]}" "$consumer_src/main.cpp" \
  -o "$work_dir/consumer-pkgconfig" "${pc_libs[@]}" || fail "compile/link via pkg-config"
output=$("$work_dir/consumer-pkgconfig")
echo "pkg-config consumer says: $output"
if [[ -n $expect_version && $output != *"$expect_version"* ]]; then
  fail "pkg-config consumer printed '$output', expected version $expect_version"
fi

step "every installed public header compiles on its own"
include_dir=$(pkg-config --variable=includedir peerbus)
count=0
while IFS= read -r -d '' header; do
  rel=${header#"$include_dir"/}
  printf '#include <%s>\n' "$rel" |
    "$cxx" -std=c++17 -Wall -Wextra -Wpedantic "${pc_cflags[@]}" -fsyntax-only -x c++ - ||
    fail "<$rel> does not compile on its own (does it include a src/ header or miss an #include?)"
  count=$((count + 1))
done < <(find "$include_dir/peerbus" -name '*.hpp' -print0 | sort -z)
((count > 0)) || fail "no headers installed under $include_dir/peerbus"
echo "$count headers OK"

if [[ -x $prefix/bin/peerbus ]]; then
  step "installed CLI runs"
  "$prefix/bin/peerbus" --help >/dev/null || fail "$prefix/bin/peerbus --help failed"
  echo "$prefix/bin/peerbus --help OK"
fi

printf '\ninstall_consumer: PASS\n'
