"""A small character-level causal transformer whose attention is the suptok library's attention.

    x_0   = E_tok[c_t] + E_pos[t]                                   input embeddings (B, N, p)
    u_l   = LN_attn,l(x_{l-1})                                      attention input  (B, N, p)
    y_l   = x_{l-1} + mu(u_l)                                       pre-norm block: attention ...
    x_l   = y_l + MLP_l(LN_mlp,l(y_l))                              ... then the MLP (GELU, 4p)
    logits = LN_final(x_L) W_unembed^T                              (B, N, V)

mu is causal self-attention exactly as docs/math.md section 1 writes it, with the strict mask:

    a^h_ts = softmax over s < t of (W_Q^h u_t)^T (W_K^h u_s) / tau,     tau = sqrt(d_k)
    mu_t   = sum_h W_O^h sum_{s<t} a^h_ts W_V^h u_s                      mu_1 = 0 (empty past)

Why the strict mask (P(t) = {s < t}): it is the paper's setting (Agarwal et al., arXiv:2602.22271)
and the one under which docs/math.md section 3 proves that det J_t > 0 makes the latent-noise
density proper; J_t then comes from the query path alone, the first two tokens are trivial
(J_t = I) and the inclusive mask's degenerate first token (J_1 = I - sum_h V_h) does not arise.
The model loses nothing by it: token t still reads itself through the residual stream. The
barrier is called with the same mask (suptok_calls.MASK).

The projections have no biases, so one block's attention is fully described by the head stack
(W_Q, W_K, W_V, W_O) that the library takes; `CausalSelfAttention.head_stack` returns it as views
of the projection weights, and the forward pass itself runs on those views.
"""
from dataclasses import dataclass
import math

import torch
from torch import nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int    # V
    context: int       # N, the sequence length the position table covers
    width: int         # p
    heads: int         # H; d_k = d_v = p / H
    layers: int        # L
    mlp_ratio: int = 4

    def __post_init__(self):
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")

    @property
    def head_width(self):
        return self.width // self.heads

    @property
    def temperature(self):
        """tau = sqrt(d_k), the library's default temperature (docs/math.md section 1)."""
        return math.sqrt(self.head_width)


class CausalSelfAttention(nn.Module):
    """mu(u) of docs/math.md section 1 under the strict mask; u (B, N, p) -> mu (B, N, p)."""

    def __init__(self, config):
        super().__init__()
        p, n = config.width, config.heads * config.head_width
        self.heads, self.head_width, self.temperature = config.heads, config.head_width, config.temperature
        self.query = nn.Linear(p, n, bias=False)   # weight (H d_k, p)
        self.key = nn.Linear(p, n, bias=False)     # weight (H d_k, p)
        self.value = nn.Linear(p, n, bias=False)   # weight (H d_v, p)
        self.output = nn.Linear(n, p, bias=False)  # weight (p, H d_v)

    def head_stack(self):
        """(W_Q, W_K, W_V, W_O) of shapes (H, d_k, p), (H, d_k, p), (H, d_v, p), (H, p, d_v): views
        of the projection weights in the layout of suptok.torch.barrier and suptok.analyse.

        A Linear computes W u, so head h's query q^h = W_Q^h u is rows h d_k .. (h+1) d_k - 1 of
        query.weight: W_Q[h] = query.weight[h d_k:(h+1) d_k, :], and the same for W_K and W_V.
        The output reads the heads' concatenated values z = (z^1, ..., z^H):
        output.weight z = sum_h output.weight[:, h d_v:(h+1) d_v] z^h, so
        W_O[h] = output.weight[:, h d_v:(h+1) d_v]."""
        H, d = self.heads, self.head_width
        p = self.query.in_features
        return (self.query.weight.view(H, d, p), self.key.weight.view(H, d, p),
                self.value.weight.view(H, d, p), self.output.weight.view(p, H, d).transpose(0, 1))

    def forward(self, u):
        W_Q, W_K, W_V, W_O = self.head_stack()
        N = u.shape[1]
        q = torch.einsum("bnp,hdp->bhnd", u, W_Q)  # (B, H, N, d_k)
        k = torch.einsum("bnp,hdp->bhnd", u, W_K)  # (B, H, N, d_k)
        v = torch.einsum("bnp,hdp->bhnd", u, W_V)  # (B, H, N, d_v)
        # Queries t = 1 .. N-1 (0-based); row i of `past` is query t = i + 1 and allows keys s <= i,
        # i.e. s < t. Query 0 has an empty past: its weights are all zero, so mu_0 = 0.
        past = torch.ones(N - 1, N, dtype=torch.bool, device=u.device).tril()
        logits = q[:, :, 1:] @ k.transpose(-1, -2) / self.temperature  # (B, H, N-1, N)
        weights = logits.masked_fill(~past, float("-inf")).softmax(dim=-1)
        z = F.pad(weights @ v, (0, 0, 1, 0))  # (B, H, N, d_v), row 0 zero
        return torch.einsum("bhnd,hpd->bnp", z, W_O)


class Block(nn.Module):
    """x -> y = x + mu(LN_attn(x)) -> y + MLP(LN_mlp(y)); also returns the attention input u."""

    def __init__(self, config):
        super().__init__()
        p = config.width
        self.attention_norm = nn.LayerNorm(p)
        self.attention = CausalSelfAttention(config)
        self.mlp_norm = nn.LayerNorm(p)
        self.mlp = nn.Sequential(nn.Linear(p, config.mlp_ratio * p), nn.GELU(), nn.Linear(config.mlp_ratio * p, p))

    def forward(self, x):
        u = self.attention_norm(x)
        y = x + self.attention(u)
        return y + self.mlp(self.mlp_norm(y)), u


class CharTransformer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Embedding(config.context, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.width)
        self.unembedding = nn.Linear(config.width, config.vocab_size, bias=False)
        for module in self.modules():  # N(0, 0.02) weights, zero biases; LayerNorms keep (1, 0)
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def embed(self, tokens):
        """Input embeddings x_0 (B, N, p) of token ids (B, N), N <= context."""
        return self.token_embedding(tokens) + self.position_embedding.weight[: tokens.shape[1]]

    def forward(self, x):
        """x: input embeddings (B, N, p), as from embed(). Returns the logits (B, N, V) and the
        attention inputs [u_1, ..., u_L], each (B, N, p)."""
        attention_inputs = []
        for block in self.blocks:
            x, u = block(x)
            attention_inputs.append(u)
        return self.unembedding(self.final_norm(x)), attention_inputs


def cross_entropy(logits, targets):
    """Mean next-character cross-entropy in nats; logits (B, N, V), targets (B, N)."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())
