#!/usr/bin/env bash
# bench/compare/compare.sh: the same workloads through PyTorch and through suptok, side by side.
#
#   bench/compare/compare.sh [--install] [--threads "1 2"] [--reps 5] [--quick] [--only REGEX]
#                            [--build-dir DIR] [--arch ARCH] [--out DIR] [--keep-coretype]
#
# --install        apt-get installs what is missing (python3-torch, libopenblas0-pthread, time)
#                  and makes OpenBLAS the active libblas/liblapack alternative; without it the
#                  script checks and prints the command to run.
# --threads LIST   thread counts (default "1 2"): torch.set_num_threads(n), OMP_NUM_THREADS=n and
#                  OPENBLAS_NUM_THREADS=n for PyTorch; OMP_NUM_THREADS=n for suptok.
# --reps N         timed repetitions after one warm-up, median reported (default 5).
# --quick          the smallest shape of each workload only (smoke test).
# --only REGEX     only the workloads whose "name B N p" matches REGEX (grep -E).
# --build-dir DIR  where suptok_workloads is built (default build-compare/ in the repository;
#                  Release, -O3, one job).
# --arch ARCH      the fast path's instruction set, -march=ARCH (default native: the widest the
#                  machine has; x86-64-v3 for AVX2 + FMA only). Reconfigures the build directory.
# --out DIR        inputs, outputs and logs (default: a new temporary directory).
# --keep-coretype  keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for PyTorch (by default they are
#                  removed from the PyTorch commands alone: they force an older OpenBLAS kernel).
#
# Each (workload, thread count, side) is its own process under /usr/bin/time -v: the table shows
# its median time and its peak resident set ("Maximum resident set size"), in full and over the
# baseline of the same side and thread count (PyTorch: the interpreter after `import torch` and
# one small GEMM and slogdet; suptok: the executable doing nothing). Every row also checks that the
# two sides computed the same thing on the same seeded inputs (max relative difference of the
# outputs: penalty or mu, and every gradient).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
PY=/usr/bin/python3   # Debian's python3-torch is importable by the system interpreter only
install=0
threads="1 2"
reps=5
quick=0
only=""
build_dir="$root/build-compare"
arch=native
out=""
keep_coretype=0

while [ $# -gt 0 ]; do
  case "$1" in
    --install) install=1 ;;
    --threads) threads="$2"; shift ;;
    --reps) reps="$2"; shift ;;
    --quick) quick=1 ;;
    --only) only="$2"; shift ;;
    --build-dir) build_dir="$2"; shift ;;
    --arch) arch="$2"; shift ;;
    --out) out="$2"; shift ;;
    --keep-coretype) keep_coretype=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "compare.sh: $*"; }

# ---- prerequisites ----
blas_alt=libblas.so.3-x86_64-linux-gnu
lapack_alt=liblapack.so.3-x86_64-linux-gnu
openblas_dir=/usr/lib/x86_64-linux-gnu/openblas-pthread
missing=()
[ -x /usr/bin/time ] || missing+=(time)
"$PY" -c "import torch" 2>/dev/null || missing+=(python3-torch)
dpkg -s libopenblas0-pthread >/dev/null 2>&1 || missing+=(libopenblas0-pthread)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$install" = 1 ]; then
    say "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "missing: ${missing[*]}. Install with:"
    echo "    apt-get update && apt-get install -y ${missing[*]}     (or run: $0 --install)"
    exit 1
  fi
fi
active=$(readlink -f "/etc/alternatives/$blas_alt" || true)
if [ "$active" != "$openblas_dir/libblas.so.3" ]; then
  if [ "$install" = 1 ]; then
    say "making OpenBLAS the active libblas and liblapack (update-alternatives)"
    update-alternatives --set "$blas_alt" "$openblas_dir/libblas.so.3" >/dev/null
    update-alternatives --set "$lapack_alt" "$openblas_dir/liblapack.so.3" >/dev/null
    active=$(readlink -f "/etc/alternatives/$blas_alt")
  else
    say "WARNING: the active libblas is $active, not OpenBLAS: PyTorch's rows use it. Fix with:"
    echo "    update-alternatives --set $blas_alt $openblas_dir/libblas.so.3     (or run: $0 --install)"
  fi
fi

# PyTorch's environment: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed for its commands alone.
torch_unset=()
if [ "$keep_coretype" = 0 ]; then
  for v in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
    if [ -n "${!v:-}" ]; then
      say "$v=${!v} is set: removed for the PyTorch commands only (--keep-coretype keeps it)"
      torch_unset+=(-u "$v")
    fi
  done
fi

# ---- the library side ----
say "configuring $build_dir (Release, -march=$arch)"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DSUPTOK_BUILD_BENCH=ON -DSUPTOK_SIMD_ARCH="$arch" \
  -DSUPTOK_BUILD_TESTS=OFF -DSUPTOK_BUILD_EXAMPLES=OFF -DSUPTOK_ENABLE_CUDA=OFF >/dev/null
say "building suptok_workloads in $build_dir (-O3 -march=$arch, one job)"
cmake --build "$build_dir" --target suptok_workloads -j1 >/dev/null
exe="$build_dir/bench/compare/suptok_workloads"
[ -x "$exe" ] || { say "no $exe (is xsimd installed?)"; exit 1; }

out=${out:-$(mktemp -d /tmp/suptok-compare.XXXXXX)}
mkdir -p "$out"
tsv="$out/rows.tsv"
: > "$tsv"

# ---- the machine ----
say "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
isa=$(grep -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')
say "vector ISA of the CPU: ${isa:-none of avx2, fma, avx512f}; suptok built with -march=$arch"
peak=$(OMP_NUM_THREADS=1 "$exe" fma_peak 0 0 0 5 - - |
       sed -n 's/^FMA_PEAK lanes=\([0-9]*\) gflops=\([0-9.]*\).*/\2 GFLOP\/s (vectors of \1 floats)/p')
say "fp32 FMA rate of one thread, measured now: $peak"
say "active libblas alternative: $active"
blas_line=$(env "${torch_unset[@]}" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PY" "$here/torch_workloads.py" blas)
say "$blas_line"
case "$blas_line" in
  *"BLAS: OpenBLAS"*) blas_short="OpenBLAS $(echo "$blas_line" | sed -n 's/.*OpenBLAS \([0-9.]*\) .* core \([A-Za-z0-9_]*\).*/\1 (\2)/p')" ;;
  *reference*) blas_short="reference BLAS" ;;
  *) blas_short="unknown" ;;
esac
say "results and logs in $out"

# ---- workloads: name B N p ----
workloads=()
for w in barrier_fwd barrier_fwd_bwd; do
  for shape in "1 256 8" "1 512 32" "1 1024 64" "4 512 64" "1 2048 16"; do workloads+=("$w $shape"); done
done
for w in attention_fwd attention_fwd_bwd; do
  for shape in "1 1024 64" "1 2048 64"; do workloads+=("$w $shape"); done
done
workloads+=("layer_barrier_fwd 1 1024 768" "layer_barrier_fwd_bwd 1 1024 768" "layer_analysis 1 1024 768")  # GPT-2-small
if [ "$quick" = 1 ]; then
  workloads=("barrier_fwd 1 256 8" "barrier_fwd_bwd 1 256 8" "attention_fwd 1 1024 64" "attention_fwd_bwd 1 1024 64"
             "layer_barrier_fwd 1 128 256" "layer_barrier_fwd_bwd 1 128 256" "layer_analysis 1 128 256")
fi
if [ -n "$only" ]; then
  mapfile -t workloads < <(printf '%s\n' "${workloads[@]}" | grep -E -- "$only" || true)
fi
[ ${#workloads[@]} -gt 0 ] || { say "no workload matches --only '$only'"; exit 1; }

# Runs one side's command under /usr/bin/time -v; sets ms (median) and rss (kB).
measure() {
  local log=$1; shift
  /usr/bin/time -v -o "$log.time" "$@" > "$log.out" 2> "$log.err" || {
    say "FAILED: $*"; cat "$log.err" "$log.out" >&2; exit 1; }
  ms=$(sed -n 's/^RESULT .*median_ms=\([0-9.]*\).*/\1/p' "$log.out")
  rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$log.time")
  grep '^RESULT' "$log.out" | sed 's/^/    /'
}

status=0
for n in $threads; do
  torch_env=(env "${torch_unset[@]}" OMP_NUM_THREADS="$n" OPENBLAS_NUM_THREADS="$n")
  lib_env=(env OMP_NUM_THREADS="$n")
  say "threads $n: baselines"
  measure "$out/base_torch_$n" "${torch_env[@]}" "$PY" "$here/torch_workloads.py" baseline
  torch_base=$rss
  measure "$out/base_suptok_$n" "${lib_env[@]}" "$exe" baseline 0 0 0 0 - -
  lib_base=$rss
  say "threads $n: baseline peak RSS torch $((torch_base / 1024)) MB, suptok $((lib_base / 1024)) MB"
  for spec in "${workloads[@]}"; do
    read -r w B N p <<< "$spec"
    tag="${w}_${B}_${N}_${p}"
    inputs="$out/$tag.in"
    [ -f "$inputs" ] || "$PY" "$here/torch_workloads.py" inputs "$w" "$B" "$N" "$p" 20261130 "$inputs"
    say "threads $n: $w B=$B N=$N p=$p"
    measure "$out/${tag}_torch_$n" "${torch_env[@]}" "$PY" "$here/torch_workloads.py" run "$w" "$B" "$N" "$p" \
      "$reps" "$inputs" "$out/${tag}_torch_$n.bin"
    tms=$ms; trss=$rss
    measure "$out/${tag}_suptok_$n" "${lib_env[@]}" "$exe" "$w" "$B" "$N" "$p" "$reps" "$inputs" \
      "$out/${tag}_suptok_$n.bin"
    sms=$ms; srss=$rss
    if check=$("$PY" "$here/torch_workloads.py" check "$w" "$B" "$N" "$p" "$out/${tag}_torch_$n.bin" \
        "$out/${tag}_suptok_$n.bin"); then
      verdict=""
    else
      verdict=" MISMATCH"; status=1
    fi
    echo "    $check$verdict"
    diff=$(echo "$check" | sed 's/.*rel\. diff //' | tr ',' '\n' | awk '{ if ($2 + 0 > m) m = $2 + 0 } END { printf "%.1e", m }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$B" "$N" "$p" "$n" "$tms" "$sms" \
      "$trss" "$srss" "$torch_base" "$lib_base" "$blas_short" "$diff$verdict" >> "$tsv"
  done
done

echo
say "median of $reps timed runs after one warm-up, float32, wall ms; peak RSS from /usr/bin/time -v,"
say "'over base' subtracts the same side's baseline process at the same thread count (see --help)"
say "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$PY" "$here/torch_workloads.py" table "$tsv" | tee "$out/table.md"
[ "$status" = 0 ] || say "some rows MISMATCH: the two sides disagree (see the check lines above)"
exit "$status"
