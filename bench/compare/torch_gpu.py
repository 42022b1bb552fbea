#!/usr/bin/env python3
"""bench/compare/torch_gpu.py: the PyTorch side of the GPU comparison (scripts/gpu-check.sh).

Subcommands
  run [REPS]                 time the GPU workloads in PyTorch (median of REPS, default 20, after 3
                             warm-ups, by CUDA events) and print one line per workload:
                             RESULT <workload> <storage> <ms> <GFLOP/s> <peak MiB over the inputs>
                             (exit 77 without CUDA)
  table SUPTOK TORCH         the markdown table of both sides' RESULT lines, with the ratios

The workloads have bench/cuda/bench_cuda.cu's shapes and flop counts:
  attention_fwd      torch.nn.functional.scaled_dot_product_attention(is_causal=True), (1, 32, 4096, 128),
                     float32 and bfloat16 (PyTorch picks its fastest backend: FlashAttention for bf16)
  barrier_fwd        the einsum/slogdet barrier of torch_workloads.py, (8, 2048, 64), float32
  barrier_fwd_bwd    the same with autograd to U, W_Q and W_K (suptok's also reaches W_V and W_O)
  layer_barrier_fwd  the projected-form GPT-2 layer of torch_workloads.py, N = 1024, p = 768, float32
                     (suptok's: barrier_per_token(cuda, ..., jacobian_form::projected), no biases)
  layer_barrier_fwd_bwd  the same with autograd to U and the four weights (the mean of b_t)
Float32 matrix products run in full float32 (TF32 off), as suptok's cuBLAS calls do.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def median_ms(torch, reps, work):
    for _ in range(3):
        work()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        work()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def measure(torch, name, storage, reps, flops, work):
    """Times work() and prints its RESULT line; the peak is the memory it allocates over what was
    allocated before (its inputs)."""
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    ms = median_ms(torch, reps, work)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    print(f"RESULT {name} {storage} {ms:.4f} {flops / ms * 1e-6:.1f} {peak:.1f}", flush=True)


def run(reps):
    import torch
    if not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA device")
        sys.exit(77)
    import torch_workloads as tw
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_default_device("cuda")
    gen = torch.Generator(device="cuda").manual_seed(1)

    def normal(*shape, std=1.0, dtype=torch.float32):
        return (torch.randn(*shape, generator=gen) * std).to(dtype)

    bh, N, d = 32, 4096, 128
    for storage, dtype in (("float", torch.float32), ("bf16", torch.bfloat16)):
        q, k, v = (normal(1, bh, N, d, dtype=dtype) for _ in range(3))
        measure(torch, "attention_fwd", storage, reps, 2.0 * bh * N * N * d,
                lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))
        del q, k, v

    B, N, p = 8, 2048, 64
    w = p * (p + 3) // 2
    flops = B * N * N * w + 4.0 * B * N * p**3
    U = normal(B, N, p)
    W_Q, W_K = normal(p, p, std=math.sqrt(0.25 / p)), normal(p, p, std=math.sqrt(0.25 / p))
    with torch.no_grad():
        measure(torch, "barrier_fwd", "float", reps, flops, lambda: tw.barrier_penalty(torch, U, W_Q, W_K))
    for x in (U, W_Q, W_K):
        x.requires_grad_(True)
    measure(torch, "barrier_fwd_bwd", "float", reps, 3 * flops,
            lambda: torch.autograd.grad(tw.barrier_penalty(torch, U, W_Q, W_K), (U, W_Q, W_K)))
    del U, W_Q, W_K

    N, p, H, d = 1024, 768, 12, 64
    U = normal(N, p)
    W = [normal(H, d, p, std=0.05) for _ in range(3)] + [normal(H, p, d, std=0.02)]
    b = [normal(H, d, std=0.02) for _ in range(3)]
    n = H * d
    flops = H * N * N * d * d + N * (2.0 / 3.0) * n**3  # the value-key moments (causal half) and the LUs
    with torch.no_grad():
        measure(torch, "layer_barrier_fwd", "float", max(3, reps // 4), flops,
                lambda: tw.projected_layer_barrier(torch, U, *W, *b))
    for x in [U] + W:
        x.requires_grad_(True)
    measure(torch, "layer_barrier_fwd_bwd", "float", max(3, reps // 4), 3 * flops,
            lambda: torch.autograd.grad(tw.projected_layer_barrier(torch, U, *W, *b).mean(), [U] + W))


def read_results(path):
    rows = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) == 6 and fields[0] == "RESULT":
                rows[(fields[1], fields[2])] = [float(x) for x in fields[3:]]
    return rows


def table(suptok_path, torch_path):
    ours, theirs = read_results(suptok_path), read_results(torch_path)
    print("| workload | storage | suptok ms | PyTorch ms | speed-up | suptok GFLOP/s | PyTorch GFLOP/s "
          "| suptok workspace MiB | PyTorch peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        cell = lambda r, i, f: (f % r[i]) if r else "-"
        ratio = f"{b[0] / a[0]:.2f}x" if a and b else "-"
        print(f"| {key[0]} | {key[1]} | {cell(a, 0, '%.3f')} | {cell(b, 0, '%.3f')} | {ratio} | "
              f"{cell(a, 1, '%.0f')} | {cell(b, 1, '%.0f')} | {cell(a, 2, '%.0f')} | {cell(b, 2, '%.0f')} |")


def main(argv):
    if len(argv) >= 1 and argv[0] == "run" and len(argv) <= 2:
        reps = int(argv[1]) if len(argv) == 2 else 20
        if reps < 1:
            sys.exit("torch_gpu.py: REPS must be positive")
        run(reps)
    elif len(argv) == 3 and argv[0] == "table":
        table(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
