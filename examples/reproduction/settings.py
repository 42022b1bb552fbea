"""Training and evaluation settings, and the experiment's two budgets (docs/reproduction.md).

quick: a tiny model and few steps, about a minute for all runs together on 2 cores; it checks
that the pipeline works end to end and says nothing about the paper's claim.
full: width 64, 4 layers, context 128, the barrier on 1 of 32 sequences per step; meant to keep
each run within about 10 minutes on 2 cores (docs/reproduction.md says what was measured).
"""
from dataclasses import dataclass, replace
from pathlib import Path

from model import ModelConfig

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "build" / "reproduction"
LAMBDAS = (0.0, 0.02, 0.05)


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int              # B sequences of `context` characters per step
    learning_rate: float         # the peak
    warmup_steps: int
    barrier_weight: float = 0.0  # lambda
    barrier_sequences: int = 1   # m, the sequences of each batch the barrier is evaluated on
    seed: int = 0
    weight_decay: float = 0.1
    final_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 50         # steps between validation losses
    eval_windows: int = 32       # validation windows (fixed, evenly spaced over the split)

    def __post_init__(self):
        if not 1 <= self.barrier_sequences <= self.batch_size:
            raise ValueError(f"barrier_sequences {self.barrier_sequences} is not in [1, batch_size {self.batch_size}]")
        if not 0 < self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps {self.warmup_steps} is not in [1, steps {self.steps})")
        if self.barrier_weight < 0:
            raise ValueError(f"barrier_weight {self.barrier_weight} is negative")


@dataclass(frozen=True)
class EvalConfig:
    windows: int                                      # test windows (evenly spaced, non-overlapping); 0 = all
    noise_scales: tuple = (0.1, 0.25, 0.5, 1.0)       # Gaussian noise sigma / RMS of the input embeddings
    substitution_rates: tuple = (0.05, 0.1, 0.2)      # fraction of input characters replaced
    margin_windows: int = 4                           # test windows analysed by suptok.analyse, per layer
    support_delta: float = 0.1                        # support token: signed margin <= delta
    seed: int = 1234                                  # the perturbations' draws, the same for every model


@dataclass(frozen=True)
class Preset:
    name: str
    context: int
    width: int
    heads: int
    layers: int
    train: TrainConfig           # lambda and seed are set per run
    evaluation: EvalConfig
    seeds: int

    def model_config(self, vocab_size):
        return ModelConfig(vocab_size, self.context, self.width, self.heads, self.layers)

    def train_config(self, barrier_weight, seed):
        return replace(self.train, barrier_weight=barrier_weight, seed=seed)

    def run_dir(self, out, barrier_weight, seed):
        return Path(out) / self.name / f"lambda{barrier_weight:g}_seed{seed}"


QUICK = Preset("quick", context=32, width=32, heads=2, layers=2,
               train=TrainConfig(steps=300, batch_size=16, learning_rate=5e-3, warmup_steps=30, barrier_sequences=2,
                                 eval_every=50, eval_windows=16),
               evaluation=EvalConfig(windows=128, margin_windows=2), seeds=1)
FULL = Preset("full", context=128, width=64, heads=4, layers=4,
              train=TrainConfig(steps=1500, batch_size=32, learning_rate=3e-3, warmup_steps=100, barrier_sequences=1,
                                eval_every=100, eval_windows=64),
              evaluation=EvalConfig(windows=512, margin_windows=8), seeds=3)
