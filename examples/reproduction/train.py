#!/usr/bin/python3
"""MAP training of the character-level transformer: cross-entropy plus lambda times the barrier.

usage: train.py [--quick] [--lambda LAMBDA] [--seed SEED] [--data DIR] [--out DIR] [--threads T]

    loss = CE + lambda * P,    P = 1/L sum_l mean_{t >= 2, sequences in S} b_t(U_l, W_l)

CE is the mean next-character cross-entropy of the batch (B sequences of N characters). b_t is the
barrier of docs/math.md section 3 (extended policy, strict mask) of layer l's attention sub-layer
as a map of its own input U_l = LN_attn,l(x_{l-1}), computed by suptok.torch.barrier; lambda = 0
is plain training and never calls the library. S is a random subset of m of the batch's B
sequences, drawn anew each step: every sequence has the same number N - 2 of non-trivial tokens,
so the batch's mean barrier is the mean of its per-sequence means, and the mean over a uniformly
drawn subset is an unbiased estimate of it (and its gradient of the batch's gradient).

AdamW (weight decay on the matrices only), linear warm-up then cosine decay to final_lr_ratio of
the peak, gradient norm clipped. Deterministic given the seed: the seed fixes the initial weights
(torch.manual_seed), the batches (their own generator, so every lambda sees the same data in the
same order) and the barrier subsets (a third generator).
"""
import argparse
from dataclasses import asdict
import math
import os
from pathlib import Path
import sys
import time

import torch

from model import CharTransformer, ModelConfig, cross_entropy
from progress import Progress
import prepare_data
import settings
from settings import TrainConfig
import suptok_calls


def learning_rate_factor(step, config):
    """(step + 1) / W during the warm-up, then r + (1 - r) (1 + cos(pi f)) / 2 with f the fraction
    of the remaining steps done and r = final_lr_ratio."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    done = (step - config.warmup_steps) / max(config.steps - config.warmup_steps, 1)
    return config.final_lr_ratio + (1 - config.final_lr_ratio) * (1 + math.cos(math.pi * done)) / 2


def optimiser(model, config):
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    adamw = torch.optim.AdamW([{"params": matrices, "weight_decay": config.weight_decay},
                               {"params": others, "weight_decay": 0.0}], lr=config.learning_rate)
    return adamw, torch.optim.lr_scheduler.LambdaLR(adamw, lambda step: learning_rate_factor(step, config))


def random_batch(tokens, context, batch_size, generator):
    """inputs, targets (B, N) int64: windows tokens[o : o + N] and tokens[o + 1 : o + N + 1] at
    uniformly drawn offsets o."""
    offsets = torch.randint(0, len(tokens) - context, (batch_size,), generator=generator)
    window = tokens[offsets[:, None] + torch.arange(context + 1)].long()
    return window[:, :-1], window[:, 1:]


def barrier_term(model, attention_inputs, subset):
    """The barrier term P of the loss on the sequences `subset`, and a surrogate with value 0 and
    gradient dP/dtheta.

    P is evaluated and differentiated on detached copies x' of its inputs x (each layer's
    U_l[subset] and head stack), so that the library's forward and backward can be timed apart from
    the rest of the step; surrogate = sum_x <x - x.detach(), dP/dx'> then carries that gradient into
    the model by the chain rule: CE + lambda (P + surrogate) has the value and the gradient of
    CE + lambda P."""
    stacks = [(u[subset], *block.attention.head_stack()) for u, block in zip(attention_inputs, model.blocks)]
    copies = [[x.detach().requires_grad_() for x in stack] for stack in stacks]  # per layer (U, W_Q, W_K, W_V, W_O)
    value = torch.stack([suptok_calls.barrier(U, heads, model.config.temperature) for U, *heads in copies]).mean()
    inputs, leaves = [x for stack in stacks for x in stack], [x for copy in copies for x in copy]
    gradients = torch.autograd.grad(value, leaves)
    return value.detach(), sum(((x - x.detach()) * g).sum() for x, g in zip(inputs, gradients))


@torch.no_grad()
def mean_cross_entropy(model, inputs, targets, batch_size=64):
    """Mean cross-entropy in nats over windows (W, N), evaluated in batches."""
    total = 0.0
    for start in range(0, len(inputs), batch_size):
        logits, _ = model(model.embed(inputs[start:start + batch_size]))
        total += cross_entropy(logits, targets[start:start + batch_size]).item() * len(logits)
    return total / len(inputs)


def train(model_config, config, corpus, progress=True, label="train"):
    """Trains a fresh model; returns it with its history: per step the training CE (nats) and the
    barrier estimate (None when lambda = 0), validation CE every eval_every steps and at the end,
    and the wall times of the steps and of the barrier term within them."""
    if config.barrier_weight > 0 and suptok_calls.barrier_unavailable():
        raise RuntimeError(f"lambda = {config.barrier_weight} needs the barrier operator: {suptok_calls.barrier_unavailable()}")
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(config.seed)
    model = CharTransformer(model_config)
    adamw, schedule = optimiser(model, config)
    data_order = torch.Generator().manual_seed(config.seed)
    subsets = torch.Generator().manual_seed(config.seed + 1)
    train_tokens = torch.from_numpy(corpus.train)
    val_inputs, val_targets = prepare_data.windows(corpus.validation, model_config.context, config.eval_windows)
    history = {"train_ce": [], "barrier": [], "validation": [], "step_seconds": 0.0, "barrier_seconds": 0.0}
    bar = Progress(label, config.steps, enabled=progress)
    for step in range(config.steps):
        started = time.perf_counter()
        inputs, targets = random_batch(train_tokens, model_config.context, config.batch_size, data_order)
        logits, attention_inputs = model(model.embed(inputs))
        ce = cross_entropy(logits, targets)
        loss, barrier = ce, None
        if config.barrier_weight > 0:
            barrier_started = time.perf_counter()
            subset = torch.randperm(config.batch_size, generator=subsets)[: config.barrier_sequences]
            barrier, surrogate = barrier_term(model, attention_inputs, subset)
            history["barrier_seconds"] += time.perf_counter() - barrier_started
            loss = ce + config.barrier_weight * (barrier + surrogate)
        adamw.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        adamw.step()
        schedule.step()
        history["step_seconds"] += time.perf_counter() - started
        history["train_ce"].append(ce.item())
        history["barrier"].append(None if barrier is None else barrier.item())
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            history["validation"].append((step + 1, mean_cross_entropy(model, val_inputs, val_targets)))
        note = f"loss {ce.item():.3f}" + ("" if barrier is None else f"  barrier {barrier.item():.3g}")
        bar.update(step + 1, note)
    bar.close(f"validation CE {history['validation'][-1][1]:.3f} nats")
    return model, history


def save_checkpoint(path, model, config, characters):
    torch.save({"model_config": asdict(model.config), "train_config": asdict(config), "characters": characters,
                "state_dict": model.state_dict()}, path)


def load_checkpoint(path):
    """(model, train_config, characters) from save_checkpoint's file."""
    saved = torch.load(path)
    model = CharTransformer(ModelConfig(**saved["model_config"]))
    model.load_state_dict(saved["state_dict"])
    return model, TrainConfig(**saved["train_config"]), saved["characters"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick preset (tiny model, few steps)")
    parser.add_argument("--lambda", dest="barrier_weight", type=float, default=0.0, help="barrier weight (default 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=prepare_data.DEFAULT_DATA_DIR, help="prepared data (made when missing)")
    parser.add_argument("--out", type=Path, default=settings.DEFAULT_OUT,
                        help="model.pt goes to OUT/<preset>/lambda<LAMBDA>_seed<SEED>/")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch and OpenMP threads (default: all cores)")
    args = parser.parse_args()
    if args.barrier_weight > 0 and suptok_calls.barrier_unavailable():
        parser.error(f"lambda > 0 needs the barrier operator: {suptok_calls.barrier_unavailable()}")
    torch.set_num_threads(args.threads)
    preset = settings.QUICK if args.quick else settings.FULL
    corpus = prepare_data.load(args.data)
    model_config = preset.model_config(len(corpus.characters))
    config = preset.train_config(args.barrier_weight, args.seed)
    model, history = train(model_config, config, corpus)
    run_dir = preset.run_dir(args.out, args.barrier_weight, args.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run_dir / "model.pt", model, config, corpus.characters)
    print(f"checkpoint: {run_dir / 'model.pt'}", file=sys.stderr)


if __name__ == "__main__":
    main()
