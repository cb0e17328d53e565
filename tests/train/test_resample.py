"""Per-epoch re-sampling: balanced class counts, seeded by (seed, epoch), addressable by batch index."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.model import load_tokenizer
from engine.train.batches import Batch, EpochPlan, SplitReader, read_manifest
from tests.support.tiny import synthetic_texts
from tests.train.conftest import make_ctx, train_config

LABELS = ("neg", "mid", "pos")
COUNTS = {0: 61, 1: 23, 2: 9}  # imbalanced: 93 train rows
SHARD_ROWS = 40  # 3 shards: an epoch's windows cross shard boundaries


def write_imbalanced(folder: Path) -> Path:
    """Prepared data (the layout of engine/data/prepare.py) whose train split is imbalanced."""
    texts = synthetic_texts(200, list(LABELS), seed=5)
    by_label: dict[int, list[str]] = {k: [t for t, lab in texts if lab == k] for k in COUNTS}
    train = [(by_label[k][i], k) for k in COUNTS for i in range(COUNTS[k])]
    order = np.random.default_rng(0).permutation(len(train))
    splits: dict[str, Any] = {}
    row_id = 0
    for split, rows in (("train", [train[i] for i in order]), ("validation", texts[:30])):
        (folder / split).mkdir(parents=True)
        shards = []
        for i, start in enumerate(range(0, len(rows), SHARD_ROWS)):
            chunk = rows[start : start + SHARD_ROWS]
            frame = pd.DataFrame(
                {
                    "row": np.arange(row_id, row_id + len(chunk), dtype=np.int64),
                    "text": [t for t, _ in chunk],
                    "label": np.array([lab for _, lab in chunk], dtype=np.int32),
                }
            )
            row_id += len(chunk)
            rel = f"{split}/shard-{i:05d}.h5"
            frame.to_hdf(folder / rel, key="rows", format="table")
            counts = {LABELS[k]: int(v) for k, v in frame["label"].value_counts().sort_index().items()}
            shards.append({"path": rel, "rows": len(chunk), "label_counts": counts})
        splits[split] = {"rows": len(rows), "shards": shards}
    manifest = {"version": 1, "labels": list(LABELS), "splits": splits, "data_fingerprint": "imbalanced"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_imbalanced(tmp_path_factory.mktemp("imbalanced"))


@pytest.fixture(scope="module")
def tok(tiny_tf: Path):
    return load_tokenizer(tiny_tf)


@pytest.fixture(scope="module")
def truth(data: Path) -> dict[int, int]:
    """Each train row id's label, read straight from the shards."""
    frames = [pd.read_hdf(p, key="rows") for p in sorted((data / "train").glob("*.h5"))]
    return {int(r): int(lab) for f in frames for r, lab in zip(f["row"], f["label"], strict=True)}


def plan(data: Path, tok, mode: str, epoch: int = 0, seed: int = 3, reader: SplitReader | None = None):
    return EpochPlan(
        reader or SplitReader(data, "train", read_manifest(data)),
        tok,
        batch_size=8,
        max_length=32,
        seed=seed,
        epoch=epoch,
        window=2,
        resample=mode,
    )


def rows_of(batches: list[Batch]) -> list[int]:
    return np.concatenate([b.rows for b in batches]).tolist()


@pytest.mark.parametrize(("mode", "each"), [("oversample", 61), ("undersample", 9)])
def test_every_class_has_the_intended_count_every_epoch(
    data: Path, tok, truth: dict[int, int], mode: str, each: int
) -> None:
    reader = SplitReader(data, "train", read_manifest(data))
    for epoch in range(3):
        p = plan(data, tok, mode, epoch, reader=reader)
        batches = list(p.batches())
        assert p.num_batches == len(batches) == -(-3 * each // 8)  # the same count every epoch
        assert [b.index for b in batches] == list(range(p.num_batches))
        rows = rows_of(batches)
        labels = np.concatenate([b.labels for b in batches]).tolist()
        assert [truth[r] for r in rows] == labels  # each row keeps its own label
        assert Counter(labels) == {0: each, 1: each, 2: each}
        if mode == "oversample":
            assert set(rows) == set(truth)  # every row at least once, minorities repeated
            assert Counter(r for r in rows if truth[r] == 0) == Counter(
                {r: 1 for r in truth if truth[r] == 0}
            )
        else:
            assert len(set(rows)) == len(rows)  # a subset: no row twice
            assert {r for r in rows if truth[r] == 2} == {r for r in truth if truth[r] == 2}


@pytest.mark.parametrize("mode", ["oversample", "undersample"])
def test_seeded_by_seed_and_epoch_and_a_rebuilt_plan_yields_the_same_tail(data: Path, tok, mode: str) -> None:
    full = list(plan(data, tok, mode, epoch=1).batches())
    again = list(plan(data, tok, mode, epoch=1).batches())  # a fresh reader too: a pure function
    assert rows_of(full) == rows_of(again)
    assert rows_of(full) != rows_of(list(plan(data, tok, mode, epoch=2).batches()))
    assert rows_of(full) != rows_of(list(plan(data, tok, mode, epoch=1, seed=4).batches()))
    if mode == "undersample":  # another epoch keeps another subset of the majority
        assert set(rows_of(full)) != set(rows_of(list(plan(data, tok, mode, epoch=2).batches())))
    # A resume rebuilds the plan and jumps to the batch index by arithmetic.
    for start in (1, 5, len(full) - 1):
        tail = list(plan(data, tok, mode, epoch=1).batches(start))
        assert [b.index for b in tail] == list(range(start, len(full)))
        for x, y in zip(full[start:], tail, strict=True):
            np.testing.assert_array_equal(x.rows, y.rows)
            np.testing.assert_array_equal(x.input_ids, y.input_ids)
            np.testing.assert_array_equal(x.labels, y.labels)


def test_labels_are_read_once_per_reader_and_each_shard_once_per_epoch(
    data: Path, tok, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[tuple[str, object]] = []
    real = pd.read_hdf

    def counting(path, *args, **kwargs):
        reads.append((Path(path).name, kwargs.get("columns")))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_hdf", counting)
    reader = SplitReader(data, "train", read_manifest(data), cache=1)
    whole: list[list[str]] = []
    for epoch in range(2):
        start = len(reads)
        list(plan(data, tok, "oversample", epoch, reader=reader).batches())
        whole.append([name for name, cols in reads[start:] if cols is None])
    label_reads = [name for name, cols in reads if cols == ["label"]]
    assert sorted(label_reads) == sorted(p.name for p, _ in reader.shards)  # once, for every epoch
    # Windows span shards, yet each shard is read at most once an epoch, even with one cached.
    assert len(whole[0]) == len(set(whole[0])) == len(reader.shards)
    assert len(whole[1]) == len(set(whole[1])) >= len(reader.shards) - 1  # the last one may be cached


def test_none_is_todays_plan_byte_for_byte(tiny_data: Path, tok) -> None:
    # The digest of the plan before re-sampling existed (same data, tokenizer, seed and epochs).
    reader = SplitReader(tiny_data, "train", read_manifest(tiny_data))
    digest = hashlib.sha256()
    for epoch in (0, 1):
        p = EpochPlan(
            reader, tok, batch_size=8, max_length=32, seed=1, epoch=epoch, window=3, resample="none"
        )
        for b in p.batches():
            digest.update(f"{b.index}:{','.join(map(str, b.rows.tolist()))};".encode())
    assert digest.hexdigest() == "d2fd7fefb2278038d02399167af52dbb093b28ce5d65128cbf3e60740309384c"


def test_the_trainer_counts_its_steps_from_the_resampled_epoch(
    tiny_tf: Path, data: Path, tmp_path: Path
) -> None:
    from engine.train.config import parse_config
    from engine.train.loop import Trainer

    cfg = train_config(tiny_tf, data, resample="undersample", batch_size=4, epochs=2, warmup_steps=0)
    ctx, _ = make_ctx(tmp_path / "session", config=cfg)
    trainer = Trainer(parse_config(cfg), data, ctx)
    trainer._build()  # the run's setup (model, plan, schedule), without training it
    assert trainer.num_batches == -(-27 // 4)  # 3 classes of 9 rows, batches of 4
    assert trainer.state.total_steps == trainer.schedule.total_steps == 2 * 7
    assert Counter(np.concatenate([b.labels for b in trainer._plan(1).batches()]).tolist()) == {
        0: 9,
        1: 9,
        2: 9,
    }
    figures = trainer.evaluator.run("validation", trainer.t)
    assert (
        sum(figures.per_class[n]["support"] for n in LABELS) == 30
    )  # the validation split is never resampled
