#!/usr/bin/env python3
"""The worked example of docs/interop.md: a PyTorch model trained with the barrier in its loss,
exported for suptok-analyze and suptok-plot.

usage: PYTHONPATH=build/python python3 python/examples/interop.py OUTDIR

1. A small causal language model (token embeddings, one attention layer with bias-free q, k, v, o
   projections and H = 4 heads, an unembedding) learns next-token prediction on sequences of a
   random Markov chain, with lambda * suptok.torch.barrier(...) added to the cross-entropy.
2. Its attention weights, mapped to the library's naming, go to OUTDIR/model.safetensors
   (suptok.save_layer) and the layer's input on one sequence to OUTDIR/U.npy (N, p).
3. suptok.analyse prints the support tokens of that sequence; the same table comes from
       suptok-analyze --embeddings OUTDIR/U.npy --weights OUTDIR/model.safetensors --support k=5 --json OUTDIR/analysis.json
       suptok-plot OUTDIR/analysis.json
"""
import os
import sys

import numpy as np
import torch

import suptok

VOCAB, P, H, D, N, BATCH, STEPS, LAMBDA = 16, 12, 4, 3, 48, 8, 60, 0.05


class CausalLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, P)
        self.q = torch.nn.Linear(P, H * D, bias=False)   # weight (H d_k, p): rows h d_k .. (h + 1) d_k - 1 are head h
        self.k = torch.nn.Linear(P, H * D, bias=False)
        self.v = torch.nn.Linear(P, H * D, bias=False)
        self.o = torch.nn.Linear(H * D, P, bias=False)   # weight (p, H d_v): columns h d_v .. (h + 1) d_v - 1 are head h
        self.unembed = torch.nn.Linear(P, VOCAB)

    def attention_weights(self):
        """W_Q, W_K (H, d_k, p), W_V (H, d_v, p), W_O (H, p, d_v): views of the projections, so the
        barrier's gradients reach them."""
        return (self.q.weight.view(H, D, P), self.k.weight.view(H, D, P), self.v.weight.view(H, D, P),
                self.o.weight.view(P, H, D).permute(1, 0, 2))

    def forward(self, tokens):
        U = self.embed(tokens)                                             # (B, N, p): the attention layer's input
        B, n, _ = U.shape
        q, k, v = (f(U).view(B, n, H, D).transpose(1, 2) for f in (self.q, self.k, self.v))  # (B, H, N, d)
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        a = torch.softmax((q @ k.transpose(-1, -2) / D ** 0.5).masked_fill(~causal, -float("inf")), dim=-1)
        mu = self.o((a @ v).transpose(1, 2).reshape(B, n, H * D))
        return self.unembed(U + mu), U


def markov_sequences(count, generator):
    """count sequences of N tokens from a fixed random Markov chain over VOCAB tokens."""
    T = torch.softmax(2 * torch.randn(VOCAB, VOCAB, generator=torch.Generator().manual_seed(7)), dim=1)
    tokens = torch.zeros(count, N, dtype=torch.long)
    for t in range(1, N):
        tokens[:, t] = torch.multinomial(T[tokens[:, t - 1]], 1, generator=generator).squeeze(1)
    return tokens


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = CausalLM()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    g = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        tokens = markov_sequences(BATCH, g)
        logits, U = model(tokens)
        ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        penalty = suptok.torch.barrier(U, *model.attention_weights(), mask="strict", policy="extended")
        opt.zero_grad()
        (ce + LAMBDA * penalty).backward()
        opt.step()
        if step % 20 == 0 or step == STEPS - 1:
            print(f"step {step:3d}: cross-entropy {ce.item():.4f}, barrier penalty {penalty.item():.4f}")

    with torch.no_grad():
        _, U = model(markov_sequences(1, g))
        W = model.attention_weights()
    suptok.save_layer(os.path.join(out, "model.safetensors"), *W)
    np.save(os.path.join(out, "U.npy"), U[0].numpy())  # float32: suptok-analyze computes in float, as here
    table = suptok.analyse(U[0], *W, support="k=5")
    support = [int(t) for t in table["position"][table["support"]]]
    print(f"support tokens of one sequence (5 smallest signed margins): {support}; "
          f"penalty {table['totals']['penalty']:.4f}")
    print(f"wrote {os.path.join(out, 'model.safetensors')} and {os.path.join(out, 'U.npy')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
