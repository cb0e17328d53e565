"""The performance suite in one command: each benchmark in turn, each writing its table to bench/results/.

Run: ``make bench`` (or ``.venv/bin/python -m bench.run_all [--only NAME ...] [--skip NAME ...]``).
The benchmarks run one after another, never side by side: on a 2-core machine a second
job halves the first one's figures. BENCHMARKS.md explains every figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable

# name -> (command, what it writes, rough time on 2 cores)
SUITE: dict[str, tuple[list[str], str, str]] = {
    "roofline": ([PY, "-m", "bench.roofline", "--seconds", "2", "--bf16"], "(printed)", "1 min"),
    "console": (
        [
            PY,
            "-m",
            "bench.console_bench",
            "--runs",
            "10",
            "--seconds",
            "20",
            "--rate",
            "50",
            "--step-s",
            "0.01",
            "--terminal",
            "--write",
        ],
        "bench/results/console.md",
        "2 min",
    ),
    "predict": ([PY, "bench/predict_bench.py", "--write"], "bench/results/predict.md", "15 min"),
    "train": ([PY, "bench/train_throughput.py", "--write"], "bench/results/train_throughput.md", "10 min"),
    "matmul-share": ([PY, "bench/matmul_share.py", "--write"], "bench/results/matmul_share.md", "2 min"),
    "optimizer-xla": ([PY, "bench/optimizer_xla.py", "--write"], "bench/results/optimizer_xla.md", "6 min"),
    "prepare": (
        [PY, "bench/prepare_bench.py", "--rows", "1000000", "5000000", "--write"],
        "bench/results/prepare.md",
        "5 min",
    ),
    "predict-scale": (
        [PY, "bench/predict_bench.py", "--scale", "100000", "1000000", "--write"],
        "bench/results/predict_scale.md",
        "90 min in float32",
    ),
    "console-reattach": (
        [PY, "-m", "bench.console_bench", "--only", "reattach", "idle", "--write"],
        "bench/results/console_reattach.md, console_idle.md",
        "3 min",
    ),
    "first-step": (
        [PY, "bench/first_step.py", "--rounds", "2", "--write"],
        "bench/results/first_step.md",
        "8 min",
    ),
    "padding": ([PY, "-m", "bench.padding_bench", "--write"], "bench/results/padding.md", "1 min"),
    "bf16": ([PY, "bench/bf16_predict.py", "--write"], "bench/results/bf16_predict.md", "6 min"),
    "train-mfu": ([PY, "bench/train_mfu.py", "--write"], "bench/results/train_mfu_run.md", "10 min"),
    "predict-shards": (
        [PY, "bench/predict_shards.py", "--limit", "4000", "--write"],
        "bench/results/predict_shards.md",
        "8 min",
    ),
    "predict-merge": (
        [PY, "bench/predict_shards_merge.py", "--rows", "200000", "2000000", "--write"],
        "bench/results/predict_shards.md (merge section)",
        "1 min",
    ),
    "multiworker": ([PY, "bench/multiworker.py", "--write"], "bench/results/multiworker.md", "6 min"),
    # The accuracy run (MiniLM vs TF-IDF + LR on the same split) is the training issue's evidence.
    "accuracy": ([PY, "bench/train_bench.py", "--verify", "--write"], "bench/results/train.md", "25 min"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SUITE), help="run only these")
    parser.add_argument("--skip", nargs="+", choices=sorted(SUITE), default=[], help="leave these out")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args()
    names = [n for n in (args.only or SUITE) if n not in args.skip]
    if args.list:
        for name, (cmd, writes, rough) in SUITE.items():
            print(f"{name:14} {rough:>18}  -> {writes}\n{'':14} {' '.join(cmd[1:])}")
        return 0
    for name in names:
        cmd, writes, rough = SUITE[name]
        print(f"== {name} (about {rough}) -> {writes}\n   {' '.join(cmd[1:])}", flush=True)
        start = time.monotonic()
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run(cmd, cwd=REPO, env=env, check=False)
        print(f"== {name}: exit {proc.returncode} after {time.monotonic() - start:.0f} s", flush=True)
        if proc.returncode:
            print(f"run_all: {name} failed; the tables written so far stand", file=sys.stderr)
            return proc.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
