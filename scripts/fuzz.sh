#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang++ (AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs each for a bounded time, failing on any crash, sanitizer report, leak, timeout or
# oversized allocation.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     SECONDS per target (default 60); targets: npy safetensors models
#
# Environment: CXX_FUZZ (default clang++), FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (default 1).
# Each run starts from the committed seeds in fuzz/corpus/<target>/ plus what earlier runs found
# (kept in $FUZZ_BUILD_DIR/corpus/<target>/, never in the repository). A failing input is saved as
# $FUZZ_BUILD_DIR/artifacts/<target>-crash-* (or leak-*, oom-*, timeout-*); add it to tests/io as
# a regression test. Needs clang with compiler-rt (Debian: clang, libclang-rt-dev) and
# nlohmann-json3-dev.
set -euo pipefail

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(npy safetensors models)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cxx=${CXX_FUZZ:-clang++}
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-1}
mkdir -p "$build/artifacts"

if ! command -v "$cxx" >/dev/null; then
  echo "fuzz: $cxx not found (apt-get install clang libclang-rt-dev)" >&2
  exit 1
fi
eigen_flags=$(pkg-config --cflags eigen3 2>/dev/null || echo "-I/usr/include/eigen3")

status=0
for target in "${targets[@]}"; do
  src="$root/fuzz/${target}_fuzz.cpp"
  [ -f "$src" ] || { echo "fuzz: no target '$target' ($src)" >&2; exit 1; }
  exe="$build/${target}_fuzz"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root/include" $eigen_flags "$src" -o "$exe"
  echo "fuzz: built $target in $(( $(date +%s) - start )) s"

  corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  dict=()
  [ -f "$root/fuzz/$target.dict" ] && dict=(-dict="$root/fuzz/$target.dict")
  log="$build/$target.log"
  # -malloc_limit_mb: no single allocation may exceed 256 MB on inputs of at most 64 KiB.
  parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  # Run inside the build directory: libFuzzer writes its per-job logs to the working directory.
  if (cd "$build" && "$exe" "$corpus" "$root/fuzz/corpus/$target" "${dict[@]}" "${parallel[@]}" \
       -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
       -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-") >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
    echo "fuzz: $target ran ${seconds} s, $runs executions, no crash (log: $log)"
  else
    echo "fuzz: $target FAILED, see $log and $build/artifacts/:" >&2
    grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -20 >&2 || tail -20 "$log" >&2
    status=1
  fi
done
exit $status
