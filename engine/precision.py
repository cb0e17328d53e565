"""bfloat16 on CPUs: activations kept in float32, and the cached probe behind ``mixed_precision = "auto"``.

Two findings from profiling MiniLM under Keras' ``mixed_bfloat16`` on a CPU (bench/results/bf16.md):

- The matmuls reach oneDNN's bfloat16 kernels (``brg_matmul:avx512_core_bf16``; ``amx`` where the
  CPU has AMX tiles) and run about 2x faster, but TensorFlow's element-wise kernels (Eigen) are
  *slower* in bfloat16 than in float32: GELU's ``erfc`` 2-3x, a multiply 2x. Layer norms already
  compute in float32 (tf-keras casts them), GELU does not, and in one forward its ``erfc`` alone
  ate most of what the matmuls gained. :func:`float32_activations` makes each activation of a
  built model compute in float32 (two cheap casts around it), on CPUs only; on a GPU bfloat16
  element-wise kernels are fast and the casts would only cost memory traffic.
- Whether bfloat16 pays at all depends on the CPU: an AVX-512 Xeon without AMX ran TensorFlow's
  bfloat16 matmul at half its float32 rate. :func:`cpu_policy` times both at an encoder's shapes
  (under 2 s), once per CPU model, core count and TensorFlow version, and caches the verdict in
  the user's cache folder (``$FTC_CACHE_DIR``, default ``~/.cache/ftc``).

Nothing here imports TensorFlow at module level: the console may import this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine import fsio
from engine.errors import ConfigError

# bfloat16 must beat float32 by this factor at the probe's shapes: the element-wise share of a
# step (about 30% of a forward, more in training) does not speed up, and part of it slows down.
MARGIN = 1.25
# (tokens, in, out): an encoder's projections and feed-forward at a typical token count per batch.
PROBE_SHAPES = ((2048, 384, 1536), (2048, 1536, 384), (2048, 768, 768))
PROBE_SECONDS = 0.6  # spent timing, both dtypes together, after one warm-up call each
PROBE_FILE = "precision-probe.json"
PROBE_VERSION = 1
POLICIES = ("float32", "mixed_bfloat16")
# Pins what "auto" picks on a CPU, without probing (the test suite pins float32, so its runs do
# not depend on the machine; a person can pin either after reading bench/bf16_predict.py).
PIN_ENV = "FTC_CPU_PRECISION"


@dataclass
class Probe:
    """One machine's timing of the probe's matmuls (seconds per round) and the policy it implies."""

    key: str
    float32_s: float
    bfloat16_s: float
    speedup: float
    policy: str
    measured_at: float
    version: int = PROBE_VERSION
    source: str = "probe"  # probe | cache | FTC_CPU_PRECISION


def decide(float32_s: float, bfloat16_s: float, margin: float = MARGIN) -> str:
    """'mixed_bfloat16' where bfloat16 beat float32 by ``margin``, else 'float32'."""
    if bfloat16_s <= 0 or float32_s <= 0:
        return "float32"
    return "mixed_bfloat16" if float32_s / bfloat16_s >= margin else "float32"


def cache_dir() -> Path:
    """The user's cache folder for ftc (``$FTC_CACHE_DIR``, else ``~/.cache/ftc``)."""
    return Path(os.environ.get("FTC_CACHE_DIR") or Path.home() / ".cache" / "ftc").expanduser()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> str:
    """The CPU flags that decide which bfloat16 kernels oneDNN picks (a model name can hide them)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return " ".join(sorted(f for f in flags if "bf16" in f or f.startswith("amx")))
    except OSError:
        pass
    return ""


def machine_key(tf_version: str) -> str:
    """What the probe's verdict depends on: CPU model and bfloat16 flags, cores, TensorFlow version."""
    parts = [_cpu_model(), _cpu_flags(), str(os.cpu_count()), tf_version, str(PROBE_VERSION)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def read_cached(path: Path, key: str) -> Probe | None:
    """The cached probe for ``key``; None when absent, for another machine, or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        probe = Probe(**data[key])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if probe.version != PROBE_VERSION or probe.policy not in POLICIES:
        return None
    probe.source = "cache"
    return probe


def write_cached(path: Path, probe: Probe) -> None:
    """Add ``probe`` to the cache file, keeping other machines' entries (a shared home folder)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[probe.key] = asdict(probe)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fsio.atomic_write_json(path, data)
    except OSError:
        pass  # an unwritable cache costs a probe next time, nothing else


def time_matmuls(seconds: float = PROBE_SECONDS) -> tuple[float, float]:
    """Seconds per round of the probe's matmuls, (float32, bfloat16), rounds alternating."""
    import tensorflow as tf

    @tf.function
    def product(pairs: list[tuple[Any, Any]]) -> Any:
        return [tf.matmul(a, b) for a, b in pairs]

    operands = {}
    for dtype in (tf.float32, tf.bfloat16):
        pairs = []
        for m, k, n in PROBE_SHAPES:
            a = tf.cast(tf.random.stateless_normal((m, k), seed=(1, 2)), dtype)
            b = tf.cast(tf.random.stateless_normal((k, n), seed=(3, 4)), dtype)
            pairs.append((a, b))
        operands[dtype] = pairs
        product(pairs)[-1].numpy()  # trace and warm up
    spent = {tf.float32: 0.0, tf.bfloat16: 0.0}
    rounds = 0
    deadline = time.perf_counter() + seconds
    while rounds < 2 or time.perf_counter() < deadline:
        for dtype in (tf.float32, tf.bfloat16) if rounds % 2 == 0 else (tf.bfloat16, tf.float32):
            start = time.perf_counter()
            product(operands[dtype])[-1].numpy()
            spent[dtype] += time.perf_counter() - start
        rounds += 1
    return spent[tf.float32] / rounds, spent[tf.bfloat16] / rounds


def cpu_policy(
    *,
    timer: Callable[[], tuple[float, float]] | None = None,
    cache: Path | None = None,
    tf_version: str | None = None,
) -> Probe:
    """The Keras policy a CPU should train in: $FTC_CPU_PRECISION, the cached probe, else a new one."""
    pinned = os.environ.get(PIN_ENV, "").strip()
    if pinned:
        if pinned not in POLICIES:
            raise ConfigError(
                f"{PIN_ENV}={pinned!r} is not one of {', '.join(POLICIES)}; set one of those or unset it"
            )
        return Probe(
            key="", float32_s=0.0, bfloat16_s=0.0, speedup=0.0, policy=pinned, measured_at=0.0, source=PIN_ENV
        )
    if tf_version is None:
        import tensorflow as tf

        tf_version = tf.__version__
    path = cache if cache is not None else cache_dir() / PROBE_FILE
    key = machine_key(tf_version)
    cached = read_cached(path, key)
    if cached is not None:
        return cached
    float32_s, bfloat16_s = (timer or time_matmuls)()
    probe = Probe(
        key=key,
        float32_s=float32_s,
        bfloat16_s=bfloat16_s,
        speedup=float32_s / bfloat16_s if bfloat16_s > 0 else 0.0,
        policy=decide(float32_s, bfloat16_s),
        measured_at=time.time(),
    )
    write_cached(path, probe)
    return probe


def _in_float32(fn: Callable[..., Any]) -> Callable[..., Any]:
    import tensorflow as tf

    def activation(x: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(x, "dtype", None) != tf.bfloat16:
            return fn(x, *args, **kwargs)
        return tf.cast(fn(tf.cast(x, tf.float32), *args, **kwargs), tf.bfloat16)

    activation.__name__ = getattr(fn, "__name__", "activation")
    # Plain TensorFlow ops already: AutoGraph has nothing to convert (and warns that it cannot).
    wrapped: Callable[..., Any] = tf.autograph.experimental.do_not_convert(activation)
    return wrapped


def float32_activations(model: Any) -> int:
    """Make every transformers activation in ``model`` compute in float32 when given bfloat16.

    transformers' TF models keep their activation as a plain function attribute of a layer
    (``intermediate_act_fn`` in BERT, ``activation`` in DistilBERT's feed-forward), looked up when
    the model is traced, so replacing it before the first call changes the graph. Returns how many
    were replaced; call it once, after building the model and before tracing it.
    """
    from transformers import activations_tf

    known = {id(f) for f in activations_tf.ACT2FN.values()}
    count = 0
    for layer in [model, *model.submodules]:
        if type(layer).__module__.startswith(("tf_keras", "keras")):
            continue  # Keras' own layers (a pooler's Dense tanh): serialised by name, and tiny
        for name, value in list(vars(layer).items()):
            if callable(value) and id(value) in known:
                object.__setattr__(layer, name, _in_float32(value))
                count += 1
    return count


def on_cpu() -> bool:
    """True when TensorFlow sees no GPU (where bfloat16 element-wise kernels are the slow ones)."""
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")
