#!/usr/bin/env bash
# Installs missing dependencies, configures, builds everything (tests, examples, benchmarks,
# CUDA code when nvcc exists) with -j2 and runs ctest. Idempotent; the build lives in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${SUPTOK_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "${SUPTOK_JOBS:-2}"
cd "$build"
ctest --output-on-failure -j "${SUPTOK_JOBS:-2}"
