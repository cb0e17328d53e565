"""A replica's dropout mask is its rows of one process's mask; its generator keeps that process's state."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from engine.train import dropout


def _pair(seed: int) -> tuple[tf.random.Generator, tf.random.Generator]:
    return tf.random.Generator.from_seed(seed), tf.random.Generator.from_seed(seed)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16, tf.float16, tf.float64])
@pytest.mark.parametrize(
    ("shape", "total", "replicas"),
    [
        ((4, 12, 8), 7, 2),  # uneven split, rows of 96 values: the counter skip is whole
        ((3, 5), 10, 4),  # rows of 5 values: some replicas start mid counter step and slice
        ((2, 3, 3, 3), 6, 3),  # rank 4, like attention probabilities
        ((1, 8), 1, 2),  # an epoch's last batch of one row: the first replica holds none
    ],
)
def test_each_replica_draws_its_rows_of_one_mask(
    shape: tuple[int, ...], total: int, replicas: int, dtype: tf.DType
) -> None:
    one, _ = _pair(11)
    whole = one.uniform([total, *shape[1:]], dtype=dtype).numpy().astype(np.float64)
    parts = []
    for r in range(replicas):
        gen, _ = _pair(11)  # every replica's generator starts in the state the chief synced to it
        lo, hi = total * r // replicas, total * (r + 1) // replicas
        local = tf.constant([hi - lo, *shape[1:]])
        part = dropout.rows_of_mask(gen, local, dtype, tf.constant(lo, tf.int64), hi - lo, total)
        parts.append(part.numpy().astype(np.float64))
        np.testing.assert_array_equal(gen.state.numpy(), one.state.numpy())  # advanced as one process's
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_the_counter_carries_into_its_high_word() -> None:
    gen, ref = _pair(0)
    for g in (gen, ref):
        g.reset(np.array([-3, 5, 42], np.int64))  # the counter's low word is 2**64 - 3: rows 4+ wrap it
    whole = ref.uniform([8, 16]).numpy()
    part = dropout.rows_of_mask(gen, tf.constant([4, 16]), tf.float32, tf.constant(4, tf.int64), 4, 8)
    np.testing.assert_array_equal(part.numpy(), whole[4:])


def test_outside_global_rows_keras_draws_as_before() -> None:
    import tf_keras

    tf_keras.backend.experimental.enable_tf_random_generator()
    dropout.install()
    dropout.install()  # idempotent
    x = tf.ones([6, 10])
    a = tf_keras.layers.Dropout(0.5, seed=4)
    b = tf_keras.layers.Dropout(0.5, seed=4)
    plain = a(x, training=True)
    with dropout.global_rows(0, 6, 6):
        rows = b(x, training=True)  # the whole batch on one replica: the same mask
    np.testing.assert_array_equal(plain.numpy(), rows.numpy())
    with dropout.global_rows(3, 3, 6):
        second = b(x[:3], training=True)
    np.testing.assert_array_equal(second.numpy(), a(x, training=True).numpy()[3:])
