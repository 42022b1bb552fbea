#!/usr/bin/env python3
"""suptok-plot: figures of the per-token barrier geometry that suptok-analyze writes as JSON.

usage: suptok-plot ANALYSIS.json [--out-dir DIR] [--prefix NAME] [--dpi N]

Writes two PNG files (into DIR, default the JSON's folder; names start with NAME, default the
JSON's file name without .json) and prints their paths:
  NAME_tokens.png    along the sequence (position t, 0-based): log |det J_t| (top) and the signed
                     margin sign(det J_t) sigma_min(J_t) (bottom, the barrier at 0), one line per
                     sequence, support tokens marked with red circles
  NAME_margins.png   a histogram of the signed margins of the non-trivial tokens (t >= 2 under the
                     strict mask), support tokens stacked in red
docs/math.md section 3 defines the quantities; docs/interop.md shows the whole route from a PyTorch
model. Non-finite entries (log |det J_t| = -inf at a singular J_t) are left out of the plots. Exit
status 0 on success, 2 on a missing, unreadable or malformed file (one line on stderr), 1 when
matplotlib (python3-matplotlib) is missing.
"""
import argparse
import json
import math
import os
import sys

COLUMNS = ("position", "log_det", "signed_margin", "support")


class BadInput(Exception):
    pass


def number(x, where):
    """A JSON number, or the strings "inf", "-inf", "nan" that suptok-analyze writes for non-finite values."""
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise BadInput(f"{where}: expected a number, got {json.dumps(x)}")
    try:
        return float(x)
    except ValueError:
        raise BadInput(f"{where}: expected a number, got {json.dumps(x)}") from None


def read_analysis(path):
    """The document and, per sequence, its columns position, log_det, signed_margin (floats) and support (bools)."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise BadInput(f"cannot read '{path}': {e.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"'{path}' is not a JSON file: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("sequences"), list) or not doc["sequences"]:
        raise BadInput(f"'{path}': expected suptok-analyze's JSON, an object with a non-empty list 'sequences'")
    sequences = []
    for b, seq in enumerate(doc["sequences"]):
        where = f"'{path}': sequences[{b}].columns"
        columns = seq.get("columns") if isinstance(seq, dict) else None
        if not isinstance(columns, dict):
            raise BadInput(f"{where}: missing")
        for name in COLUMNS:
            if not isinstance(columns.get(name), list):
                raise BadInput(f"{where}.{name}: missing or not a list")
        n = len(columns["position"])
        if n == 0 or any(len(columns[name]) != n for name in COLUMNS):
            raise BadInput(f"{where}: the columns {', '.join(COLUMNS)} must have the same, non-zero length")
        if not all(isinstance(s, bool) for s in columns["support"]):
            raise BadInput(f"{where}.support: expected true or false for every token")
        sequences.append({name: [number(x, f"{where}.{name}[{t}]") for t, x in enumerate(columns[name])]
                          for name in COLUMNS[:3]} | {"support": columns["support"]})
    return doc, sequences


def first_counted(doc):
    """The first non-trivial position: 2 under the strict mask (J_0 = J_1 = I), 0 under the inclusive one."""
    return 0 if doc.get("mask") == "inclusive" else 2


def finite(xs, ys):
    pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    return [x for x, _ in pairs], [y for _, y in pairs]


def title_of(doc, path):
    totals = doc.get("totals", {}) if isinstance(doc.get("totals"), dict) else {}
    parts = [os.path.basename(str(doc.get("weights", path)))]
    if "layer" in doc:
        parts.append(f"layer {doc['layer']}")
    for key in ("mask", "policy", "support_rule"):
        if key in doc:
            parts.append(f"{key} {doc[key]}")
    if "penalty" in totals:
        parts.append(f"penalty {number(totals['penalty'], 'totals.penalty'):.4g}")
    return ", ".join(parts)


def plot_tokens(plt, doc, sequences, title, out):
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    labelled = False  # the legend names the support-token marker once
    for b, seq in enumerate(sequences):
        label = f"sequence {b}" if len(sequences) > 1 else None
        for ax, name in ((top, "log_det"), (bottom, "signed_margin")):
            ax.plot(*finite(seq["position"], seq[name]), marker=".", linewidth=1, label=label)
            marked = [(t, y) for t, y, s in zip(seq["position"], seq[name], seq["support"]) if s and math.isfinite(y)]
            if marked:
                ax.scatter(*zip(*marked), s=80, facecolors="none", edgecolors="red", linewidths=1.5, zorder=3,
                           label=None if labelled else "support token")
                labelled = True
    top.set_ylabel("log |det J_t|")
    bottom.set_ylabel("signed margin")
    bottom.axhline(0.0, color="black", linewidth=0.8, linestyle="--")
    bottom.set_xlabel("position t")
    top.set_title(title, fontsize=9)
    if len(sequences) <= 8 and top.get_legend_handles_labels()[0]:
        top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_margins(plt, doc, sequences, title, out):
    first = first_counted(doc)
    counted = [(m, s) for seq in sequences for t, m, s in zip(seq["position"], seq["signed_margin"], seq["support"])
               if t >= first and math.isfinite(m)]
    fig, ax = plt.subplots(figsize=(7, 4))
    if counted:
        others = [m for m, s in counted if not s]
        support = [m for m, s in counted if s]
        ax.hist([others, support], bins=30, stacked=True, color=["tab:blue", "red"], label=["token", "support token"])
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no non-trivial token", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel("signed margin sign(det J_t) sigma_min(J_t)")
    ax.set_ylabel("tokens")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv):
    parser = argparse.ArgumentParser(prog="suptok-plot", description=__doc__.splitlines()[0],
                                     epilog="Example: suptok-analyze ... --json out.json && suptok-plot out.json")
    parser.add_argument("analysis", help="the JSON written by suptok-analyze --json")
    parser.add_argument("--out-dir", help="folder of the PNG files (default: that of the JSON)")
    parser.add_argument("--prefix", help="start of the PNG file names (default: the JSON's name without .json)")
    parser.add_argument("--dpi", type=int, default=120, help="resolution (default 120)")
    args = parser.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("suptok-plot: error: needs matplotlib (Debian: python3-matplotlib)", file=sys.stderr)
        return 1
    try:
        doc, sequences = read_analysis(args.analysis)
        title = title_of(doc, args.analysis)
    except BadInput as e:
        print(f"suptok-plot: error: {e}", file=sys.stderr)
        return 2
    out_dir = args.out_dir or os.path.dirname(os.path.abspath(args.analysis))
    prefix = args.prefix or os.path.splitext(os.path.basename(args.analysis))[0]
    plt.rcParams["savefig.dpi"] = args.dpi
    try:
        os.makedirs(out_dir, exist_ok=True)
        paths = [os.path.join(out_dir, f"{prefix}_{kind}.png") for kind in ("tokens", "margins")]
        plot_tokens(plt, doc, sequences, title, paths[0])
        plot_margins(plt, doc, sequences, title, paths[1])
    except OSError as e:
        print(f"suptok-plot: error: cannot write into '{out_dir}': {e.strerror}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
