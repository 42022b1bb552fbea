#!/usr/bin/python3
"""The reproduction experiment: every lambda with every seed, same data, budget and evaluation.

usage: run.py [--quick] [--lambdas L [L ...]] [--seeds S] [--steps N] [--data DIR] [--out DIR] [--threads T] [--jobs J]

For each seed and lambda (default 0, 0.02, 0.05): train.py's training, the checkpoint
OUT/<preset>/lambda<L>_seed<S>/model.pt, evaluate.py's test-split evaluation. Then, in
OUT/<preset>/: results.json (settings, command, machine, every run with its curves and
measurements), results.csv (one row per run), loss_curves.png, robustness.png,
margin_histograms.png and margin_strip.png (the last two when suptok.analyse is importable), and
the summary tables on the terminal. --quick: the tiny preset, one seed (about a minute in all on
2 cores); the default is the full preset, 3 seeds. lambda > 0 needs suptok.torch (build/python on
PYTHONPATH). --jobs J: J runs at once in worker processes, each with T / J threads (one progress
line for all runs then); on two cores, --jobs 2 --threads 2 gives each run one core, which the
small matrices of the full preset use better than two threads of one run.
"""
import argparse
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
import json
import multiprocessing
import os
from pathlib import Path
import platform
import sys
import time

import torch

import evaluate
import prepare_data
import progress
import report
import settings
import suptok_calls
import train


def blas_files():
    """The BLAS libraries this process has mapped: Debian's PyTorch calls whichever libblas.so.3 the
    system selects, and the reference BLAS (libblas3 alone) makes every matrix product slow."""
    return sorted({line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "blas" in line.split()[-1]})


def machine():
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "blas": blas_files(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def one_run(preset, barrier_weight, seed, corpus, out, progress=True):
    label = f"lambda {barrier_weight:g} seed {seed}"
    config = preset.train_config(barrier_weight, seed)
    model, history = train.train(preset.model_config(len(corpus.characters)), config, corpus, progress=progress,
                                 label=f"train {label}")
    run_dir = preset.run_dir(out, barrier_weight, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    train.save_checkpoint(run_dir / "model.pt", model, config, corpus.characters)
    history["steps"] = config.steps
    history["barrier_share"] = history["barrier_seconds"] / history["step_seconds"] if barrier_weight > 0 else None
    return {"lambda": barrier_weight, "seed": seed, "checkpoint": str(run_dir / "model.pt"), "train": history,
            "test": evaluate.evaluate(model, corpus, preset.evaluation, progress=progress, label=f"evaluate {label}")}


def worker_run(preset, barrier_weight, seed, corpus, out, threads):
    """one_run in a worker process of --jobs: its own threads, no per-run progress line."""
    torch.set_num_threads(threads)
    return one_run(preset, barrier_weight, seed, corpus, out, progress=False)


def all_runs(preset, lambdas, seeds, corpus, args):
    """Every (seed, lambda) run, in this order in the result; args.jobs > 1 runs them in a pool of
    worker processes (spawned, so that no PyTorch thread pool is forked) with one progress line. A
    spawned worker imports the calling script: call this from under `if __name__ == "__main__"`."""
    order = [(seed, lam) for seed in range(seeds) for lam in lambdas]
    if args.jobs == 1:
        return [one_run(preset, lam, seed, corpus, args.out) for seed, lam in order]
    threads = max(1, args.threads // args.jobs)
    for pool_size in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # read by the workers' libraries when they load
        os.environ[pool_size] = str(threads)
    bar = progress.Progress(f"{len(order)} runs, {args.jobs} at once", len(order))
    results = {}
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(worker_run, preset, lam, seed, corpus, args.out, threads): (seed, lam) for seed, lam in order}
        bar.update(0)
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            seed, lam = futures[future]
            bar.update(len(results), f"done: lambda {lam:g} seed {seed}")
    bar.close()
    return [results[key] for key in order]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, few steps, one seed: about a minute")
    parser.add_argument("--lambdas", type=float, nargs="+", default=list(settings.LAMBDAS))
    parser.add_argument("--seeds", type=int, help="seeds 0 .. S-1 (default: the preset's)")
    parser.add_argument("--steps", type=int, help="training steps (default: the preset's), to fit another machine's budget")
    parser.add_argument("--data", type=Path, default=prepare_data.DEFAULT_DATA_DIR, help="prepared data (made when missing)")
    parser.add_argument("--out", type=Path, default=settings.DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch and OpenMP threads (default: all cores)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, in worker processes sharing the threads (default 1)")
    args = parser.parse_args()
    if args.threads < 1 or args.jobs < 1:
        parser.error(f"--threads {args.threads} and --jobs {args.jobs} must be at least 1")
    if any(lam > 0 for lam in args.lambdas) and suptok_calls.barrier_unavailable():
        parser.error(f"lambda > 0 needs the barrier operator: {suptok_calls.barrier_unavailable()} (or pass --lambdas 0)")
    reference_blas = [path for path in blas_files() if "/blas/libblas.so" in path]  # Debian's netlib BLAS
    if reference_blas:
        print(f"run.py: PyTorch runs on the reference BLAS ({reference_blas[0]}): training will be several times slower; "
              "install an optimised one, e.g. apt-get install libopenblas0-pthread (docs/reproduction.md)", file=sys.stderr)
    torch.set_num_threads(args.threads)
    preset = settings.QUICK if args.quick else settings.FULL
    if args.steps:
        preset = replace(preset, train=replace(preset.train, steps=args.steps))
    seeds = args.seeds or preset.seeds
    corpus = prepare_data.load(args.data)
    started = time.perf_counter()
    runs = all_runs(preset, args.lambdas, seeds, corpus, args)
    out_dir = args.out / preset.name
    results = {"command": " ".join(["run.py", *sys.argv[1:]]), "machine": machine(), "jobs": args.jobs, "wall_seconds": time.perf_counter() - started,
               "preset": asdict(preset), "runs": runs}
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    report.write_csv(runs, out_dir / "results.csv")
    print(report.summary_tables(runs))
    written = [out_dir / "results.json", out_dir / "results.csv"]
    try:
        import figures
        written += figures.draw_all(runs, corpus.characters, out_dir, preset.evaluation.support_delta)
    except ImportError as error:
        print(f"no figures: {error} (install python3-matplotlib)")
    print(f"\n{len(runs)} runs in {results['wall_seconds']:.0f} s; written: {', '.join(str(p) for p in written)}")


if __name__ == "__main__":
    main()
