"""Token-budget batches of length-sorted texts, padded to a bounded set of shapes, put back in order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_TOKEN_BUDGET = 8192
# Sequence lengths are padded to a multiple of this: 8 on a GPU (tensor-core tiles, and a short
# list of shapes for XLA/cuDNN to tune), 2 on a CPU, where one trace serves every shape and each
# padded token costs as much as a real one (tweets: 10% padding at 8, 3-4% at 2).
GPU_MULTIPLE = 8
CPU_MULTIPLE = 2
DEFAULT_MULTIPLE = GPU_MULTIPLE


def default_multiple() -> int:
    """The padding multiple for the devices TensorFlow sees."""
    import tensorflow as tf

    return GPU_MULTIPLE if tf.config.list_logical_devices("GPU") else CPU_MULTIPLE


@dataclass
class Batch:
    """Padded model inputs for some texts of a chunk; ``index`` says which (positions in the chunk)."""

    index: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray
    real_tokens: int

    @property
    def padded_tokens(self) -> int:
        return int(self.input_ids.size)


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated, unpadded (the fast tokenizer encodes the list in parallel)."""
    if not texts:
        return []
    enc = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    ids: list[list[int]] = enc["input_ids"]
    return ids


def count_truncated(
    tokenizer: Any, texts: Sequence[str], ids: Sequence[Sequence[int]], max_length: int
) -> int:
    """How many texts were longer than ``max_length`` tokens (``ids``: their tokens, truncated).

    Only a text cut to exactly max_length can have been longer; those few are encoded again
    with one token more allowed, so the ids the model sees stay those of ``tokenize``.
    """
    full = [texts[i] for i, x in enumerate(ids) if len(x) >= max_length]
    if not full:
        return 0
    return sum(len(x) > max_length for x in tokenize(tokenizer, full, max_length + 1))


def padded_length(n: int, multiple: int, max_length: int) -> int:
    """n rounded up to the multiple, never past max_length: at most max_length/multiple lengths exist."""
    return min(-(-n // multiple) * multiple, max_length)


def padded_rows(n: int, full: int, multiple: int = 8) -> int:
    """A short batch is padded up to a multiple of rows, so short batches add few shapes and little waste."""
    return min(full, -(-n // multiple) * multiple)


def plan(lengths: Sequence[int], token_budget: int, multiple: int, max_length: int) -> list[np.ndarray]:
    """Positions per batch: texts of one padded length together, as many rows as fit in the budget.

    Longest first so the first batch is the largest in memory: an out-of-memory shows at once.
    A batch never mixes padded lengths, so no text is padded past its own bucket.
    """
    lens = np.asarray(lengths, dtype=np.int64)
    # A stable sort keeps equal-length texts in input order: the same chunk always makes the same batches.
    order = np.argsort(-lens, kind="stable")
    widths = np.minimum(-(-lens[order] // multiple) * multiple, max_length)
    batches = []
    i = 0
    while i < len(order):
        width = int(widths[i])
        end = i + int(np.searchsorted(-widths[i:], -width, side="right"))
        rows = max(1, token_budget // width)
        for j in range(i, end, rows):
            batches.append(order[j : min(j + rows, end)])
        i = end
    return batches


def build(
    ids: Sequence[Sequence[int]],
    index: np.ndarray,
    *,
    pad_id: int,
    token_budget: int,
    multiple: int,
    max_length: int,
) -> Batch:
    """The padded arrays of one planned batch."""
    lens = [len(ids[i]) for i in index]
    width = padded_length(max(lens), multiple, max_length)
    full = max(1, token_budget // width)
    rows = padded_rows(len(index), full) if len(index) < full else len(index)
    input_ids = np.full((rows, width), pad_id, dtype=np.int32)
    mask = np.zeros((rows, width), dtype=np.int32)
    for r, i in enumerate(index):
        n = min(lens[r], width)  # the tokenizer truncates to max_length already; this guards direct use
        input_ids[r, :n] = ids[i][:n]
        mask[r, :n] = 1
    # Filler rows attend to one position so they compute something finite; their outputs are dropped.
    mask[len(index) :, 0] = 1
    return Batch(index=index, input_ids=input_ids, attention_mask=mask, real_tokens=int(sum(lens)))


def batches(
    ids: Sequence[Sequence[int]],
    *,
    pad_id: int,
    token_budget: int,
    multiple: int,
    max_length: int,
) -> Iterator[Batch]:
    for index in plan([len(x) for x in ids], token_budget, multiple, max_length):
        yield build(
            ids, index, pad_id=pad_id, token_budget=token_budget, multiple=multiple, max_length=max_length
        )


def make_forward(model: Any) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Class probabilities for a padded batch, through one tf.function traced once.

    Tracing a transformer takes seconds, so the signature leaves both dimensions open: one
    trace serves every batch. Padding to ``padded_length``/``padded_rows`` still keeps the
    shapes the kernels see to a small set (what XLA or cuDNN autotuning cache on a GPU).
    """
    import tensorflow as tf

    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec])
    def forward(input_ids: Any, attention_mask: Any) -> Any:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, training=False).logits
        return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        out: np.ndarray = forward(tf.constant(input_ids), tf.constant(attention_mask)).numpy()
        return out

    return run
