"""Does ``--precision bfloat16`` cost accuracy? A trained session's test split, predicted both ways.

Run: ``.venv/bin/python bench/precision_accuracy.py SESSION [--write]`` on a finished training
session (e.g. the one bench/train_bench.py leaves in .cache/bench/train-sessions/). Both runs
go through the real ``ftc predict`` command on the session's test split; accuracy and
macro-F1 are computed against the split's labels, and texts/s come from the same runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402
from bench.train_bench import read_split  # noqa: E402
from engine.data.shards import load_manifest  # noqa: E402

RESULTS = REPO / "bench" / "results" / "precision.md"


def predict(session: Path, inp: Path, out: Path, precision: str) -> float:
    """Seconds ``ftc predict`` took (model loading included) for one precision."""
    cmd = [sys.executable, "-m", "tui", "predict", "--model", str(session), "--input", str(inp)]
    cmd += ["--output", str(out), "--precision", precision, "--overwrite"]
    start = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if proc.returncode:
        raise SystemExit(f"ftc predict ({precision}) failed: {proc.stderr.strip()[-2000:]}")
    return time.monotonic() - start


def scores(out: Path, truth: list[str]) -> dict[str, float]:
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score

    pred = pd.read_hdf(out)["label"].astype(str).tolist()
    return {
        "accuracy": float(accuracy_score(truth, pred)),
        "macro_f1": float(f1_score(truth, pred, average="macro")),
        "labels": pred,  # type: ignore[dict-item]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("session", type=Path, help="a finished training session folder")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(REPO)}")
    args = parser.parse_args()
    import pandas as pd

    data = args.session / "data"
    labels = [str(x) for x in load_manifest(data)["labels"]]
    texts, ids = read_split(data, "test")
    truth = [labels[i] for i in ids]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ftc-precision-") as tmp:
        inp = Path(tmp) / "test.csv"
        pd.DataFrame({"text": texts}).to_csv(inp, index=False)
        for precision in ("float32", "bfloat16"):
            out = Path(tmp) / f"{precision}.h5"
            seconds = predict(args.session, inp, out, precision)
            results[precision] = {**scores(out, truth), "seconds": seconds}
    f32, bf16 = results["float32"], results["bfloat16"]
    agree = sum(a == b for a, b in zip(f32["labels"], bf16["labels"], strict=True)) / len(truth)
    lines = [
        "# float32 against bfloat16 prediction",
        "",
        f"session: `{args.session}`; its test split: {len(truth):,} tweets; labels {', '.join(labels)}",
        "",
        "| precision | accuracy | macro-F1 | seconds (ftc predict, model loading included) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['seconds']:.1f} |")
    lines += [
        "",
        f"bfloat16 - float32: accuracy {100 * (bf16['accuracy'] - f32['accuracy']):+.2f} points, "
        f"macro-F1 {100 * (bf16['macro_f1'] - f32['macro_f1']):+.2f} points; "
        f"the two agree on {agree:.2%} of the labels.",
        "",
        f"machine: {describe()}; {load_note()}",
        f"command: `python bench/precision_accuracy.py {args.session}{' --write' if args.write else ''}`",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        RESULTS.write_text(text)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
