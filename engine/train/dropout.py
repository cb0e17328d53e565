"""Dropout masks of the global batch, whatever the number of replicas.

Each replica (a worker of a group, or a GPU of one process) holds rows [lo, hi) of every global
batch (``Stepper._distribute``). Keras draws a dropout mask from its layer's generator for the tensor
it is given, so N replicas would draw N unrelated masks of their slices (TensorFlow also folds each
replica's id into the key). The weights would then depend on the number of workers, and on an
uneven split the replicas' generators would advance by different amounts and drift apart, so the
chief's checkpointed generator state would not be the others'.

Inside ``global_rows(offset, rows, total)`` (the Stepper's replica functions) a dropout layer instead:

- advances its generator exactly as one process drawing the whole batch's mask does, so every
  replica's generator keeps the same state, the one a checkpoint holds;
- draws with that process's key and counter (no replica fold) only the rows it holds. TensorFlow's
  Philox output is in counter order, 4 values of 32 bits or less per counter step (2 of 64 bits),
  so the mask's rows [lo, hi) start lo * row_size / 4 steps on. Where that is not a whole number of
  steps the replica draws the whole mask and keeps its rows.

So N workers apply the masks of one process, and their weights are equal. Outside the context (one
replica, evaluation, prediction) Keras draws as it always has: the same masks, so checkpoints of
earlier versions resume unchanged. The batch must be axis 0 of every dropped tensor, as it is in
the transformers encoders; a layer with its own ``noise_shape`` draws as Keras does.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

# (offset, rows, total): this replica's first row, its number of rows, and the global batch's rows.
_ROWS: contextvars.ContextVar[tuple[Any, Any, Any] | None] = contextvars.ContextVar(
    "ftc_global_rows", default=None
)
_PHILOX = 1  # tf.random.Algorithm.PHILOX: counter of 2 uint64, key of 1


@contextlib.contextmanager
def global_rows(offset: Any, rows: Any, total: Any) -> Iterator[None]:
    """Dropout drawn in here applies rows [offset, offset + rows) of the mask of a batch of ``total`` rows."""
    token = _ROWS.set((offset, rows, total))
    try:
        yield
    finally:
        _ROWS.reset(token)


def install() -> None:
    """Inside global_rows tf_keras' dropout draws via ``rows_of_mask`` (idempotent; outside, as before)."""
    from tf_keras.src import backend

    cls = backend.RandomGenerator
    if getattr(cls.dropout, "_ftc_global", False):
        return
    keras_dropout = cls.dropout

    def dropout(self: Any, inputs: Any, rate: Any, noise_shape: Any = None) -> Any:
        where = _ROWS.get()
        self._maybe_init()
        gen = getattr(self, "_generator", None)
        if where is None or noise_shape is not None or gen is None or self._rng_type != self.RNG_STATEFUL:
            return keras_dropout(self, inputs, rate, noise_shape=noise_shape)
        return tf.nn.experimental.general_dropout(
            inputs, rate=rate, uniform_sampler=lambda shape, dtype: rows_of_mask(gen, shape, dtype, *where)
        )

    dropout._ftc_global = True  # type: ignore[attr-defined]
    cls.dropout = dropout


def rows_of_mask(gen: Any, shape: Any, dtype: Any, offset: Any, rows: Any, total: Any) -> tf.Tensor:
    """Rows [offset, offset + rows) of ``gen.uniform([total, *shape[1:]], dtype)`` drawn by one process.

    The generator advances as that draw advances it (on every replica alike).
    """
    shape = tf.cast(shape, tf.int64)
    offset, rows, total = (tf.cast(v, tf.int64) for v in (offset, rows, total))
    whole = tf.concat([tf.reshape(total, [1]), shape[1:]], 0)
    state = gen.skip(tf.reduce_prod(whole))  # what gen.uniform(whole) does before it draws
    alg = gen.algorithm
    if alg != _PHILOX:  # another counter layout: draw the whole mask and keep this replica's rows
        return _draw(whole, state, alg, dtype)[offset : offset + rows]
    counter = tf.bitcast(state[:2], tf.uint64)
    key = tf.bitcast(state[2:3], tf.uint64)
    per_step = 2 if tf.as_dtype(dtype).size == 8 else 4
    row_size = tf.reduce_prod(shape[1:])
    skip = offset * row_size

    def mine() -> tf.Tensor:
        # On the host: the random op takes its key and counter in host memory, and a GPU may have no
        # uint64 kernels for this arithmetic.
        with tf.device("/cpu:0"):
            step = tf.cast(skip // per_step, tf.uint64)
            low = counter[0] + step
            high = counter[1] + tf.cast(low < counter[0], tf.uint64)  # carry into the high word
            moved = tf.stack([low, high])
        return _philox(shape, key, moved, dtype)

    def sliced() -> tf.Tensor:
        return _philox(whole, key, counter, dtype)[offset : offset + rows]

    return tf.cond(tf.equal(skip % per_step, 0), mine, sliced)


def _philox(shape: Any, key: tf.Tensor, counter: tf.Tensor, dtype: Any) -> tf.Tensor:
    from tensorflow.python.ops import gen_stateless_random_ops_v2

    return gen_stateless_random_ops_v2.stateless_random_uniform_v2(
        shape=shape, key=key, counter=counter, dtype=dtype, alg=_PHILOX
    )


def _draw(shape: Any, state: tf.Tensor, alg: Any, dtype: Any) -> tf.Tensor:
    from tensorflow.python.ops import gen_stateless_random_ops_v2, stateful_random_ops

    size = stateful_random_ops._get_counter_size(alg)
    counter = tf.bitcast(state[:size], tf.uint64)
    key = tf.bitcast(state[size : size + 1], tf.uint64)
    return gen_stateless_random_ops_v2.stateless_random_uniform_v2(
        shape=shape, key=key, counter=counter, dtype=dtype, alg=alg
    )
