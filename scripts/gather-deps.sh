#!/usr/bin/env bash
# Gathers the header-only dependencies of the GPU check into .deps/usr (ignored by git), for a
# machine that has CUDA, CMake and a C++ compiler but not Debian's packages (scripts/gpu-check.sh
# finds them there through CMAKE_PREFIX_PATH):
#   - Eigen (all of it: under nvcc it includes GPU headers that a host compiler never reaches),
#   - Catch2 (one header),
#   - the Boost headers that <suptok/suptok.hpp> reaches, as the host compiler lists them, plus
#     all of boost/config (nvcc selects other configuration headers),
#   - the CMake package files of the three, which find their headers relative to themselves.
# About 16 MB; run here, before the check, and carry .deps.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.deps/usr
rm -rf .deps
mkdir -p "$dest/include" "$dest/share" "$dest/lib/cmake" "$dest/lib/x86_64-linux-gnu/cmake"

copy() {  # copy PATH... under $dest, keeping the path below /usr
  for path in "$@"; do
    mkdir -p "$dest/$(dirname "${path#/usr/}")"
    cp -r "$path" "$dest/${path#/usr/}"
  done
}

copy /usr/include/eigen3 /usr/share/eigen3 /usr/include/catch2 /usr/lib/cmake/Catch2 /usr/lib/libCatch2WithMain.a \
  /usr/include/boost/config \
  /usr/include/boost/config.hpp /usr/include/boost/version.hpp
copy /usr/lib/x86_64-linux-gnu/cmake/Boost-* /usr/lib/x86_64-linux-gnu/cmake/boost_headers-* \
  /usr/lib/x86_64-linux-gnu/cmake/BoostDetectToolset-*.cmake
# The Boost headers of the umbrella header's include closure.
echo '#include <suptok/suptok.hpp>' | g++ -std=c++20 -x c++ -M -MT deps -Iinclude -I/usr/include/eigen3 - |
  tr ' \\' '\n\n' | grep '^/usr/include/boost/' | sort -u | while read -r header; do
    mkdir -p "$dest/$(dirname "${header#/usr/}")"
    cp "$header" "$dest/${header#/usr/}"
  done
echo "gather-deps: $(du -sh .deps | cut -f1) in .deps"
