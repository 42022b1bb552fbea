#!/usr/bin/python3
"""The model of examples/reproduction/model.py: gradients and attention.

1. torch.autograd.gradcheck in double of the cross-entropy of a tiny model (V = 5, N = 6, p = 8,
   H = 2, L = 2) with respect to every parameter, embeddings included: central differences
   with gradcheck's defaults (eps 1e-6, atol 1e-5, rtol 1e-3), far above the O(eps^2) truncation
   and the 1e-16 / eps rounding of double.
2. Attention against docs/math.md section 1 written as loops over heads, queries t and keys s < t,
   on the head stack: within 1e-12 (double, O(1) entries).
3. The head stack against the projections it is a view of: W_Q[h] u equals rows h d_k .. of
   query(u), and sum_h W_O[h] z^h equals output(z): within 1e-12.
4. Causality of the strict mask: mu_0 = 0 exactly, and changing u_k leaves mu_t for t < k unchanged.
"""
from check_setup import expect, finish, setup

setup()
import torch  # noqa: E402
from torch.nn.utils.stateless import functional_call  # noqa: E402

from model import CharTransformer, ModelConfig, cross_entropy  # noqa: E402

torch.manual_seed(7)
config = ModelConfig(vocab_size=5, context=6, width=8, heads=2, layers=2)
model = CharTransformer(config).double()
with torch.no_grad():  # weights large enough that the softmax is far from uniform
    for parameter in model.parameters():
        parameter.normal_(0.0, 0.5)
tokens = torch.randint(0, 5, (2, 6))
targets = torch.randint(0, 5, (2, 6))


class Loss(torch.nn.Module):
    """The model's cross-entropy on the fixed tokens and targets, as a module of the model's
    parameters, so that functional_call can put gradcheck's inputs in their place."""

    def __init__(self):
        super().__init__()
        self.model = model

    def forward(self):
        logits, _ = self.model(self.model.embed(tokens))
        return cross_entropy(logits, targets)


loss = Loss()
names = [name for name, _ in loss.named_parameters()]
parameters = tuple(p.detach().clone().requires_grad_() for p in loss.parameters())
expect(torch.autograd.gradcheck(lambda *values: functional_call(loss, dict(zip(names, values)), ()), parameters,
                                raise_exception=False),
       f"gradcheck of the cross-entropy in all {sum(p.numel() for p in parameters)} parameters")


def attention_by_loops(u, W_Q, W_K, W_V, W_O, tau):
    """mu_t = sum_h W_O^h sum_{s<t} a^h_ts W_V^h u_s, a^h_t. = softmax_s (W_Q^h u_t).(W_K^h u_s) / tau."""
    N, p = u.shape
    mu = torch.zeros(N, p, dtype=u.dtype)
    for h in range(W_Q.shape[0]):
        for t in range(1, N):
            logits = torch.stack([(W_Q[h] @ u[t]) @ (W_K[h] @ u[s]) / tau for s in range(t)])
            a = torch.softmax(logits, dim=0)
            mu[t] += W_O[h] @ sum(a[s] * (W_V[h] @ u[s]) for s in range(t))
    return mu


attention = model.blocks[0].attention
heads = attention.head_stack()
u = torch.randn(2, 6, 8, dtype=torch.double)
with torch.no_grad():
    mu = attention(u)
    error = max((mu[b] - attention_by_loops(u[b], *heads, config.temperature)).abs().max().item() for b in range(2))
    expect(error < 1e-12, f"attention against the loops of docs/math.md section 1: max error {error:.2e}")

    W_Q, W_K, W_V, W_O = heads
    d = config.head_width
    expect(all(torch.allclose(W @ u[0, 3], linear(u[0, 3])[h * d:(h + 1) * d], rtol=0, atol=1e-12)
               for W_stack, linear in ((W_Q, attention.query), (W_K, attention.key), (W_V, attention.value))
               for h, W in enumerate(W_stack)),
           "W_Q[h], W_K[h], W_V[h] are rows h d_k .. (h+1) d_k - 1 of the projections")
    z = torch.randn(2 * d, dtype=torch.double)
    expect(torch.allclose(sum(W_O[h] @ z[h * d:(h + 1) * d] for h in range(2)), attention.output(z), rtol=0, atol=1e-12),
           "sum_h W_O[h] z^h equals the output projection of the concatenated z")
    expect(bool((mu[:, 0] == 0).all()), "strict mask: mu_0 = 0 (empty past)")
    moved = u.clone()
    moved[:, 4] += 1.0
    expect(torch.equal(attention(moved)[:, :4], mu[:, :4]), "strict mask: changing u_4 leaves mu_0 .. mu_3 unchanged")
finish()
