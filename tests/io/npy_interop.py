#!/usr/bin/env python3
"""NumPy <-> suptok .npy interoperability (a ctest test).

usage: npy_interop.py IO_NPY_INTEROP WORKDIR

NumPy writes .npy files (np.save, and np.lib.format.write_array for versions 2.0 and 3.0) plus the
same values as raw bytes; the C++ program reads the .npy files and compares bitwise. Files NumPy
writes that the reader must refuse (Fortran order, big-endian, int64, float16) must fail with the
named error. Then the C++ program writes files and NumPy loads and compares them bitwise.
Exits 77 (reported as skipped by ctest) when NumPy is not installed.
"""
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("NumPy is not installed (python3-numpy): test skipped")
    sys.exit(77)

tool, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
numpy_dir = os.path.join(work, "from_numpy")
cpp_dir = os.path.join(work, "from_cpp")
os.makedirs(numpy_dir)

rng = np.random.default_rng(7)
special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1.7976931348623157e308, 0.1])
cases = {
    "np_f8_2d": (rng.standard_normal((5, 3)), (1, 0)),
    "np_f4_3d": (rng.standard_normal((2, 4, 3)).astype(np.float32), (1, 0)),
    "np_f8_special": (special, (1, 0)),
    "np_f4_special": (special.astype(np.float32), (1, 0)),
    "np_f4_scalar": (np.array(3.25, dtype=np.float32), (1, 0)),
    "np_f8_empty": (np.zeros((0, 3)), (1, 0)),
    "np_f4_5d": (rng.standard_normal((1, 2, 1, 3, 2)).astype(np.float32), (1, 0)),
    "np_f8_v2": (rng.standard_normal((4, 2)), (2, 0)),
    "np_f4_v3": (rng.standard_normal((3,)).astype(np.float32), (3, 0)),
}
with open(os.path.join(numpy_dir, "manifest.txt"), "w") as manifest:
    for name, (a, version) in cases.items():
        with open(os.path.join(numpy_dir, name + ".npy"), "wb") as f:
            np.lib.format.write_array(f, a, version=version)
        a.astype(a.dtype.newbyteorder("<")).tofile(os.path.join(numpy_dir, name + ".raw"))
        with open(os.path.join(numpy_dir, name + ".shape"), "w") as f:
            f.write(" ".join(str(d) for d in a.shape))
        manifest.write("%s %s\n" % (name, "f4" if a.dtype == np.float32 else "f8"))
    refused = {
        "np_fortran": (np.asfortranarray(rng.standard_normal((3, 4))), "header"),
        "np_big_endian": (rng.standard_normal(4).astype(">f8"), "header"),
        "np_int64": (np.arange(4, dtype=np.int64), "header"),
        "np_float16": (np.ones(4, dtype=np.float16), "header"),
    }
    for name, (a, argument) in refused.items():
        np.save(os.path.join(numpy_dir, name + ".npy"), a)
        manifest.write("%s error %s\n" % (name, argument))

failed = False
r = subprocess.run([tool, "check", numpy_dir])
if r.returncode != 0:
    print("the C++ reader failed on files written by NumPy")
    failed = True

r = subprocess.run([tool, "write", cpp_dir])
if r.returncode != 0:
    print("the C++ writer failed")
    sys.exit(1)
checked = 0
with open(os.path.join(cpp_dir, "manifest.txt")) as manifest:
    for line in manifest:
        name, kind = line.split()
        dtype = np.dtype("<f4" if kind == "f4" else "<f8")
        a = np.load(os.path.join(cpp_dir, name + ".npy"), allow_pickle=False)
        with open(os.path.join(cpp_dir, name + ".shape")) as f:
            shape = tuple(int(d) for d in f.read().split())
        raw = np.fromfile(os.path.join(cpp_dir, name + ".raw"), dtype=dtype).reshape(shape)
        ok = a.dtype == dtype and a.shape == shape and a.tobytes() == raw.tobytes() and a.flags.c_contiguous
        print("%s %s (NumPy reads the C++ file)" % ("ok  " if ok else "FAIL", name))
        failed = failed or not ok
        checked += 1
if checked == 0:
    failed = True
print("numpy interop: " + ("FAILED" if failed else "all files agree bitwise"))
sys.exit(1 if failed else 0)
