#!/usr/bin/env bash
# Installs missing dependencies, configures, builds everything (tests, examples, benchmarks,
# CUDA code when nvcc exists) with -j2, fuzzes the file readers and adapters for SUPTOK_FUZZ_SECONDS (default 60)
# per target and runs ctest. Idempotent; the build lives in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${SUPTOK_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "${SUPTOK_JOBS:-2}"
# The file readers and checkpoint adapters under libFuzzer (ASan + UBSan), SUPTOK_FUZZ_SECONDS per target (0 skips).
if [ "${SUPTOK_FUZZ_SECONDS:-60}" != 0 ]; then
  FUZZ_BUILD_DIR="$(cd "$build" && pwd)/fuzz" scripts/fuzz.sh "${SUPTOK_FUZZ_SECONDS:-60}"
fi
cd "$build"
ctest --output-on-failure -j "${SUPTOK_JOBS:-2}"
