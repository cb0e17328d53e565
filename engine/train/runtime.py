"""Loop helpers: precision policy, distribution strategy, class weights, TensorBoard scalars."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import tensorflow as tf

from engine.train.config import ConfigError

if TYPE_CHECKING:
    from engine.train.cluster_run import Group


def _scalar_metadata() -> bytes:
    # What tensorboard's scalar summary writes, built here so the tensorboard package is not needed.
    from tensorflow.core.framework import summary_pb2

    md = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )
    return md.SerializeToString()


_SCALAR = _scalar_metadata()


def scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar into the default summary writer."""
    tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_SCALAR)


def resolve_precision(setting: str) -> str:
    """The Keras policy to use: 'auto' picks bf16 on Ampere+, fp16 on Volta/Turing, float32 on older GPUs.

    On a CPU 'auto' picks bf16 only where this machine's bfloat16 matmul beats float32 by a margin
    (engine/precision.py: a probe of under 2 s, cached per CPU model, cores and TensorFlow version).
    """
    if setting != "auto":
        return "float32" if setting == "off" else setting
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        from engine.precision import cpu_policy

        return cpu_policy(tf_version=tf.__version__).policy
    cc = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
    return "mixed_bfloat16" if cc >= (8, 0) else "mixed_float16" if cc >= (7, 0) else "float32"


def make_strategy(group: Group | None = None) -> tf.distribute.Strategy:
    """One process: MirroredStrategy over its GPUs if it has several; a group: MultiWorkerMirroredStrategy.

    A group's strategy must be made before any other TensorFlow op of the process (it configures
    the runtime's collectives), so the loop asks for it first.
    """
    if group is not None:
        return group.strategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def class_weight_vector(setting: Any, labels: list[str], counts: dict[str, int]) -> list[float] | None:
    if setting == "none":
        return None
    if setting == "balanced":
        total = sum(counts.values())
        return [total / (len(labels) * max(1, counts.get(n, 0))) for n in labels]
    unknown = sorted(set(setting) - set(labels))
    if unknown:
        raise ConfigError(f"[train] class_weights: unknown label(s) {unknown}; use names from {labels}")
    return [float(setting.get(n, 1.0)) for n in labels]
