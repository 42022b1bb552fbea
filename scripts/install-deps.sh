#!/usr/bin/env bash
# Installs the Debian packages suptok needs, only those that are missing. Idempotent.
#   build:  cmake g++ libeigen3-dev
#   tests:  catch2 libboost-dev libboost-math-dev (multiprecision, autodiff, quadrature)
#   simd:   libxsimd-dev xtl-dev        bench: libbenchmark-dev
#   io:     nlohmann-json3-dev          tools: libcli11-dev (suptok-analyze)
#   fuzzing: clang libclang-rt-dev pkg-config (scripts/fuzz.sh)
#   interop tests: python3-numpy python3-torch (tiny checkpoints and PyTorch reference layers)
#   python module: libtorch-dev pybind11-dev ninja-build (torch.utils.cpp_extension builds with ninja)
#   figures: python3-matplotlib (suptok-plot)
#   reproduction: libopenblas0-pthread (Debian's PyTorch and NumPy call whichever libblas.so.3 the
#     system selects; on the reference BLAS alone the experiment's training step is 3-4x slower)
set -euo pipefail
packages=(cmake g++ make libeigen3-dev libxsimd-dev xtl-dev libboost-dev libboost-math-dev catch2 libbenchmark-dev nlohmann-json3-dev libcli11-dev clang libclang-rt-dev pkg-config python3-numpy python3-torch libtorch-dev pybind11-dev ninja-build python3-matplotlib libopenblas0-pthread)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
