"""Benchmark (not a test): ``ftc predict`` as 1 and as 2 ``--shard`` processes on this machine, in texts/s.

Usage::

    .venv/bin/python bench/predict_shards.py --limit 4000 --write   # bench/results/predict_shards.md
    .venv/bin/python bench/predict_shards.py --model-dir M --texts T.csv --limit 300   # quick

Each pass starts the real CLI (``ftc predict``, no terminal: plain lines) once per shard, all
at once, and waits for all: wall time covers the engines' start (TensorFlow import, model
load) as a person running the shards sees it. The jobs' own texts/s (from the cursors'
summaries) cover tokenizing, predicting and writing only. Passes alternate 1 shard, 2 shards,
1, 2 ... so a change in the machine's load hits both alike. The 2-shard output is merged and
compared with the 1-shard output: the frames must be equal.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FTC = [sys.executable, "-m", "tui.cli"]


def run_pass(model: Path, inp: Path, work: Path, shards: int, chunk_rows: int, n: int) -> dict[str, Any]:
    """One pass: ``shards`` processes at once; wall seconds, the jobs' own texts/s, rows."""
    env = {**os.environ, "FTC_SESSIONS_DIR": str(work / "sessions"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    outs = [work / f"pass{n}.part{k}of{shards}.h5" for k in range(1, shards + 1)]
    started = time.monotonic()
    procs = []
    for k, out in enumerate(outs, 1):
        cmd = [*FTC, "predict", "--model", str(model), "--input", str(inp), "--output", str(out)]
        cmd += ["--chunk-rows", str(chunk_rows)] + (["--shard", f"{k}/{shards}"] if shards > 1 else [])
        procs.append(
            subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a shard failed ({proc.returncode}): {err.decode()[-500:]}")
    wall = time.monotonic() - started
    summaries = [json.loads(Path(f"{o}.cursor.json").read_text())["summary"] for o in outs]
    rows = sum(int(s["rows"]) for s in summaries)
    result: dict[str, Any] = {
        "shards": shards,
        "rows": rows,
        "wall_s": wall,
        "job_rates": [float(s["rows_per_s"]) for s in summaries],
        "outs": outs,
    }
    if shards > 1:
        merged = work / f"pass{n}.merged.h5"
        t0 = time.monotonic()
        merge = [*FTC, "predict", "merge", str(merged), *map(str, outs)]
        subprocess.run(merge, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
        result["merge_s"] = time.monotonic() - t0
        result["merged"] = merged
    return result


def _without_note(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip or a == "--note":
            skip = a == "--note"
            continue
        out.append(a)
    return [a for a in out if not a.startswith("--note=")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--limit", type=int, default=4000, help="texts of the tweets to predict (4000)")
    parser.add_argument("--chunk-rows", type=int, default=500, help="rows per chunk; shards own whole chunks")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of passes (1 shard, 2 shards) to run")
    parser.add_argument("--model-dir", help="a saved classifier (default: MiniLM with a fresh 3-class head)")
    parser.add_argument("--texts", help="a CSV with a 'text' column (default: the tweets, latin-1)")
    parser.add_argument("--write", action="store_true", help="write bench/results/predict_shards.md")
    parser.add_argument("--note", default="", help="a sentence for the results, e.g. what else was running")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import pandas as pd

    from bench.machine import describe, load_note
    from bench.predict_bench import TWEETS, load_texts, make_model, write_input

    load_before = load_note()
    with tempfile.TemporaryDirectory(prefix="ftc-shard-bench-") as tmp:
        work = Path(tmp)
        model = Path(args.model_dir) if args.model_dir else make_model(work / "model")
        source = Path(args.texts) if args.texts else TWEETS
        texts = load_texts(args.limit, 1, source, "utf-8" if args.texts else "latin-1")
        inp = write_input(work / "in.csv", texts)
        passes: list[dict[str, Any]] = []
        for r in range(args.rounds):
            for shards in (1, 2):
                passes.append(run_pass(model, inp, work, shards, args.chunk_rows, len(passes)))
                p = passes[-1]
                print(
                    f"round {r + 1}: {shards} shard(s): {p['rows'] / p['wall_s']:.1f} texts/s wall",
                    flush=True,
                )
        one = [p for p in passes if p["shards"] == 1]
        two = [p for p in passes if p["shards"] == 2]
        for p in two:  # the merged file is the single run's
            pd.testing.assert_frame_equal(
                pd.read_hdf(p["merged"]), pd.read_hdf(one[0]["outs"][0]), check_exact=True
            )
    load_after = load_note()
    lines = [
        "| pass | shards | rows | wall s | texts/s (wall) | jobs' own texts/s | together | merge s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, p in enumerate(passes, 1):
        rates = " + ".join(f"{x:.1f}" for x in p["job_rates"])
        merge = f"{p['merge_s']:.1f}" if "merge_s" in p else "-"
        lines.append(
            f"| {i} | {p['shards']} | {p['rows']:,} | {p['wall_s']:.1f} | {p['rows'] / p['wall_s']:.1f} "
            f"| {rates} | {sum(p['job_rates']):.1f} | {merge} |"
        )
    ratio = sum(p["wall_s"] for p in one) / sum(p["wall_s"] for p in two)
    inner = sum(sum(p["job_rates"]) for p in two) / sum(sum(p["job_rates"]) for p in one)
    model_name = (
        f"the classifier in {args.model_dir}" if args.model_dir else "MiniLM with a fresh 3-class head"
    )
    text = "\n".join(
        [
            "# Prediction in shards: 1 and 2 `ftc predict --shard` processes on one machine",
            "",
            f"{args.limit:,} texts ({source.name}), {model_name}, --chunk-rows {args.chunk_rows}, "
            "CPU, float32.",
            "",
            *lines,
            "",
            f"2 shards vs 1: {ratio:.2f}x by wall time over all rounds (engine start included), "
            f"{inner:.2f}x by the jobs' own texts/s added up. Every merged 2-shard file equals the 1-shard "
            "output (pandas frames, exact). TensorFlow spreads each engine over all of the machine's "
            f"{os.cpu_count()} cores, so shards on one CPU machine share the same cores; shards pay off "
            "with one per host or per GPU.",
            "",
            f"Machine: {describe()}",
            "",
            f"Command: `python bench/predict_shards.py {shlex.join(_without_note(sys.argv[1:]))}` "
            "(and --note with the sentence below)"
            if args.note
            else f"Command: `python bench/predict_shards.py {shlex.join(sys.argv[1:])}`",
            "",
            f"Before: {load_before}. After: {load_after}.",
            *([args.note, ""] if args.note else [""]),
        ]
    )
    print(text)
    if args.write:
        (REPO / "bench/results/predict_shards.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
