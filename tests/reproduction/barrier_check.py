#!/usr/bin/python3
"""lambda > 0 through the library's operator, suptok.torch.barrier; skipped (exit 77) while it is
not importable.

1. train.barrier_term on a tiny model in double (V = 21, N = 8, p = 8, H = 2, L = 2, weights of
   standard deviation 0.5 rather than 0.02, so that the attention is far from uniform): its value
   is the mean over layers of
   suptok_calls.barrier on the subset's sequences, and the gradient of P + surrogate equals the
   gradient of that mean taken by plain autograd through the operator, for every parameter, within
   1e-12 of the largest gradient entry (the same operator calls, summed in another order).
2. Five training steps at lambda = 0.05 in float32: every barrier estimate is finite, and the
   barrier's time is counted inside the step time.
"""
from check_setup import expect, finish, setup, synthetic_corpus

setup()
from dataclasses import replace  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

import suptok_calls  # noqa: E402

if suptok_calls.barrier_unavailable():
    print(f"{suptok_calls.barrier_unavailable()}: skipped")
    sys.exit(77)
from model import CharTransformer, ModelConfig  # noqa: E402
import settings  # noqa: E402
import train  # noqa: E402

corpus = synthetic_corpus()
torch.manual_seed(5)
config = ModelConfig(vocab_size=len(corpus.characters), context=8, width=8, heads=2, layers=2)
model = CharTransformer(config).double()
with torch.no_grad():
    for parameter in model.parameters():
        parameter.normal_(0.0, 0.5)
tokens = torch.randint(0, config.vocab_size, (4, 8))
subset = torch.tensor([3, 1])


def parameter_gradients(term):
    model.zero_grad(set_to_none=True)
    term.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


_, attention_inputs = model(model.embed(tokens))
value, surrogate = train.barrier_term(model, attention_inputs, subset)
timed = parameter_gradients(value + surrogate)
_, attention_inputs = model(model.embed(tokens))
direct = torch.stack([suptok_calls.barrier(u[subset], block.attention.head_stack(), config.temperature)
                      for u, block in zip(attention_inputs, model.blocks)]).mean()
plain = parameter_gradients(direct)
expect(abs(value.item() - direct.item()) <= 1e-12 * max(1.0, abs(direct.item())),
       f"barrier_term's value {value.item():.6g} against the plain mean {direct.item():.6g}")
scale = max(g.abs().max().item() for g in plain)
error = max((a - b).abs().max().item() for a, b in zip(timed, plain))
expect(scale > 0 and error <= 1e-12 * scale, f"gradient of P + surrogate against plain autograd: {error:.2e} of {scale:.2e}")

steps = settings.TrainConfig(steps=5, batch_size=4, learning_rate=1e-2, warmup_steps=1, barrier_weight=0.05,
                             barrier_sequences=2, eval_every=5, eval_windows=4)
_, history = train.train(replace(config, context=16), steps, corpus, progress=False)
expect(all(b is not None and math.isfinite(b) for b in history["barrier"]), f"5 steps at lambda 0.05: barrier {history['barrier']}")
expect(0 < history["barrier_seconds"] < history["step_seconds"],
       f"barrier time {history['barrier_seconds']:.3f} s within step time {history['step_seconds']:.3f} s")
finish()
