#!/usr/bin/env bash
# Installs missing dependencies, configures, builds everything (tests, examples, benchmarks, tools,
# CUDA code when nvcc exists) with -j2, fuzzes the file readers, the checkpoint adapters and the
# validation layer for SUPTOK_FUZZ_SECONDS (default 60) per target and runs ctest. Idempotent.
#
#   scripts/test.sh              the build lives in build/
#   scripts/test.sh --sanitize   the test suite built with AddressSanitizer and
#                                UndefinedBehaviorSanitizer (any report fails), in build-sanitize/,
#                                without the benchmarks and the stress test (docs/architecture.md,
#                                "Tests", says what is instrumented); what .ci/run runs
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=OFF
build=${SUPTOK_BUILD_DIR:-build}
for arg in "$@"; do
  case $arg in
    --sanitize) sanitize=ON; build=${SUPTOK_BUILD_DIR:-build-sanitize} ;;
    *) echo "usage: scripts/test.sh [--sanitize]" >&2; exit 2 ;;
  esac
done
scripts/install-deps.sh
bench=ON
[ $sanitize = ON ] && bench=OFF  # timings under the sanitizers mean nothing
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSUPTOK_SANITIZE=$sanitize -DSUPTOK_BUILD_BENCH=$bench
cmake --build "$build" -j "${SUPTOK_JOBS:-2}"
# The fuzz targets (always with ASan + UBSan), SUPTOK_FUZZ_SECONDS per target (0 skips).
if [ "${SUPTOK_FUZZ_SECONDS:-60}" != 0 ]; then
  FUZZ_BUILD_DIR="$(cd "$build" && pwd)/fuzz" scripts/fuzz.sh "${SUPTOK_FUZZ_SECONDS:-60}"
fi
cd "$build"
ctest --output-on-failure -j "${SUPTOK_JOBS:-2}"
