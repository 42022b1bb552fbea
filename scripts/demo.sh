#!/usr/bin/env bash
# Installs missing dependencies, builds the examples and runs the demonstration: every example
# in order, each of which checks its own results and exits non-zero on a failed check; then the
# figures of docs/interop.md (the Python module, suptok-analyze, suptok-plot) into $build/demo-figures;
# then the quick mode of the reproduction experiment (docs/reproduction.md) into $build/reproduction.
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

# The figures of docs/interop.md: a small PyTorch model trained with the barrier in its loss
# (python/examples/interop.py), its layer analysed by suptok-analyze and drawn by suptok-plot.
cmake --build "$build" -j "${SUPTOK_JOBS:-2}" --target suptok-analyze suptok_python
figures="$build/demo-figures"
echo
echo "==================== figures ===================="
PYTHONPATH="$build/python" /usr/bin/python3 python/examples/interop.py "$figures"
"$build/tools/suptok-analyze" --embeddings "$figures/U.npy" --weights "$figures/model.safetensors" \
  --support k=5 --json "$figures/analysis.json"
/usr/bin/python3 tools/suptok_plot.py "$figures/analysis.json" >/dev/null
echo "demo: figures of the example layer in $figures: analysis_tokens.png (log |det J_t| and signed"
echo "      margins along the sequence, support tokens circled) and analysis_margins.png (histogram of margins)"

# The reproduction experiment's quick mode: a tiny model trained with lambda 0, 0.02 and 0.05, its
# tables on the terminal and its figures (about a minute; it says nothing about the paper's claim,
# the full run of docs/reproduction.md does).
echo
echo "==================== reproduction (quick) ===================="
PYTHONPATH="$build/python" /usr/bin/python3 examples/reproduction/run.py --quick --out "$build/reproduction"
