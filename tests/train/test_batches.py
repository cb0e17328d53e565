"""Epoch plans: seeded, complete, length-bucketed, padded to multiples of 8, addressable by index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.model import load_tokenizer
from engine.train.batches import EpochPlan, SplitReader, read_manifest


@pytest.fixture(scope="module")
def reader(tiny_data: Path) -> SplitReader:
    return SplitReader(tiny_data, "train", read_manifest(tiny_data))


@pytest.fixture(scope="module")
def tok(tiny_tf: Path):
    return load_tokenizer(tiny_tf)


def plan(reader: SplitReader, tok, epoch: int = 0, seed: int = 1, **kw) -> EpochPlan:
    return EpochPlan(
        reader,
        tok,
        batch_size=kw.pop("batch_size", 8),
        max_length=kw.pop("max_length", 32),
        seed=seed,
        epoch=epoch,
        window=kw.pop("window", 3),
        **kw,
    )


def test_every_row_once_per_epoch_in_a_seeded_order(reader: SplitReader, tok) -> None:
    a = list(plan(reader, tok).batches())
    assert len(a) == plan(reader, tok).num_batches
    rows = np.concatenate([b.rows for b in a])
    assert sorted(rows.tolist()) == list(range(reader.rows))
    same = np.concatenate([b.rows for b in plan(reader, tok).batches()])
    np.testing.assert_array_equal(rows, same)
    next_epoch = np.concatenate([b.rows for b in plan(reader, tok, epoch=1).batches()])
    other_seed = np.concatenate([b.rows for b in plan(reader, tok, seed=2).batches()])
    assert not np.array_equal(rows, next_epoch) and not np.array_equal(rows, other_seed)


def test_padding_truncation_and_length_buckets(reader: SplitReader, tok) -> None:
    batches = list(plan(reader, tok, max_length=16, window=100).batches())
    for b in batches:
        width = b.input_ids.shape[1]
        assert width % 8 == 0 and width <= 16
        assert b.attention_mask.sum(axis=1).max() > width - 8  # no wasted block of 8 pad columns
        assert (b.input_ids[b.attention_mask == 0] == tok.pad_token_id).all()
    # Sorting within windows makes batches far more uniform in length than random batching.
    spread = np.mean([np.ptp(b.attention_mask.sum(1)) for b in list(plan(reader, tok, window=100).batches())])
    unsorted = np.mean([np.ptp(b.attention_mask.sum(1)) for b in list(plan(reader, tok, window=1).batches())])
    assert spread < unsorted


def test_fast_forward_by_index_equals_the_tail(reader: SplitReader, tok) -> None:
    full = list(plan(reader, tok).batches())
    tail = list(plan(reader, tok).batches(start=7))
    assert [b.index for b in tail] == list(range(7, len(full)))
    for x, y in zip(full[7:], tail, strict=True):
        np.testing.assert_array_equal(x.rows, y.rows)
        np.testing.assert_array_equal(x.input_ids, y.input_ids)


def test_each_shard_is_read_once_per_epoch_and_a_resume_reads_only_what_it_needs(
    reader: SplitReader, tok, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    reads: list[str] = []
    real = pd.read_hdf

    def counting(path, *args, **kwargs):
        reads.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_hdf", counting)
    small = SplitReader(reader.data_dir, "train", read_manifest(reader.data_dir), cache=1)
    epoch = plan(small, tok)
    order = [small.shards[w.shard][0].name for w in epoch.windows]
    in_order = list(dict.fromkeys(order))
    assert len(in_order) == len(small.shards) > 1
    list(epoch.batches())
    assert reads == in_order  # a one-shard cache suffices: the plan never goes back to a shard
    reads.clear()
    last = next(w for w in epoch.windows if small.shards[w.shard][0].name == in_order[-1])
    list(
        plan(SplitReader(small.data_dir, "train", read_manifest(small.data_dir)), tok).batches(
            last.first_batch
        )
    )
    assert reads == [in_order[-1]]
