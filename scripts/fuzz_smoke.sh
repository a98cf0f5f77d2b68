#!/usr/bin/env bash
# fuzz_smoke.sh: runs every libFuzzer target of a PEERBUS_FUZZ build for a short, fixed time.
#
# usage: scripts/fuzz_smoke.sh [BUILD_DIR] [SECONDS]     (defaults: build-fuzz 30)
# Seeds from fuzz/corpus/<name>/ and uses fuzz/<name>.dict when they exist; new inputs go to
# BUILD_DIR/fuzz-corpus/<name>/ and crash reproducers to BUILD_DIR/fuzz-artifacts/. Exits non-zero
# on the first target that crashes, leaks or times out.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-build-fuzz}
seconds=${2:-30}
fuzz_bin_dir=$build_dir/fuzz

shopt -s nullglob
targets=()
for bin in "$fuzz_bin_dir"/*; do
  [[ -f $bin && -x $bin ]] && targets+=("$bin")
done
if ((${#targets[@]} == 0)); then
  echo "fuzz_smoke: no fuzz targets in $fuzz_bin_dir (configure with -DPEERBUS_FUZZ=ON)" >&2
  exit 1
fi

mkdir -p "$build_dir/fuzz-artifacts"
for bin in "${targets[@]}"; do
  name=$(basename "$bin")
  work_corpus=$build_dir/fuzz-corpus/$name
  mkdir -p "$work_corpus"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$build_dir/fuzz-artifacts/$name-")
  [[ -f $root/fuzz/$name.dict ]] && args+=(-dict="$root/fuzz/$name.dict")
  corpora=("$work_corpus")
  [[ -d $root/fuzz/corpus/$name ]] && corpora+=("$root/fuzz/corpus/$name")

  echo "== fuzz $name for ${seconds}s"
  if ! "$bin" "${args[@]}" "${corpora[@]}" 2>"$build_dir/fuzz-artifacts/$name.log"; then
    tail -n 60 "$build_dir/fuzz-artifacts/$name.log" >&2
    echo "fuzz_smoke: $name FAILED; reproducer(s) in $build_dir/fuzz-artifacts/ (full log: $name.log)" >&2
    exit 1
  fi
  grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$build_dir/fuzz-artifacts/$name.log" || true
done
echo "fuzz_smoke: ${#targets[@]} target(s) OK"
