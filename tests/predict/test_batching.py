"""Prediction batches: little padding whatever the lengths, bounded shapes, every text once, in order."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.predict import batching
from engine.predict.batching import PAD_TOLERANCE, batches, ladder_rows, plan, shapes

BUDGET = batching.DEFAULT_TOKEN_BUDGET


def long_tailed(n: int, seed: int, max_length: int = 512) -> list[int]:
    """Token counts like short reviews: most a few dozen, a long tail, a pile cut at max_length."""
    rng = np.random.default_rng(seed)
    lens = rng.lognormal(np.log(30), 1.0, n).astype(int) + 2
    return [int(x) for x in np.minimum(lens, max_length)]


def tweets_like(n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(x) for x in np.clip(rng.normal(33, 12, n), 4, 128).astype(int)]


def padding(lengths: list[int], multiple: int, max_length: int, budget: int = BUDGET) -> float:
    ids = [[7] * n for n in lengths]
    built = list(batches(ids, pad_id=0, token_budget=budget, multiple=multiple, max_length=max_length))
    real = sum(b.real_tokens for b in built)
    assert real == sum(min(n, max_length) for n in lengths)
    return 1 - real / sum(b.padded_tokens for b in built)


@pytest.mark.parametrize("max_length", [128, 512])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_long_tailed_lengths_pad_at_most_six_percent(max_length: int, seed: int) -> None:
    full = long_tailed(8192, seed)
    assert max(full) == 512 and np.percentile(full, 99) > 250  # the tail is there
    lengths = [min(n, max_length) for n in full]
    assert padding(lengths, batching.CPU_MULTIPLE, max_length) <= 0.06


def test_tweets_like_lengths_pad_at_most_six_percent() -> None:
    assert padding(tweets_like(8192, 0), batching.CPU_MULTIPLE, 128) <= 0.06


def test_one_length_fills_whole_batches_without_padding() -> None:
    ids = [[7] * 64 for _ in range(1000)]
    built = list(batches(ids, pad_id=0, token_budget=BUDGET, multiple=8, max_length=512))
    assert sum(b.padded_tokens for b in built) == 64 * 1000
    # Full batches of 128 rows, then the 104 left as ladder counts (96 + 8): no filler rows.
    assert [len(b.index) for b in built] == [128] * 7 + [96, 8]


@pytest.mark.parametrize("multiple", [batching.CPU_MULTIPLE, batching.GPU_MULTIPLE])
def test_a_tiny_chunk_gets_no_filler_rows(multiple: int) -> None:
    lengths = [300, 40, 45, 6]
    built = list(
        batches([[7] * n for n in lengths], pad_id=0, token_budget=BUDGET, multiple=multiple, max_length=512)
    )
    assert [b.input_ids.shape[0] for b in built] == [len(b.index) for b in built]
    # Only the rounding to the multiple pads: no two of these share a batch past the tolerance.
    own = sum(batching.padded_length(n, multiple, 512) for n in lengths)
    assert padding(lengths, multiple, 512) == pytest.approx(1 - sum(lengths) / own)


@pytest.mark.parametrize("multiple", [batching.CPU_MULTIPLE, batching.GPU_MULTIPLE])
def test_spanning_widths_pads_within_tolerance_per_batch(multiple: int) -> None:
    lengths = np.asarray(long_tailed(8192, 3))
    for index in plan(lengths, BUDGET, multiple, 512):
        own = np.asarray([batching.padded_length(int(n), multiple, 512) for n in lengths[index]])
        width = own.max()
        assert len(index) * width <= BUDGET or len(index) == 1
        # Past each text's own rounded width: the tolerance at most.
        assert (width - own).sum() <= PAD_TOLERANCE * width * len(index)


@pytest.mark.parametrize("multiple", [batching.CPU_MULTIPLE, batching.GPU_MULTIPLE])
def test_shapes_stay_within_the_stated_bound(multiple: int) -> None:
    bound = shapes(BUDGET, multiple, 512)
    seen = set()
    for seed in range(4):
        for lengths in (long_tailed(8192, seed), tweets_like(8192, seed), long_tailed(37, seed)):
            built = batches(
                [[7] * n for n in lengths], pad_id=0, token_budget=BUDGET, multiple=multiple, max_length=512
            )
            seen |= {b.input_ids.shape for b in built}
    assert seen <= bound
    widths = {w for _, w in bound}
    assert len(widths) == math.ceil(512 / multiple)
    for width in widths:
        full = BUDGET // width
        assert len({r for r, w in bound if w == width}) <= 2 * math.log2(full) + 2
    # The docstring's figures.
    assert len(shapes(BUDGET, 8, 512)) == 707 and len(shapes(BUDGET, 2, 512)) == 2859


def test_ladder_rows() -> None:
    assert [ladder_rows(n, 100) for n in (1, 2, 3, 5, 7, 13, 64, 97, 99, 100, 150)] == [
        1, 2, 3, 4, 6, 12, 64, 96, 96, 100, 100,
    ]  # fmt: skip


def test_every_row_once_and_results_back_in_order() -> None:
    rng = np.random.default_rng(5)
    lengths = long_tailed(5000, 5)
    ids = [[int(t) for t in rng.integers(5, 1000, n)] for n in lengths]
    out = np.full(len(ids), -1, dtype=np.int64)
    seen = []
    for b in batches(ids, pad_id=0, token_budget=BUDGET, multiple=2, max_length=512):
        seen.append(b.index)
        # A stand-in model: each row's sum of token ids under its mask, written back by position.
        out[b.index] = (b.input_ids * b.attention_mask).sum(axis=1)
        assert (b.attention_mask.sum(axis=1) == [len(ids[i]) for i in b.index]).all()
    flat = np.concatenate(seen)
    assert sorted(flat.tolist()) == list(range(len(ids)))
    assert out.tolist() == [sum(x) for x in ids]


def test_plan_is_deterministic_and_keeps_input_order_among_equal_lengths() -> None:
    lengths = long_tailed(3000, 9)
    first = plan(lengths, BUDGET, 2, 512)
    again = plan(list(lengths), BUDGET, 2, 512)
    assert all((a == b).all() for a, b in zip(first, again, strict=True)) and len(first) == len(again)
    flat = np.concatenate(first)
    for n in set(lengths):
        where = [int(i) for i in flat if lengths[i] == n]
        assert where == sorted(where)


def test_predictions_equal_each_text_computed_alone(tiny_classifier: Path) -> None:
    """Batched and padded across widths, each text's probabilities are its own unpadded ones."""
    from engine.predict import models

    model, tokenizer, _, _ = models.load({"kind": "folder", "path": str(tiny_classifier)})
    forward = batching.make_forward(model)
    rng = np.random.default_rng(0)
    vocab = len(tokenizer)
    lengths = [int(n) for n in np.clip(rng.lognormal(np.log(12), 0.8, 60).astype(int), 3, 64)]
    ids = [[2, *rng.integers(5, vocab, n - 2).tolist(), 3] for n in lengths]
    probs = np.zeros((len(ids), 3), dtype=np.float32)
    for b in batches(ids, pad_id=0, token_budget=256, multiple=2, max_length=64):
        probs[b.index] = forward(b.input_ids, b.attention_mask)
    alone = np.concatenate(
        [forward(np.asarray([x], dtype=np.int32), np.ones((1, len(x)), dtype=np.int32)) for x in ids]
    )
    assert (probs.argmax(axis=1) == alone.argmax(axis=1)).all()
    np.testing.assert_allclose(probs, alone, atol=1e-5)
    assert len(set(alone.argmax(axis=1).tolist())) > 1  # the labels vary, so the check means something
