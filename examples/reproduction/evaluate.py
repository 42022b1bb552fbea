#!/usr/bin/python3
"""Test-split evaluation of a trained model: clean scores, robustness, margin geometry.

usage: evaluate.py CHECKPOINT [--quick] [--data DIR] [--json FILE] [--threads T]

Windows: EvalConfig.windows windows of N + 1 characters, evenly spaced among the non-overlapping
windows of the test split (all of them when 0); every position of a window is scored.
- clean: bits per character = mean cross-entropy (nats) / ln 2, and next-character accuracy
  (argmax of the logits).
- noise: the input embeddings x_0 = E_tok + E_pos become x_0 + sigma z, z ~ N(0, I), with
  sigma = scale * RMS(x_0) (RMS over every entry of the clean x_0 of the evaluated windows).
- substitution: each input character is, with probability `rate`, replaced by one of the other
  V - 1 characters drawn uniformly; the targets stay the clean next characters.
  For both, the increase of bits per character and the drop of accuracy (absolute) against clean.
  The draws come from a generator seeded with EvalConfig.seed for each level, so every model meets
  the same perturbations.
- margins (when suptok.analyse is importable): per layer, on EvalConfig.margin_windows windows,
  suptok.analyse of the attention sub-layer on its input U_l gives log|det J_t| and the signed
  margin sign(det J_t) sigma_min(J_t) (docs/layers.md) of every non-trivial token (t >= 2): their
  median and 5th percentile, the fraction infeasible (det J_t <= 0), and the fraction of support
  tokens under the fixed rule signed margin <= support_delta. For the first of those windows, the
  strip figure gets each position's smallest signed margin over the layers.
"""
import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from progress import Progress
import prepare_data
import settings
import suptok_calls
from train import load_checkpoint


@torch.no_grad()
def score(model, inputs, targets, embed, batch_size=64):
    """(bits per character, accuracy) over windows (W, N); embed(tokens) -> input embeddings."""
    nats, correct = 0.0, 0
    for start in range(0, len(inputs), batch_size):
        tokens, target = inputs[start:start + batch_size], targets[start:start + batch_size]
        logits, _ = model(embed(tokens))
        nats += F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="sum").item()
        correct += (logits.argmax(dim=-1) == target).sum().item()
    return nats / targets.numel() / math.log(2), correct / targets.numel()


@torch.no_grad()
def embedding_rms(model, inputs, batch_size=64):
    squares = sum(model.embed(inputs[s:s + batch_size]).square().sum().item() for s in range(0, len(inputs), batch_size))
    return math.sqrt(squares / (inputs.numel() * model.config.width))


def noisy(model, sigma, generator):
    """embed() with sigma z, z ~ N(0, I), added to the input embeddings."""
    def embed(tokens):
        x = model.embed(tokens)
        return x + sigma * torch.randn(x.shape, generator=generator)
    return embed


def substitute(tokens, rate, vocab_size, generator):
    """tokens with each replaced, with probability `rate`, by one of the other V - 1 drawn uniformly."""
    replace = torch.rand(tokens.shape, generator=generator) < rate
    other = (tokens + torch.randint(1, vocab_size, tokens.shape, generator=generator)) % vocab_size
    return torch.where(replace, other, tokens)


def substituted(model, rate, generator):
    """embed() of the tokens after substitute()."""
    def embed(tokens):
        return model.embed(substitute(tokens, rate, model.config.vocab_size, generator))
    return embed


def robustness(model, inputs, targets, config, clean, bar):
    """One entry per noise scale and per substitution rate: the level, bits per character and
    accuracy, and their change against `clean` = (bits, accuracy)."""
    rms = embedding_rms(model, inputs)
    levels = [("noise", scale, noisy, scale * rms) for scale in config.noise_scales]
    levels += [("substitution", rate, substituted, rate) for rate in config.substitution_rates]
    rows = []
    for done, (kind, level, perturbed, amount) in enumerate(levels, start=1):
        embed = perturbed(model, amount, torch.Generator().manual_seed(config.seed))
        bits, accuracy = score(model, inputs, targets, embed)
        rows.append({"kind": kind, "level": level, "bits_per_character": bits, "accuracy": accuracy,
                     "bits_increase": bits - clean[0], "accuracy_drop": clean[1] - accuracy})
        bar.update(done)
    return rows


@torch.no_grad()
def margin_geometry(model, windows, delta):
    """Per layer the statistics of the module docstring (and the signed margins themselves, for the
    histograms); the strip of the first window: per position the smallest signed margin over the
    layers and whether it is a support token in some layer."""
    _, attention_inputs = model(model.embed(windows))
    trivial = suptok_calls.TRIVIAL_POSITIONS
    layers, strip_margins, strip_support = [], [], []
    for layer, (U, block) in enumerate(zip(attention_inputs, model.blocks)):
        heads = block.attention.head_stack()
        tables = [suptok_calls.analyse(U[i], heads, model.config.temperature, delta) for i in range(len(windows))]
        log_det = np.concatenate([t["log_abs_det"][trivial:] for t in tables])
        sign = np.concatenate([t["sign"][trivial:] for t in tables])
        margin = np.concatenate([t["signed_margin"][trivial:] for t in tables])
        support = np.concatenate([t["support"][trivial:] for t in tables])
        layers.append({"layer": layer, "median_log_abs_det": float(np.median(log_det)),
                       "p5_log_abs_det": float(np.percentile(log_det, 5)), "median_signed_margin": float(np.median(margin)),
                       "p5_signed_margin": float(np.percentile(margin, 5)), "infeasible_fraction": float(np.mean(sign <= 0)),
                       "support_fraction": float(np.mean(support)), "signed_margins": margin.tolist()})
        strip_margins.append(tables[0]["signed_margin"])
        strip_support.append(tables[0]["support"])
    return {"layers": layers, "strip": {"tokens": windows[0].tolist(), "trivial_positions": trivial,
                                        "smallest_signed_margin": np.min(strip_margins, axis=0).tolist(),
                                        "support": np.any(strip_support, axis=0).tolist()}}


def evaluate(model, corpus, config, progress=True, label="evaluate"):
    """The test-split results of the module docstring as a JSON-ready dict; "margins" is None when
    suptok.analyse is not importable."""
    inputs, targets = prepare_data.windows(corpus.test, model.config.context, config.windows)
    bar = Progress(label, len(config.noise_scales) + len(config.substitution_rates), enabled=progress)
    clean = score(model, inputs, targets, model.embed)
    result = {"windows": len(inputs), "bits_per_character": clean[0], "accuracy": clean[1],
              "robustness": robustness(model, inputs, targets, config, clean, bar), "margins": None}
    if suptok_calls.analyse_unavailable() is None:
        chosen = torch.linspace(0, len(inputs) - 1, config.margin_windows).round().long()
        result["margins"] = margin_geometry(model, inputs[chosen], config.support_delta)
    bar.close(f"{clean[0]:.3f} bits per character, accuracy {clean[1]:.3f}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="model.pt written by train.py")
    parser.add_argument("--quick", action="store_true", help="the quick preset's evaluation settings")
    parser.add_argument("--data", type=Path, default=prepare_data.DEFAULT_DATA_DIR)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch and OpenMP threads (default: all cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _, _ = load_checkpoint(args.checkpoint)
    preset = settings.QUICK if args.quick else settings.FULL
    result = evaluate(model, prepare_data.load(args.data), preset.evaluation)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    for row in result["robustness"]:
        print(f"{row['kind']:>12} {row['level']:<5g} +{row['bits_increase']:.4f} bits/char, accuracy -{row['accuracy_drop']:.4f}")
    if result["margins"] is None:
        print(f"margins not measured: {suptok_calls.analyse_unavailable()}")
        return
    for layer in result["margins"]["layers"]:
        print(f"layer {layer['layer']}: log|det J_t| median {layer['median_log_abs_det']:.4f}, 5% {layer['p5_log_abs_det']:.4f};"
              f" signed margin median {layer['median_signed_margin']:.4f}, 5% {layer['p5_signed_margin']:.4f};"
              f" infeasible {layer['infeasible_fraction']:.3f}, support {layer['support_fraction']:.3f}")


if __name__ == "__main__":
    main()
