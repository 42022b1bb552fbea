#!/usr/bin/env python3
"""A short training loop with suptok.torch.barrier in the loss (docs/math.md section 4,
docs/interop.md), in one process and under DistributedDataParallel.

usage: training.py          one process
       training.py --ddp    two processes, gloo backend on 127.0.0.1 (a free port)

The model: token embeddings, one attention layer with bias-free q, k, v, o projections (H = 2
heads of width 4, p = 8, the usual inclusive causal mask) and an unembedding, trained for next-token
prediction on sequences of a fixed random Markov chain (K = 7 tokens, 4 sequences of 12), in float64
with Adam. Loss = cross-entropy + lambda * barrier(U, W_Q, W_K, W_V, W_O) on the layer's input U
(B, N, p) (strict mask, extended policy), the weights taken from the projections as in
docs/interop.md.

One process: trained with lambda = 0 and lambda = 1 from the same start, the cross-entropy falls
in both by at least 20 % (measured 84 % and 72 %), and the final penalty with the barrier is lower
than without it by at least 0.05 (measured -11.3 against -0.24: -log det J_t has no lower bound,
and the barrier drives the determinants up).

--ddp: each of two ranks trains the DDP-wrapped model on its half of the batch; DDP averages the
gradients. The halves have as many tokens each, so the averaged loss is the full batch's and the
run must end where the one-process run on the full batch ends. Asserted: the two ranks' final
weights are identical (bitwise: DDP applies the same averaged gradients from the same start) and
within 1e-10 (relative to the largest weight) of the one-process weights (measured 3.4e-13).
"""
import os
import socket
import sys
import tempfile

from common import torch

import suptok

K, P, H, D, B, N, STEPS, LR = 7, 8, 2, 4, 4, 12, 30, 0.03


class TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(K, P)
        self.q = torch.nn.Linear(P, H * D, bias=False)
        self.k = torch.nn.Linear(P, H * D, bias=False)
        self.v = torch.nn.Linear(P, H * D, bias=False)
        self.o = torch.nn.Linear(H * D, P, bias=False)
        self.unembed = torch.nn.Linear(P, K)

    def heads(self):
        """The projections in the library's naming: W_Q, W_K (H, d_k, p), W_V (H, d_v, p), W_O (H, p, d_v)."""
        return (self.q.weight.view(H, D, P), self.k.weight.view(H, D, P), self.v.weight.view(H, D, P),
                self.o.weight.view(P, H, D).permute(1, 0, 2))

    def forward(self, tokens):
        U = self.embed(tokens)                                                  # (B, N, p)
        q, k, v = (f(U).view(*U.shape[:2], H, D).transpose(1, 2) for f in (self.q, self.k, self.v))
        mask = torch.ones(U.shape[1], U.shape[1], dtype=torch.bool).tril()
        a = torch.softmax((q @ k.transpose(-1, -2) / D ** 0.5).masked_fill(~mask, -float("inf")), dim=-1)
        mu = self.o((a @ v).transpose(1, 2).reshape(U.shape))
        return self.unembed(U + mu), U


def data():
    """B sequences of N tokens from a fixed random Markov chain over K tokens."""
    g = torch.Generator().manual_seed(1)
    T = torch.softmax(3 * torch.randn(K, K, generator=g, dtype=torch.float64), dim=1)
    tokens = torch.zeros(B, N, dtype=torch.long)
    for t in range(1, N):
        tokens[:, t] = torch.multinomial(T[tokens[:, t - 1]], 1, generator=g).squeeze(1)
    return tokens


def losses(model, tokens):
    """(cross-entropy, barrier penalty) of a batch of sequences; model is a TinyLM or wraps one (DDP)."""
    logits, U = model(tokens)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, K), tokens[:, 1:].reshape(-1))
    lm = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return ce, suptok.torch.barrier(U, *lm.heads())


def train(model, tokens, lam):
    """STEPS of Adam; returns the first and last cross-entropy and the last penalty."""
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    history = []
    for _ in range(STEPS):
        ce, penalty = losses(model, tokens)
        history.append((ce.item(), penalty.item()))
        opt.zero_grad()
        (ce + lam * penalty).backward()
        opt.step()
    with torch.no_grad():
        ce, penalty = losses(model, tokens)
    return history[0][0], ce.item(), penalty.item()


def new_model():
    torch.manual_seed(0)
    return TinyLM().double()


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def one_process():
    tokens = data()
    results = {}
    for lam in (0.0, 1.0):
        first, last, penalty = train(new_model(), tokens, lam)
        print(f"lambda {lam}: cross-entropy {first:.4f} -> {last:.4f}, final penalty {penalty:.4f}")
        assert last <= 0.8 * first, (lam, first, last)
        results[lam] = penalty
    assert results[1.0] <= results[0.0] - 0.05, results
    return 0


def rank_main(rank, port, out_dir):
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model = torch.nn.parallel.DistributedDataParallel(new_model())
    shard = data()[rank * B // 2:(rank + 1) * B // 2]
    train(model, shard, 1.0)
    torch.save(flat(model.module), os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def distributed():
    reference = new_model()
    train(reference, data(), 1.0)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # gloo on loopback
    with tempfile.TemporaryDirectory() as out_dir:
        torch.multiprocessing.spawn(rank_main, args=(free_port(), out_dir), nprocs=2, join=True)
        w0, w1 = (torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(2))
    assert torch.equal(w0, w1), (w0 - w1).abs().max().item()
    start = flat(new_model())
    moved = (w0 - start).abs().max().item()
    error = ((w0 - flat(reference)).abs().max() / w0.abs().max()).item()
    print(f"DDP, 2 ranks (gloo, loopback): final weights identical on both ranks; moved {moved:.3g} from the "
          f"start; against one process on the full batch {error:.3g} relative (bound 1e-10)")
    assert moved > 1e-2 and error <= 1e-10, (moved, error)
    return 0


if __name__ == "__main__":
    sys.exit(distributed() if "--ddp" in sys.argv[1:] else one_process())
