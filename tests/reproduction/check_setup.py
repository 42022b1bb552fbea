"""Shared start of the reproduction checks: usage CHECK.py EXPERIMENT_DIR.

setup() exits 77 (ctest: skipped) when PyTorch is missing, puts EXPERIMENT_DIR on the import path
and runs PyTorch on one thread; expect() counts failed checks and finish() exits 1 if any failed;
synthetic_corpus() is a stand-in for the Bible: 12,000 random words of a list of 12 (21
characters), split in thirds."""
import random
import sys

failures = []


def setup():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (python3-torch): skipped")
        sys.exit(77)
    sys.path.insert(0, sys.argv[1])
    torch.set_num_threads(1)


def expect(condition, what):
    print(f"{'ok  ' if condition else 'FAIL'} {what}")
    if not condition:
        failures.append(what)


def finish():
    print(f"{len(failures)} failed" if failures else "all passed")
    sys.exit(1 if failures else 0)


def synthetic_corpus():
    import prepare_data
    words = ["in", "the", "beginning", "god", "created", "heaven", "and", "earth", "was", "without", "form", "void"]
    rng = random.Random(3)
    ids, characters = prepare_data.encode(" ".join(rng.choice(words) for _ in range(12_000)) + ".\n")
    third = len(ids) // 3
    return prepare_data.Corpus(ids[:third], ids[third:2 * third], ids[2 * third:], characters)
