"""Token-budget batches of length-sorted texts, padded to a bounded set of shapes, put back in order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_TOKEN_BUDGET = 8192
# Sequence lengths are padded to a multiple of this: 8 on a GPU (tensor-core tiles, and a short
# list of shapes for XLA/cuDNN to tune), 2 on a CPU, where one trace serves every shape and each
# padded token costs as much as a real one (tweets: 9.8% padding at 8, 2.4% at 2; bench/results/padding.md).
GPU_MULTIPLE = 8
CPU_MULTIPLE = 2
DEFAULT_MULTIPLE = GPU_MULTIPLE
# Positions a batch may pad past its texts' own rounded widths, as a share of the batch: what a
# batch spanning neighbouring widths may cost (the rounding to the multiple comes on top).
PAD_TOLERANCE = 0.03


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


def ladder_rows(n: int, full: int) -> int:
    """The largest row count of the ladder that is <= n: ``full``, or 1, 2, 3, 4, 6, 8, 12, 16, 24, ...

    A batch that stops short of ``full`` rows keeps a count from this geometric ladder (powers of
    two and 1.5 times them), the rest going to the next batch: row counts stay few without filler rows.
    """
    if n >= full:
        return full
    p = 1 << (max(n, 1).bit_length() - 1)
    return p * 3 // 2 if p >= 2 and p * 3 // 2 <= n else p


def shapes(token_budget: int, multiple: int, max_length: int) -> set[tuple[int, int]]:
    """Every (rows, width) ``plan`` can make: the bound on distinct shapes (for a GPU's shape caches).

    Widths are multiples of ``multiple`` up to ``max_length`` (max_length/multiple of them, rounded
    up); per width, its full row count (token_budget // width) and the ladder's counts below it
    (about 2*log2(full) of them). For 8,192 tokens and max_length 512: 707 shapes at a multiple of 8,
    2,859 at 2 (filling short batches to a multiple of 8 rows allowed 630 and 3,235). A run meets far
    fewer: 80 at most on the texts of bench/padding_bench.py.
    """
    widths = {padded_length(n, multiple, max_length) for n in range(1, max_length + 1)}
    out = set()
    for width in widths:
        full = max(1, token_budget // width)
        out |= {(ladder_rows(r, full), width) for r in range(1, full + 1)}
    return out


def plan(
    lengths: Sequence[int],
    token_budget: int,
    multiple: int,
    max_length: int,
    tolerance: float = PAD_TOLERANCE,
) -> list[np.ndarray]:
    """Positions per batch: neighbouring lengths together, as many rows as fit in the budget.

    Texts are sorted longest first (so the first batch is the largest in memory: an
    out-of-memory shows at once). A batch is as wide as its longest text rounded up to the
    multiple; it takes the next texts while they fit in the token budget and the positions they
    add past their own rounded widths stay within ``tolerance`` of the batch. Texts of one rounded
    width never cost spread, so a dense width fills whole batches; a sparse tail shares
    batches across neighbouring widths instead of leaving one short batch per width. A batch
    that stops short keeps a ladder row count (``ladder_rows``); no filler rows are added, so the
    padding is the rounding to the multiple plus at most ``tolerance``, and the shapes stay
    within ``shapes(token_budget, multiple, max_length)``.
    """
    lens = np.asarray(lengths, dtype=np.int64)
    # A stable sort keeps equal-length texts in input order: the same chunk always makes the same batches.
    order = np.argsort(-lens, kind="stable")
    widths = np.minimum(-(-np.maximum(lens[order], 1) // multiple) * multiple, max_length)
    batches = []
    i = 0
    while i < len(order):
        width = int(widths[i])
        full = max(1, token_budget // width)
        stop = min(len(order), i + full)
        # Sorted longest first, each next text adds at least the spread of the one before it, so the
        # spread's share of the batch only grows: the texts within tolerance are a prefix.
        spread = np.cumsum(width - widths[i:stop])
        fits = spread <= tolerance * width * np.arange(1, stop - i + 1)
        rows = ladder_rows(int(np.argmin(fits)) if not fits.all() else stop - i, full)
        batches.append(order[i : i + rows])
        i += rows
    return batches


def build(
    ids: Sequence[Sequence[int]], index: np.ndarray, *, pad_id: int, multiple: int, max_length: int
) -> Batch:
    """The padded arrays of one planned batch: one row per text, as wide as its longest, rounded up."""
    lens = [len(ids[i]) for i in index]
    width = padded_length(max(max(lens), 1), multiple, max_length)
    input_ids = np.full((len(index), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(index), width), dtype=np.int32)
    for r, i in enumerate(index):
        n = min(lens[r], width)  # the tokenizer truncates to max_length already; this guards direct use
        input_ids[r, :n] = ids[i][:n]
        mask[r, :n] = 1
    return Batch(index=index, input_ids=input_ids, attention_mask=mask, real_tokens=int(sum(lens)))


def batches(
    ids: Sequence[Sequence[int]],
    *,
    pad_id: int,
    token_budget: int,
    multiple: int,
    max_length: int,
) -> Iterator[Batch]:
    """The chunk's texts (token ids) as padded batches, in ``plan``'s order; each names its positions."""
    for index in plan([len(x) for x in ids], token_budget, multiple, max_length):
        yield build(ids, index, pad_id=pad_id, multiple=multiple, max_length=max_length)


def make_forward(model: Any) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Class probabilities for a padded batch, through one tf.function traced once.

    Tracing a transformer takes seconds, so the signature leaves both dimensions open: one
    trace serves every batch. Padding to ``padded_length`` and the row ladder still keeps the
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
