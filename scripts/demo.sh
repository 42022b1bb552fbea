#!/usr/bin/env bash
# Installs missing dependencies, builds the examples and runs the demonstration: every example
# in order, each of which checks its own results and exits non-zero on a failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${SUPTOK_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
targets=$(cd examples && ls [0-9][0-9]_*.cpp | sed 's/\.cpp$//')
cmake --build "$build" -j "${SUPTOK_JOBS:-2}" --target $targets
for t in $targets; do
  echo
  echo "==================== $t ===================="
  "$build/examples/$t"
done
echo
echo "demo: all examples passed their checks"
