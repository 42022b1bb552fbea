"""Tables of the runs: one flat row per run (the CSV) and per-lambda summaries over seeds (the
terminal), each cell the mean over seeds and, with two seeds or more, +- their sample standard
deviation; and the paired comparison of each lambda > 0 with lambda = 0 on the same seed (same
initial weights and batches), which removes the seed-to-seed variation the two share."""
import csv
import statistics

MARGIN_STATISTICS = ("median_log_abs_det", "p5_log_abs_det", "median_signed_margin", "p5_signed_margin",
                     "infeasible_fraction", "support_fraction")


def flat_row(run):
    """A run (run.py's record) as one dict of scalars."""
    train, test = run["train"], run["test"]
    row = {"lambda": run["lambda"], "seed": run["seed"], "steps": train["steps"],
           "train_seconds": train["step_seconds"], "barrier_share": train["barrier_share"],
           "final_validation_nats": train["validation"][-1][1],
           "bits_per_character": test["bits_per_character"], "accuracy": test["accuracy"]}
    for r in test["robustness"]:
        row[f"{r['kind']}{r['level']:g}_bits_increase"] = r["bits_increase"]
        row[f"{r['kind']}{r['level']:g}_accuracy_drop"] = r["accuracy_drop"]
    for layer in (test["margins"] or {"layers": []})["layers"]:
        for name in MARGIN_STATISTICS:
            row[f"layer{layer['layer']}_{name}"] = layer[name]
    return row


def write_csv(runs, path):
    rows = [flat_row(run) for run in runs]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def spread(values, digits=3):
    """'mean +- sd' (sample sd over seeds), or the mean alone for one value; '-' for none."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    return f"{mean:.{digits}f}" if len(values) == 1 else f"{mean:.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def format_table(header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(cells, widths)) for cells in lines)


def paired_table(runs):
    """Per lambda > 0, over the seeds that also have a lambda = 0 run: the relative change of clean
    accuracy, 100 (acc - acc_0) / acc_0 in per cent, and per perturbation the robustness gain
    100 (1 - drop / drop_0) in per cent, drop the accuracy lost to it (positive: the model lost less
    than its lambda = 0 twin); None when lambda = 0 has no run."""
    rows = [flat_row(run) for run in runs]
    plain = {row["seed"]: row for row in rows if row["lambda"] == 0}
    if not plain:
        return None
    levels = [(r["kind"], r["level"]) for r in runs[0]["test"]["robustness"]]
    table = []
    for lam in sorted({row["lambda"] for row in rows if row["lambda"] > 0}):
        pairs = [(row, plain[row["seed"]]) for row in rows if row["lambda"] == lam and row["seed"] in plain]
        cells = [spread([100 * (r["accuracy"] - r0["accuracy"]) / r0["accuracy"] for r, r0 in pairs], 2)]
        for kind, level in levels:
            key = f"{kind}{level:g}_accuracy_drop"
            cells.append(spread([100 * (1 - r[key] / r0[key]) for r, r0 in pairs if r0[key] > 0], 1))
        table.append([f"{lam:g}", str(len(pairs)), *cells])
    return format_table(["lambda", "seeds", "clean accuracy %", *(f"gain {kind} {level:g} %" for kind, level in levels)],
                        table)


def summary_tables(runs):
    """Three tables as text: clean scores and cost, robustness, margin geometry per layer."""
    rows = [flat_row(run) for run in runs]
    lambdas = sorted({row["lambda"] for row in rows})

    def column(lam, key):
        return [row.get(key) for row in rows if row["lambda"] == lam]

    clean = format_table(
        ["lambda", "bits/char", "accuracy", "train s", "barrier share"],
        [[f"{lam:g}", spread(column(lam, "bits_per_character")), spread(column(lam, "accuracy")),
          spread(column(lam, "train_seconds"), 1), spread(column(lam, "barrier_share"), 2)] for lam in lambdas])
    levels = [(r["kind"], r["level"]) for r in runs[0]["test"]["robustness"]]
    robust = format_table(
        ["perturbation", *(f"lambda {lam:g}: +bits/char, -accuracy" for lam in lambdas)],
        [[f"{kind} {level:g}", *(f"{spread(column(lam, f'{kind}{level:g}_bits_increase'))}, "
                                 f"{spread(column(lam, f'{kind}{level:g}_accuracy_drop'))}" for lam in lambdas)]
         for kind, level in levels])
    paired = paired_table(runs)
    if paired:
        robust += f"\n\npaired with lambda 0 (same seed):\n{paired}"
    layers = len((runs[0]["test"]["margins"] or {"layers": []})["layers"])
    if not layers:
        return f"{clean}\n\n{robust}\n\nmargins: not measured (suptok.analyse is not importable)"
    margins = format_table(
        ["layer", "lambda", *MARGIN_STATISTICS],
        [[layer, f"{lam:g}", *(spread(column(lam, f"layer{layer}_{name}")) for name in MARGIN_STATISTICS)]
         for layer in range(layers) for lam in lambdas])
    return f"{clean}\n\n{robust}\n\n{margins}"
