#!/usr/bin/python3
"""Data, training, evaluation and reports of examples/reproduction, on a synthetic corpus (the
Bible is not needed) with a tiny model; a few seconds on one core.

1. The split rule of prepare_data.py on 250,000 token ids: chunk 18 is validation, chunk 19 test,
   the rest training, in order; encode() inverts; windows() shifts targets by one.
2. The learning-rate factor: 1/W at step 0, 1 at the end of the warm-up, final_lr_ratio at the end.
3. 60 steps at lambda = 0 lower the validation cross-entropy of the untrained model by more than
   0.5 nats (random words over 21 characters: the untrained model is near log 21 = 3.04 nats, and
   the spelling of 12 words alone is worth far more than that).
4. The same seed gives the same losses bit for bit; another seed gives other losses.
5. Evaluation: noise of scale 0 and substitution of rate 0 change nothing; rate 1 replaces every
   character by another.
6. The driver's record of one run gives a CSV row, the summary tables and the robustness figure.
"""
import tempfile
from pathlib import Path

from check_setup import expect, finish, setup, synthetic_corpus

setup()
from dataclasses import replace  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from model import CharTransformer  # noqa: E402
import evaluate  # noqa: E402
import prepare_data  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
import settings  # noqa: E402
import train  # noqa: E402

# 1. data
tokens = (np.arange(250_000) % 251).astype(np.uint8)
splits = prepare_data.split_tokens(tokens)
expect({k: len(v) for k, v in splits.items()} == {"train": 230_000, "validation": 10_000, "test": 10_000},
       "split sizes 230,000 / 10,000 / 10,000 for 25 chunks")
expect(np.array_equal(splits["validation"], tokens[180_000:190_000]) and np.array_equal(splits["test"], tokens[190_000:200_000])
       and np.array_equal(splits["train"], np.concatenate([tokens[:180_000], tokens[200_000:]])),
       "chunk 18 validation, chunk 19 test, the others training in order")
text = "in the beginning\n"
ids, characters = prepare_data.encode(text)
expect("".join(characters[i] for i in ids) == text and characters == sorted(set(text)), "encode: sorted characters, decodes back")
corpus = synthetic_corpus()
characters = corpus.characters
inputs, targets = prepare_data.windows(corpus.train, 16, 5)
expect(inputs.shape == (5, 16) and torch.equal(inputs[:, 1:], targets[:, :-1]), "windows: (5, 16), targets shifted by one")

# 2. schedule
config = settings.TrainConfig(steps=60, batch_size=8, learning_rate=1e-2, warmup_steps=6, eval_every=20, eval_windows=16)
factors = [train.learning_rate_factor(s, config) for s in (0, 5, 60)]
expect(math.isclose(factors[0], 1 / 6) and factors[1] == 1.0 and math.isclose(factors[2], config.final_lr_ratio),
       f"learning-rate factor 1/W, 1, r at steps 0, W - 1, end: {factors}")

# 3. training lowers the loss
preset = replace(settings.QUICK, name="check", context=16, width=16, heads=2, layers=2, train=config,
                 evaluation=settings.EvalConfig(windows=32, noise_scales=(0.0, 0.5), substitution_rates=(0.0, 1.0)))
model_config = preset.model_config(len(characters))
torch.manual_seed(config.seed)
untrained = CharTransformer(model_config)
val_inputs, val_targets = prepare_data.windows(corpus.validation, 16, config.eval_windows)
before = train.mean_cross_entropy(untrained, val_inputs, val_targets)
model, history = train.train(model_config, config, corpus, progress=False)
after = history["validation"][-1][1]
expect(after < before - 0.5, f"60 steps: validation CE {before:.3f} -> {after:.3f} nats")

# 4. determinism
_, again = train.train(model_config, config, corpus, progress=False)
_, other = train.train(model_config, replace(config, seed=1), corpus, progress=False)
expect(again["train_ce"] == history["train_ce"], "same seed: the same losses bit for bit")
expect(other["train_ce"] != history["train_ce"], "another seed: other losses")

# 5. evaluation
result = evaluate.evaluate(model, corpus, preset.evaluation, progress=False)
by_level = {(r["kind"], r["level"]): r for r in result["robustness"]}
expect(by_level["noise", 0.0]["bits_increase"] == 0 and by_level["substitution", 0.0]["bits_increase"] == 0,
       "noise 0 and substitution 0 change nothing")
replaced = evaluate.substitute(val_inputs, 1.0, len(characters), torch.Generator().manual_seed(0))
expect(bool((replaced != val_inputs).all()) and bool((replaced < len(characters)).all()),
       "substitution rate 1 replaces every character by another one of the vocabulary")

# 6. the driver's reports
with tempfile.TemporaryDirectory() as out:
    record = run.one_run(preset, 0.0, 0, corpus, Path(out))
    table = report.summary_tables([record])
    report.write_csv([record], Path(out) / "results.csv")
    rows = (Path(out) / "results.csv").read_text().splitlines()
    expect(len(rows) == 2 and rows[0].startswith("lambda,seed,steps"), "results.csv: a header and one row")
    expect("bits/char" in table and "substitution 1" in table, "summary tables name their columns and levels")
    try:
        import figures
        paths = figures.draw_all([record], characters, Path(out), 0.1)
        expect(all(p.stat().st_size > 0 for p in paths), f"figures written: {[p.name for p in paths]}")
    except ImportError:
        print("matplotlib is not installed: figures not checked")
finish()
