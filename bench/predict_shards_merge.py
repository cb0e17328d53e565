"""Benchmark (not a test): ``ftc predict merge`` at scale, its time and peak memory by row count.

Usage::

    .venv/bin/python bench/predict_shards_merge.py --rows 200000 2000000 --write
        # appends a "Merge at scale" section to bench/results/predict_shards.md

No model runs: each size's three shard outputs are written through ftc's own writer
(PredictionWriter, the engine's append path) with random probabilities, then merged by the
real CLI in a child process whose peak RSS (ru_maxrss of the waited child) is the merge's own.
Flat memory shows as the same peak for 10x the rows.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LABELS = ["negative", "neutral", "positive"]
CHUNK = 65_536
SECTION = "## Merge at scale"


def make_shards(folder: Path, total: int, n: int = 3) -> list[Path]:
    """``n`` complete shard outputs of a ``total``-row input, written as the engine writes them."""
    import numpy as np

    from engine.predict.shards import Shard, shard_meta
    from engine.predict.writer import PredictionWriter

    inp = folder / "input.bin"
    inp.write_bytes(b"x" * 4096)  # only its digest and size are recorded
    rng = np.random.default_rng(0)
    outs = []
    for k in range(1, n + 1):
        meta: dict[str, Any] = {
            "labels": LABELS,
            "label2id": {x: i for i, x in enumerate(LABELS)},
            "model": {"kind": "folder", "path": "model", "fingerprint": "bench"},
            "input": {"path": str(inp), "size": 4096, "mtime_ns": 0, "format": "csv"},
            "settings": {"chunk_rows": CHUNK, "token_budget": 8192, "max_length": 128, "multiple": 8},
            "precision": "float32",
            "shard": shard_meta(Shard(k, n), total, CHUNK, str(inp), None),
        }
        meta["input"].update(text_col="text", encoding="utf-8")
        out = folder / f"preds.part{k}of{n}.h5"
        writer = PredictionWriter.create(out, LABELS, meta, overwrite=False)
        writer.index_base = meta["shard"]["start"]
        for first in range(meta["shard"]["start"], meta["shard"]["stop"], CHUNK):
            rows = list(range(first + 1, min(first + CHUNK, meta["shard"]["stop"]) + 1))
            probs = rng.dirichlet(np.ones(len(LABELS)), size=len(rows)).astype(np.float32)
            frame = writer.frame(rows, probs, probs.argmax(axis=1), [""] * len(rows))
            writer.append(frame, {"row": rows[-1], "offset": None})
        writer.finish({"rows": writer.rows})
        outs.append(out)
    return outs


def merge(folder: Path, outs: list[Path]) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of ``ftc predict merge`` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "tui.cli", "predict", "merge", str(folder / "merged.h5"), *map(str, outs)]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000], help="input rows")
    parser.add_argument("--write", action="store_true", help="add the section to predict_shards.md")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from bench.machine import load_note

    load_before = load_note()
    lines = [
        "| rows | 3 shards' files (MB) | merge s | rows/s | peak RSS (MiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for total in sorted(args.rows):  # peaks only grow, so the smaller size goes first
        with tempfile.TemporaryDirectory(prefix="ftc-merge-bench-") as tmp:
            folder = Path(tmp)
            outs = make_shards(folder, total)
            size = sum(o.stat().st_size for o in outs if o.exists()) / 1e6
            seconds, peak = merge(folder, outs)
        lines.append(f"| {total:,} | {size:,.0f} | {seconds:.1f} | {total / seconds:,.0f} | {peak:,.0f} |")
        print(lines[-1], flush=True)
    text = "\n".join(
        [
            SECTION,
            "",
            "Three synthetic shard outputs per size (written by ftc's PredictionWriter, random "
            "probabilities, 3 labels), merged by `ftc predict merge` in a child process; the peak RSS is "
            "the largest of the children so far (sizes run smallest first), including Python, pandas and "
            "PyTables.",
            "",
            *lines,
            "",
            f"Command: `python bench/predict_shards_merge.py {' '.join(sys.argv[1:])}`",
            "",
            f"Before: {load_before}. After: {load_note()}. Other helpers' work was running on the machine.",
            "",
        ]
    )
    print(text)
    if args.write:
        path = REPO / "bench/results/predict_shards.md"
        old = path.read_text(encoding="utf-8")
        old = old.split(f"\n{SECTION}\n")[0].rstrip("\n")
        path.write_text(f"{old}\n\n{text}", encoding="utf-8")


if __name__ == "__main__":
    main()
