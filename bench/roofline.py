"""The machine's measured matmul throughput in TensorFlow, and model FLOPs per token for MFU.

Run: ``.venv/bin/python -m bench.roofline`` prints float32 and bfloat16 GFLOP/s by matrix size.
The roofline is the best of the sizes a BERT-like encoder actually multiplies on this machine
(hidden sizes in the hundreds, a few thousand tokens per batch), so MFU figures compare a
workload with what TensorFlow can reach here, not with a datasheet.

Its bfloat16 section says whether bfloat16 can pay here: the CPU's bf16 flags (AMX tiles or
AVX-512 bf16), the oneDNN kernel a bfloat16 and a float32 matmul run on (from ``ONEDNN_VERBOSE``,
in a child process: ``brg_matmul:...amx`` is AMX, ``avx512_core_bf16`` is AVX-512 bf16,
``gemm_api`` is oneDNN's float32 GEMM), bfloat16's rate over float32's per shape, and what
``mixed_precision = "auto"`` picks on this CPU (``engine.precision``'s probe, not its cache).
Operands are cast before timing, so the rates are the matmuls alone, no casts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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


_KERNEL_SNIPPET = """
import tensorflow as tf
for dtype in (tf.float32, tf.bfloat16):
    a = tf.cast(tf.ones((512, 384)), dtype)
    b = tf.cast(tf.ones((384, 1536)), dtype)
    print("DTYPE", dtype.name, flush=True)
    tf.function(lambda x, y: tf.matmul(x, y))(a, b).numpy()
"""


def onednn_kernels() -> dict[str, str]:
    """The oneDNN implementation that a float32 and a bfloat16 2-D matmul run on."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", _KERNEL_SNIPPET], capture_output=True, text=True, env=env, check=False
    )
    found: dict[str, str] = {}
    dtype = ""
    for line in proc.stdout.splitlines():
        if line.startswith("DTYPE "):
            dtype = line.split()[1]
        elif ",exec," in line and dtype and dtype not in found:
            fields = line.split(",")
            kind, impl = fields[5], fields[6]
            if kind in ("matmul", "gemm_api", "inner_product"):
                found[dtype] = f"{kind} {impl}".strip()
    return found


def cpu_bf16_flags() -> list[str]:
    """The CPU flags that give bfloat16 matmul hardware: amx_* tiles, avx512_bf16 / avx_ne_convert."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    for line in lines:
        if line.startswith("flags"):
            return sorted(f for f in line.split(":", 1)[1].split() if "bf16" in f or f.startswith("amx"))
    return []


def bf16_section(result: dict[str, Any]) -> dict[str, Any]:
    """Whether bfloat16 pays on this CPU: flags, kernels, per-shape ratio and the 'auto' verdict."""
    from engine.precision import decide, time_matmuls

    flags = cpu_bf16_flags()
    f32_s, bf16_s = time_matmuls()
    return {
        "flags": flags,
        "amx": any(f.startswith("amx") for f in flags),
        "kernels": onednn_kernels(),
        "ratio": {k: result["bfloat16"][k] / v for k, v in result["float32"].items()},
        "probe_speedup": f32_s / bf16_s,
        "auto_on_cpu": decide(f32_s, bf16_s),
    }


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
    parser.add_argument("--bf16", action="store_true", help="add the bfloat16 section (kernels, probe)")
    args = parser.parse_args()
    result = roofline(args.seconds)
    if args.bf16:
        result["bf16"] = bf16_section(result)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for dtype in ("float32", "bfloat16"):
        for shape, gflops in result[dtype].items():
            print(f"{dtype:9} {shape:>16}  {gflops:8.1f} GFLOP/s")
    print(f"peak: float32 {result['peak']['float32']:.1f}, bfloat16 {result['peak']['bfloat16']:.1f} GFLOP/s")
    if "bf16" in result:
        b = result["bf16"]
        hw = "AMX tiles" if b["amx"] else "no AMX tiles"
        print(f"bfloat16: CPU flags {' '.join(b['flags']) or 'none'} ({hw})")
        for dtype, kernel in b["kernels"].items():
            print(f"  oneDNN kernel, {dtype} matmul: {kernel}")
        ratios = ", ".join(f"{k} {v:.2f}x" for k, v in b["ratio"].items())
        print(f"  bfloat16 / float32 by shape: {ratios}")
        verdict = f"bfloat16 {b['probe_speedup']:.2f}x float32 -> auto picks {b['auto_on_cpu']}"
        print(f"  engine.precision probe: {verdict}")


if __name__ == "__main__":
    main()
