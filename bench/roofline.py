"""The machine's measured matmul throughput in TensorFlow, and model FLOPs per token for MFU.

Run: ``.venv/bin/python -m bench.roofline`` prints float32 and bfloat16 GFLOP/s by matrix size.
The roofline is the best of the sizes a BERT-like encoder actually multiplies on this machine
(hidden sizes in the hundreds, a few thousand tokens per batch), so MFU figures compare a
workload with what TensorFlow can reach here, not with a datasheet.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

# (m, k, n): tokens x hidden -> hidden, and square sizes for the peak.
SHAPES = ((4096, 384, 384), (4096, 384, 1536), (4096, 1536, 384), (1024, 1024, 1024), (2048, 2048, 2048))


def matmul_gflops(
    dtype: str, shapes: tuple[tuple[int, int, int], ...] = SHAPES, seconds: float = 1.0
) -> dict[str, float]:
    """GFLOP/s of tf.matmul per shape ("m x k x n") for one dtype, each timed for about ``seconds``."""
    import tensorflow as tf

    tf_dtype = getattr(tf, dtype)
    out: dict[str, float] = {}
    for m, k, n in shapes:
        a = tf.cast(tf.random.normal((m, k)), tf_dtype)
        b = tf.cast(tf.random.normal((k, n)), tf_dtype)
        fn = tf.function(lambda x, y: tf.matmul(x, y))
        fn(a, b).numpy()
        flops = 2.0 * m * k * n
        reps, elapsed = 0, 0.0
        start = time.perf_counter()
        while elapsed < seconds:
            r = fn(a, b)
            reps += 1
            if reps % 4 == 0:
                r.numpy()
                elapsed = time.perf_counter() - start
        r.numpy()
        elapsed = time.perf_counter() - start
        out[f"{m}x{k}x{n}"] = flops * reps / elapsed / 1e9
    return out


def roofline(seconds: float = 1.0) -> dict[str, Any]:
    """{"float32": {...}, "bfloat16": {...}, "peak": {"float32": best, "bfloat16": best}} in GFLOP/s."""
    result: dict[str, Any] = {
        dtype: matmul_gflops(dtype, seconds=seconds) for dtype in ("float32", "bfloat16")
    }
    result["peak"] = {dtype: max(result[dtype].values()) for dtype in ("float32", "bfloat16")}
    return result


def encoder_flops_per_token(
    config: Any, seq_len: float, *, training: bool = False, num_labels: int = 0
) -> float:
    """Model FLOPs per real token of a BERT-like encoder (forward; x3 with the backward pass).

    Counts the matmuls that dominate: per layer the Q, K, V and output projections (4 d^2),
    the feed-forward (2 d f), and attention scores and mixing (2 s d), at 2 FLOPs a
    multiply-add; plus the pooler and classifier per sequence spread over its tokens.
    Embedding look-ups, layer norms and softmax are not counted (they are memory-bound and
    small), as is usual for MFU. ``seq_len`` is the attended length (padded) of the sequences.
    """
    d = int(config.hidden_size)
    f = int(config.intermediate_size)
    layers = int(config.num_hidden_layers)
    per_layer = 2.0 * (4 * d * d + 2 * d * f + 2 * seq_len * d)
    head = 2.0 * (d * d + d * max(1, num_labels)) / max(1.0, seq_len)
    forward = layers * per_layer + head
    return 3.0 * forward if training else forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per shape and dtype")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = roofline(args.seconds)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for dtype in ("float32", "bfloat16"):
        for shape, gflops in result[dtype].items():
            print(f"{dtype:9} {shape:>16}  {gflops:8.1f} GFLOP/s")
    print(f"peak: float32 {result['peak']['float32']:.1f}, bfloat16 {result['peak']['bfloat16']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
