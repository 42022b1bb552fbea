#!/usr/bin/python3
"""The King James Bible as character-level data for the reproduction experiment.

usage: prepare_data.py [DATA_DIR]      (default: build/reproduction/data in the repository)

1. Installs Debian's bible-kjv (public domain text) with apt-get when the `bible` command is
   missing, through sudo when not run as root.
2. Dumps the whole text: bible -l0 "Genesis 1:1-Revelation 22:21", kept exactly as printed: each
   chapter headed by "<Book> <chapter>" between blank lines, then one verse per line as
   "  <verse number> <text>".
3. Vocabulary: the distinct characters of the whole text in code-point order; token i is the
   i-th of them.
4. Split, fixed and without randomness: the text is cut into consecutive chunks of CHUNK
   characters; chunk c goes to validation when c % 20 == 18, to test when c % 20 == 19, and to
   training otherwise (90 / 5 / 5 per cent, each split spread over the whole book). A split is its
   chunks concatenated in order, so one position in CHUNK joins two chunks that are not adjacent
   in the book.

Writes train.npy, validation.npy, test.npy (uint8 token ids) and vocab.json (the characters, the
split rule, the sizes and the SHA-256 of the text) into DATA_DIR.
"""
from dataclasses import dataclass
import hashlib
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys

import numpy as np
import torch

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPOSITORY / "build" / "reproduction" / "data"
PASSAGE = "Genesis 1:1-Revelation 22:21"
CHUNK = 10_000
PERIOD, VALIDATION_CHUNK, TEST_CHUNK = 20, 18, 19
SPLITS = ("train", "validation", "test")


@dataclass
class Corpus:
    train: np.ndarray        # uint8 token ids
    validation: np.ndarray
    test: np.ndarray
    characters: list         # token id -> character


def install_bible():
    if shutil.which("bible"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("prepare_data: installing bible-kjv (apt-get)", file=sys.stderr)
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "bible-kjv"]):
        subprocess.run(sudo + command, check=True, env=environment)


def dump_text():
    result = subprocess.run(["bible", "-l0", PASSAGE], check=True, capture_output=True, text=True)
    if len(result.stdout) < 1_000_000:
        raise RuntimeError(f"bible printed only {len(result.stdout)} characters for {PASSAGE!r}")
    return result.stdout


def split_of_chunk(chunk):
    """'train', 'validation' or 'test' for chunk index `chunk` (the rule in the module docstring)."""
    phase = chunk % PERIOD
    return "validation" if phase == VALIDATION_CHUNK else "test" if phase == TEST_CHUNK else "train"


def split_tokens(tokens):
    """The three splits of a token array, each the concatenation of its chunks in order."""
    parts = {name: [] for name in SPLITS}
    for chunk, start in enumerate(range(0, len(tokens), CHUNK)):
        parts[split_of_chunk(chunk)].append(tokens[start:start + CHUNK])
    return {name: np.concatenate(chunks) if chunks else tokens[:0] for name, chunks in parts.items()}


def encode(text):
    """(token ids uint8, characters) with the vocabulary of the module docstring."""
    characters = sorted(set(text))
    if len(characters) > 256:
        raise ValueError(f"{len(characters)} distinct characters do not fit uint8 token ids")
    index = {c: i for i, c in enumerate(characters)}
    return np.fromiter((index[c] for c in text), dtype=np.uint8, count=len(text)), characters


def prepare(data_dir):
    install_bible()
    text = dump_text()
    tokens, characters = encode(text)
    splits = split_tokens(tokens)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        np.save(data_dir / f"{name}.npy", splits[name])
    meta = {"source": f'bible -l0 "{PASSAGE}" (Debian bible-kjv)', "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "characters": characters, "chunk": CHUNK,
            "rule": f"chunk c: validation if c % {PERIOD} == {VALIDATION_CHUNK}, test if c % {PERIOD} == {TEST_CHUNK}, else train",
            "sizes": {name: int(len(splits[name])) for name in SPLITS}}
    (data_dir / "vocab.json").write_text(json.dumps(meta, indent=1))
    return meta


def load(data_dir):
    """The prepared corpus; prepares it first when data_dir has none."""
    data_dir = Path(data_dir)
    if not (data_dir / "vocab.json").exists():
        prepare(data_dir)
    meta = json.loads((data_dir / "vocab.json").read_text())
    return Corpus(*(np.load(data_dir / f"{name}.npy") for name in SPLITS), meta["characters"])


def windows(tokens, context, count):
    """`count` windows of context + 1 characters, evenly spaced among the non-overlapping ones
    (all of them when count is 0 or too large): inputs (count, N) and targets (count, N), int64,
    targets shifted by one."""
    tiles = torch.from_numpy(tokens[: len(tokens) // (context + 1) * (context + 1)]).view(-1, context + 1)
    if 0 < count < len(tiles):
        tiles = tiles[torch.linspace(0, len(tiles) - 1, count).round().long()]
    tiles = tiles.long()
    return tiles[:, :-1], tiles[:, 1:]


def main():
    if len(sys.argv) > 2 or sys.argv[1:2] in (["-h"], ["--help"]):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 2)
    data_dir = Path(sys.argv[1]) if len(sys.argv) == 2 else DEFAULT_DATA_DIR
    meta = prepare(data_dir)
    sizes = ", ".join(f"{name} {size}" for name, size in meta["sizes"].items())
    print(f"prepare_data: {len(meta['characters'])} characters; {sizes} tokens; written to {data_dir}")


if __name__ == "__main__":
    main()
