#!/usr/bin/env bash
# The one check for a machine with an NVIDIA GPU, CUDA 13 and PyTorch 2.x but neither Debian's
# packages nor the internet: configures with the header-only dependencies that
# scripts/gather-deps.sh collected into .deps (carry it), builds the CUDA tests (tests/cuda: the
# kernels against host references, and their host side) and the GPU timings (bench/cuda), runs
# the tests, then the timings side by side with PyTorch on the same GPU
# (bench/compare/torch_gpu.py), and writes report.md, the logs and ptxas's resource counts to
# OUT_DIR. Without a GPU the same run is the dry run: every step but the GPU work, which shows as
# skipped.
#   [PYTHON=python3] scripts/gpu-check.sh OUT_DIR
set -euo pipefail
out=${1:?usage: scripts/gpu-check.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
[ -d .deps/usr ] || { echo "gpu-check: no .deps: run scripts/gather-deps.sh here and carry .deps" >&2; exit 2; }
build=${GPU_CHECK_BUILD_DIR:-build-gpu}
python=${PYTHON:-python3}  # the interpreter that has PyTorch
start=$(date +%s)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PWD/.deps/usr" -DSUPTOK_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DSUPTOK_BUILD_TOOLS=OFF -DSUPTOK_BUILD_EXAMPLES=OFF -DSUPTOK_BUILD_BENCH=OFF \
  -DSUPTOK_BUILD_PYTHON=OFF >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log" >&2; exit 1; }
# The CUDA tests: their ctest names are their targets' names.
mapfile -t targets < <(ctest --test-dir "$build" -N -R '^test_cuda_' | sed -n 's/^ *Test *#[0-9]*: //p')
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" bench_cuda >"$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log" >&2; exit 1; }
status=0
ctest --test-dir "$build" -R '^test_cuda_' --output-on-failure -V >"$out/ctest.log" 2>&1 || status=1
cat "$build"/tests/cuda/*.ptxas.txt >"$out/ptxas.txt"
# The timings, suptok then PyTorch; each exits 77 without a GPU.
suptok_rc=0
"$build"/bench/cuda/bench_cuda >"$out/bench_suptok.txt" 2>&1 || suptok_rc=$?
torch_rc=0
"$python" bench/compare/torch_gpu.py run >"$out/bench_torch.txt" 2>&1 || torch_rc=$?
for rc in $suptok_rc $torch_rc; do [ "$rc" = 0 ] || [ "$rc" = 77 ] || status=1; done

{
  echo "# suptok GPU check"
  echo
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
  echo "- nvcc: $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), host compiler: $(c++ --version | head -1)"
  echo "- wall time: $(( $(date +%s) - start )) s"
  echo
  echo "## ctest"
  echo
  echo '```'
  grep -E '^ *[0-9]+/[0-9]+ Test|tests passed|did not run|Skipped|Failed' "$out/ctest.log" || true
  echo '```'
  echo
  echo "## Test output"
  echo
  echo '```'
  grep -E '^[0-9]+: (SKIP|PASS|FAIL|float|double|bf16|fp16|All tests|test cases)' "$out/ctest.log" || true
  echo '```'
  echo
  echo "## Side by side with PyTorch on the same GPU"
  echo
  echo "suptok: \`bench_cuda\` (bench/cuda); PyTorch $("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo missing):"
  echo "\`bench/compare/torch_gpu.py run\`; median of 20 after 3 warm-ups (CUDA events); exit codes suptok $suptok_rc, PyTorch $torch_rc (0: ran, 77: no GPU)."
  echo
  "$python" bench/compare/torch_gpu.py table "$out/bench_suptok.txt" "$out/bench_torch.txt"
  echo
  grep -h -v '^RESULT' "$out/bench_suptok.txt" "$out/bench_torch.txt" | sed 's/^/    /' || true
  echo
  echo "## Kernel resources (ptxas -v, sm_90)"
  echo
  echo "| kernel | registers | spill stores | spill loads |"
  echo "|---|---|---|---|"
  awk '/Compiling entry function/ { name = $7; gsub("\x27", "", name) }
       /spill stores/ { stores = $5; loads = $9 }
       /Used [0-9]+ registers/ { print "| `" name "` | " $5 " | " stores " | " loads " |" }' "$out/ptxas.txt"
} >"$out/report.md"
echo "gpu-check: report in $out/report.md"
exit $status
