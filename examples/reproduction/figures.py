"""Figures of the runs (PNG, matplotlib): loss curves, margin histograms per lambda, robustness
curves with the seed spread, and a strip of test text coloured by each character's smallest
signed margin."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STRIP_LINE = 64  # characters per line of the strip
SMOOTHING = 20   # steps in the moving average of the training curves


def _by_lambda(runs):
    lambdas = sorted({run["lambda"] for run in runs})
    return {lam: [run for run in runs if run["lambda"] == lam] for lam in lambdas}


def _moving_average(values):
    window = min(SMOOTHING, len(values))
    return np.convolve(values, np.ones(window) / window, mode="valid"), window


def loss_curves(runs, path):
    """Left: training cross-entropy (moving average over SMOOTHING steps, thin) and validation
    cross-entropy (markers) per run, one colour per lambda. Right: the barrier estimate P per step
    (moving average) of the runs with lambda > 0."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for colour, (lam, group) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], _by_lambda(runs).items()):
        for i, run in enumerate(group):
            label = f"lambda {lam:g}" if i == 0 else None
            smooth, window = _moving_average(run["train"]["train_ce"])
            left.plot(np.arange(window, window + len(smooth)), smooth, color=colour, linewidth=0.8, alpha=0.6)
            steps, validation = zip(*run["train"]["validation"])
            left.plot(steps, validation, "o", color=colour, markersize=3, label=label)
            if lam > 0:
                smooth, window = _moving_average(run["train"]["barrier"])
                right.plot(np.arange(window, window + len(smooth)), smooth, color=colour, linewidth=0.8, label=label)
    left.set(xlabel="step", ylabel="cross-entropy (nats)", title="training (line), validation (dots)")
    right.set(xlabel="step", ylabel="barrier P", title="barrier estimate (lambda > 0)")
    left.legend(fontsize="small")
    if right.lines:
        right.legend(fontsize="small")
    else:
        right.text(0.5, 0.5, "no run with lambda > 0", ha="center", va="center", transform=right.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def margin_histograms(runs, path, delta):
    """One panel per layer: the signed margins of the non-trivial tokens, pooled over seeds, one
    step histogram per lambda; the barrier (0) and the support threshold delta marked."""
    groups = _by_lambda(runs)
    layers = len(runs[0]["test"]["margins"]["layers"])
    fig, axes = plt.subplots(1, layers, figsize=(4 * layers, 3.2), squeeze=False)
    for layer, ax in enumerate(axes[0]):
        pooled = {lam: np.concatenate([r["test"]["margins"]["layers"][layer]["signed_margins"] for r in group])
                  for lam, group in groups.items()}
        edges = np.histogram_bin_edges(np.concatenate(list(pooled.values())), bins=40)
        for lam, margins in pooled.items():
            ax.hist(margins, bins=edges, histtype="step", density=True, label=f"lambda {lam:g}")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.axvline(delta, color="grey", linestyle="--", linewidth=0.8)
        ax.set(title=f"layer {layer}", xlabel="signed margin sign(det J_t) sigma_min(J_t)")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def robustness_curves(runs, path):
    """Increase of bits per character and drop of accuracy against the perturbation level, for
    noise and substitution: the mean over seeds per lambda, the band from the smallest to the
    largest seed."""
    groups = _by_lambda(runs)
    kinds = [("noise", "noise sigma / RMS(x_0)"), ("substitution", "fraction of characters substituted")]
    metrics = [("bits_increase", "+ bits per character"), ("accuracy_drop", "- accuracy")]
    fig, axes = plt.subplots(len(metrics), len(kinds), figsize=(9, 6.5), squeeze=False)
    for col, (kind, xlabel) in enumerate(kinds):
        for row, (metric, ylabel) in enumerate(metrics):
            ax = axes[row][col]
            for lam, group in groups.items():
                entries = [[r for r in run["test"]["robustness"] if r["kind"] == kind] for run in group]
                levels = [r["level"] for r in entries[0]]
                values = np.array([[r[metric] for r in entry] for entry in entries])  # (seeds, levels)
                line, = ax.plot(levels, values.mean(axis=0), marker="o", label=f"lambda {lam:g}")
                ax.fill_between(levels, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
            ax.set(xlabel=xlabel, ylabel=ylabel)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def margin_strip(runs, characters, path, delta):
    """The first margin window of the test split, one block of lines per lambda (first seed): each
    character on a background coloured by its smallest signed margin over the layers (one colour
    scale for all), support tokens (margin <= delta) boxed in red, trivial positions uncoloured."""
    firsts = {lam: group[0]["test"]["margins"]["strip"] for lam, group in _by_lambda(runs).items()}
    everything = np.concatenate([s["smallest_signed_margin"][s["trivial_positions"]:] for s in firsts.values()])
    norm = plt.Normalize(min(everything.min(), 0.0), max(everything.max(), delta))
    colours = plt.get_cmap("viridis")
    tokens = next(iter(firsts.values()))["tokens"]
    lines = -(-len(tokens) // STRIP_LINE)
    fig, ax = plt.subplots(figsize=(0.16 * min(len(tokens), STRIP_LINE) + 1.5, 0.35 * (lines + 1) * len(firsts) + 0.8))
    y = 0
    for lam, strip in firsts.items():
        ax.text(-1, y, f"lambda {lam:g}", ha="right", va="center", fontsize=8)
        for position, (token, margin, support) in enumerate(zip(strip["tokens"], strip["smallest_signed_margin"],
                                                                strip["support"])):
            x, line_y = position % STRIP_LINE, y - position // STRIP_LINE
            trivial = position < strip["trivial_positions"]
            ax.add_patch(plt.Rectangle((x - 0.5, line_y - 0.5), 1, 1, facecolor="white" if trivial else colours(norm(margin)),
                                       edgecolor="red" if support else "none", linewidth=1.2))
            ax.text(x, line_y, characters[token].replace("\n", "\u00b6"), ha="center", va="center", family="monospace",
                    fontsize=8, color="black" if trivial or norm(margin) > 0.5 else "white")
        y -= lines + 1
    ax.set(xlim=(-0.5, min(len(tokens), STRIP_LINE) - 0.5), ylim=(y + 0.5, 0.5), aspect="equal")
    ax.axis("off")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=colours), ax=ax, orientation="horizontal", fraction=0.05,
                 pad=0.02, label="smallest signed margin over layers (red box: support token)")
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)


def draw_all(runs, characters, out_dir, delta):
    """Writes the figures into out_dir and returns their paths; the margin figures only when the
    runs have margins."""
    paths = [out_dir / "loss_curves.png", out_dir / "robustness.png"]
    loss_curves(runs, paths[0])
    robustness_curves(runs, paths[1])
    if runs[0]["test"]["margins"] is not None:
        paths += [out_dir / "margin_histograms.png", out_dir / "margin_strip.png"]
        margin_histograms(runs, paths[2], delta)
        margin_strip(runs, characters, paths[3], delta)
    return paths
