#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang++ (AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs each for a bounded time, failing on any crash, sanitizer report, leak, timeout or
# oversized allocation.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     SECONDS per target (default 60);
#                                             targets: npy safetensors models validation
#
# Environment: CXX_FUZZ (default clang++), FUZZ_BUILD_DIR (default build-fuzz), FUZZ_PARALLEL (how
# many targets build and run at once, default: the number of cores, at most 4).
# Each run starts from the committed seeds in fuzz/corpus/<target>/ plus what earlier runs found
# (kept in $FUZZ_BUILD_DIR/corpus/<target>/, never in the repository). A failing input is saved as
# $FUZZ_BUILD_DIR/artifacts/<target>-crash-* (or leak-*, oom-*, timeout-*); add it to the tests as
# a regression test (tests/io/regressions.cpp replays every committed seed). Needs clang with
# compiler-rt (Debian: clang, libclang-rt-dev) and nlohmann-json3-dev.
set -euo pipefail

seconds=${1:-60}
shift || true
targets=("$@")
# Longest build first (validation about 2 minutes, npy a few seconds): each target is built and then
# run while the other cores build and run the rest.
[ ${#targets[@]} -eq 0 ] && targets=(validation models safetensors npy)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cxx=${CXX_FUZZ:-clang++}
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
cores=$(nproc)
parallel=${FUZZ_PARALLEL:-$(( cores < 4 ? cores : 4 ))}
mkdir -p "$build/artifacts"

if ! command -v "$cxx" >/dev/null; then
  echo "fuzz: $cxx not found (apt-get install clang libclang-rt-dev)" >&2
  exit 1
fi
eigen_flags=$(pkg-config --cflags eigen3 2>/dev/null || echo "-I/usr/include/eigen3")
for target in "${targets[@]}"; do
  [ -f "$root/fuzz/${target}_fuzz.cpp" ] || { echo "fuzz: no target '$target'" >&2; exit 1; }
done

build_target() {
  local target=$1 start
  start=$(date +%s)
  # shellcheck disable=SC2086
  # -gline-tables-only: file and line in the sanitizers' stack traces, at 15% less build time than -g.
  "$cxx" -std=c++20 -O1 -gline-tables-only -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root/include" $eigen_flags "$root/fuzz/${target}_fuzz.cpp" -o "$build/${target}_fuzz" \
    2>"$build/$target.build.log" || { cat "$build/$target.build.log" >&2; return 1; }
  echo "fuzz: built $target in $(( $(date +%s) - start )) s"
}

run_target() {
  local target=$1 corpus="$build/corpus/$1" log="$build/$1.log" dict=() runs
  mkdir -p "$corpus"
  [ -f "$root/fuzz/$target.dict" ] && dict=(-dict="$root/fuzz/$target.dict")
  # -malloc_limit_mb: no single allocation may exceed 256 MB on inputs of at most 64 KiB.
  # Run inside the build directory: libFuzzer may write logs to the working directory.
  if (cd "$build" && "./${target}_fuzz" "$corpus" "$root/fuzz/corpus/$target" "${dict[@]}" \
       -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
       -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-") >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
    echo "fuzz: $target ran ${seconds} s, $runs executions, no crash (log: $log)"
  else
    echo "fuzz: $target FAILED, see $log and $build/artifacts/:" >&2
    grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -20 >&2 || tail -20 "$log" >&2
    return 1
  fi
}

build_and_run() {
  build_target "$1" && run_target "$1"
}

# Builds and runs every target, at most $parallel at once, starting the next one whenever one ends;
# fails when any of them failed.
status=0 running=0
for target in "${targets[@]}"; do
  if [ "$running" -ge "$parallel" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
  build_and_run "$target" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
