#!/usr/bin/env python3
"""suptok-plot on the JSON of a suptok-analyze run.

usage: plot.py SUPTOK_ANALYZE SUPTOK_PLOT WORKDIR

Writes a two-head layer in the library's naming (the writer of tests/tools/analyze_cli.py) and
embeddings U (N = 40, p = 4) and a batch (2, 40, 4), runs suptok-analyze --support k=5 --json on
each and suptok-plot on the JSON, and checks that both PNG files exist, decode to the figure's size
in pixels, are not blank (at least 2 % of the pixels not white) and show red: the support-token
circles in the token figure, the stacked support bar in the histogram. Then every bad file (missing,
not JSON, no sequences, a missing column, columns of different lengths, a non-number) exits with
status 2 and one line on stderr, and no PNG is written. Exits 77 (skipped) without NumPy or matplotlib.
"""
import json
import os
import subprocess
import sys

try:
    import numpy as np
    import matplotlib.image
except ImportError:
    print("NumPy or matplotlib is missing (python3-numpy, python3-matplotlib): skipped")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from analyze_cli import write_safetensors  # noqa: E402

SIZES = {"tokens": (720, 1080), "margins": (480, 840)}  # (rows, cols) at the default 120 dpi: 9 x 6 and 7 x 4 inches


def run(cmd, expect):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != expect:
        sys.exit(f"FAILED: {' '.join(cmd)}: exit {r.returncode}, expected {expect}\n{r.stdout}{r.stderr}")
    return r


def check_png(path, kind):
    assert os.path.getsize(path) > 10_000, (path, os.path.getsize(path))
    image = matplotlib.image.imread(path)[..., :3]
    assert image.shape[:2] == SIZES[kind], (path, image.shape)
    not_white = float((image.min(axis=2) < 0.95).mean())
    red = int(((image[..., 0] > 0.8) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)).sum())
    print(f"{os.path.basename(path)}: {image.shape[1]} x {image.shape[0]}, {100 * not_white:.1f} % not white, "
          f"{red} red pixels")
    assert not_white >= 0.02 and red >= 20, (path, not_white, red)


def main():
    analyze, plot, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(11)
    H, d, p, N = 2, 3, 4, 40
    weights = {"W_Q": rng.normal(size=(H, d, p)), "W_K": rng.normal(size=(H, d, p)),
               "W_V": 0.5 * rng.normal(size=(H, d, p)), "W_O": 0.5 * rng.normal(size=(H, p, d))}
    ckpt = os.path.join(work, "layer.safetensors")
    write_safetensors(ckpt, weights)
    for name, U in (("one", rng.normal(size=(N, p))), ("batch", rng.normal(size=(2, N, p)))):
        emb, out = os.path.join(work, f"U_{name}.npy"), os.path.join(work, f"{name}.json")
        np.save(emb, U)
        run([analyze, "--embeddings", emb, "--weights", ckpt, "--support", "k=5", "--json", out], 0)
        printed = run([sys.executable, plot, out], 0).stdout.split()
        expected = [os.path.join(work, f"{name}_{kind}.png") for kind in ("tokens", "margins")]
        assert printed == expected, (printed, expected)
        for path, kind in zip(expected, ("tokens", "margins")):
            check_png(path, kind)

    good = json.load(open(os.path.join(work, "one.json")))
    columns = good["sequences"][0]["columns"]
    broken = {
        "not JSON": "{ this is not json",
        "no sequences": json.dumps({"totals": good["totals"]}),
        "a missing column": json.dumps({"sequences": [{"columns": {k: v for k, v in columns.items() if k != "log_det"}}]}),
        "columns of different lengths": json.dumps({"sequences": [{"columns": columns | {"log_det": columns["log_det"][:-1]}}]}),
        "a non-number": json.dumps({"sequences": [{"columns": columns | {"signed_margin": ["x"] * N}}]}),
    }
    cases = {what: os.path.join(work, f"bad_{i}.json") for i, what in enumerate(broken)}
    for what, path in cases.items():
        open(path, "w").write(broken[what])
    cases["missing file"] = os.path.join(work, "none.json")
    for what, path in cases.items():
        r = run([sys.executable, plot, path, "--out-dir", os.path.join(work, "bad")], 2)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("suptok-plot: error:"), (what, r.stderr)
        assert not os.path.exists(os.path.join(work, "bad")), what
        print(f"{what}: {lines[0]}")
    print("suptok-plot: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
