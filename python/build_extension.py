#!/usr/bin/env python3
"""Builds the extension module suptok._native with torch.utils.cpp_extension (python/CMakeLists.txt runs it).

usage: build_extension.py --build-dir DIR --output FILE [--march ISA] [--optimisation -ON] [--openmp FLAG]
                          [--include DIR ...] [--system-include DIR ...] SOURCE ...

torch.utils.cpp_extension.load writes DIR/build.ninja, compiles every SOURCE there with ninja
(MAX_JOBS jobs at once, the compiler in CXX; ninja rebuilds only what changed, headers included),
links DIR/_native.so against libtorch and imports it once; the module is then copied to FILE.
Flags: C++20, -O2 (or --optimisation), -march=ISA (the ISA of suptok::simd) on every source, since Eigen's object
layout may change with it and the translation units share Eigen types; the OpenMP flag at compile
and link time. Prints the compile time of each source compiled, from ninja's log.
"""
import argparse
import os
import shutil
import sys


def ninja_log(build_dir):
    return os.path.join(build_dir, ".ninja_log")


def compile_times(build_dir, offset):
    """(seconds, object) for each object compiled since byte `offset` of ninja's log (v5 lines:
    start end mtime path hash, times in ms)."""
    if not os.path.exists(ninja_log(build_dir)):
        return []
    times = {}
    with open(ninja_log(build_dir)) as log:
        log.seek(offset)
        lines = log.read().splitlines()
    for line in lines:
        fields = line.split("\t")
        if len(fields) == 5 and fields[3].endswith(".o"):
            times[fields[3]] = (int(fields[1]) - int(fields[0])) / 1000.0
    return sorted((t, o) for o, t in times.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--march", default="")
    parser.add_argument("--optimisation", default="-O2")
    parser.add_argument("--openmp", default="-fopenmp")
    parser.add_argument("--include", action="append", default=[])
    parser.add_argument("--system-include", action="append", default=[])
    parser.add_argument("sources", nargs="+")
    args = parser.parse_args()

    from torch.utils import cpp_extension

    cflags = ["-std=c++20", args.optimisation, "-DNDEBUG", "-Wall", "-Wextra", args.openmp]
    if args.march:
        cflags.append("-march=" + args.march)
    cflags += ["-isystem" + d for d in args.system_include]
    os.makedirs(args.build_dir, exist_ok=True)
    # load() waits for DIR/lock to vanish; a build that was killed leaves it behind, and CMake never
    # runs two builds of this output at once, so a lock found here is stale.
    lock = os.path.join(args.build_dir, "lock")
    if os.path.exists(lock):
        os.remove(lock)
    offset = os.path.getsize(ninja_log(args.build_dir)) if os.path.exists(ninja_log(args.build_dir)) else 0
    cpp_extension.load(name="_native", sources=[os.path.abspath(s) for s in args.sources],
                       extra_cflags=cflags, extra_ldflags=[args.openmp],
                       extra_include_paths=[os.path.abspath(d) for d in args.include],
                       build_directory=args.build_dir, verbose=False)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    shutil.copyfile(os.path.join(args.build_dir, "_native.so"), args.output)
    for seconds, obj in compile_times(args.build_dir, offset):
        print(f"suptok._native: {obj} compiled in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
