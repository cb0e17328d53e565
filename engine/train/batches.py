"""Seeded, length-bucketed, dynamically padded batches streamed from the prepared HDF5 shards.

An epoch's plan is computed from the manifest's row counts alone: shard order and
row order within each shard are permutations seeded by (seed, epoch[, shard]); rows are
cut into windows of ``window`` batches, sorted by token length inside a window, batched,
and the window's batch order shuffled. So a batch index names one batch exactly, and a
resume jumps straight to it by arithmetic, reading one shard, replaying nothing.

With ``resample`` (oversample or undersample) an epoch first draws, seeded by (seed,
epoch), a class-balanced multiset of rows from the labels alone (read once, without the
texts); that multiset is then shuffled by shard and row as above, and cut into windows
along the whole epoch, so every epoch has the same ceil(rows / batch_size) batches and a
batch index still names one batch. Evaluation never resamples.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.data.shards import load_manifest as read_manifest  # noqa: F401 (the training loop's name)
from engine.data.shards import load_shard
from engine.errors import DataError

PAD_MULTIPLE = 8  # padded lengths are multiples of 8: fewer distinct shapes, tensor-core friendly
RESAMPLE_MODES = ("none", "oversample", "undersample")
# The third word of the re-sampling's random streams: no shard index reaches it, so they never
# coincide with the (seed, epoch, shard[, window]) streams of the shuffle.
_RESAMPLE_STREAM = 0x7E5A_3D1E


class SplitReader:
    """One split's shards, loaded one at a time with a small LRU, so memory stays flat."""

    def __init__(self, data_dir: Path, split: str, manifest: dict[str, Any], cache: int = 2) -> None:
        info = manifest["splits"].get(split)
        if not info or not info.get("shards"):
            raise DataError(
                f"{data_dir}/manifest.json: split {split!r} has no shards; prepare it with that split"
            )
        self.data_dir = data_dir
        self.split = split
        self.shards: list[tuple[Path, int]] = [(data_dir / s["path"], int(s["rows"])) for s in info["shards"]]
        self.rows = sum(n for _, n in self.shards)
        self._cache: OrderedDict[int, pd.DataFrame] = OrderedDict()
        self._cache_size = cache
        self._labels: list[np.ndarray] | None = None

    def labels(self) -> list[np.ndarray]:
        """Each shard's label column, read once and kept (not the texts): what re-sampling draws from."""
        if self._labels is None:
            self._labels = [
                load_shard(path, rows, columns=["label"])["label"].to_numpy(dtype=np.int64)
                for path, rows in self.shards
            ]
        return self._labels

    def shard(self, index: int) -> pd.DataFrame:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        path, rows = self.shards[index]
        frame = load_shard(path, rows)
        self._cache[index] = frame
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return frame


@dataclass
class Batch:
    """One padded batch and where it came from."""

    epoch: int
    index: int
    rows: np.ndarray  # the data's `row` ids, for audits and resume tests
    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())

    def tensors(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "labels": self.labels}


def pad(encoded: list[list[int]], pad_id: int, multiple: int = PAD_MULTIPLE) -> tuple[np.ndarray, np.ndarray]:
    longest = max((len(e) for e in encoded), default=1)
    width = -(-longest // multiple) * multiple
    ids = np.full((len(encoded), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(encoded), width), dtype=np.int32)
    for i, e in enumerate(encoded):
        ids[i, : len(e)] = e
        mask[i, : len(e)] = 1
    return ids, mask


@dataclass(frozen=True)
class _Window:
    shard: int  # -1 when re-sampled: the window may span shards
    lo: int  # slice of the shard's permutation (re-sampled: of the epoch's sequence)
    hi: int
    first_batch: int
    n_batches: int


class EpochPlan:
    """The batches of one epoch of a split, addressable by index."""

    def __init__(
        self,
        reader: SplitReader,
        tokenizer: Any,
        *,
        batch_size: int,
        max_length: int,
        seed: int,
        epoch: int,
        window: int = 50,
        shuffle: bool = True,
        resample: str = "none",
    ) -> None:
        if resample not in RESAMPLE_MODES:
            raise ValueError(f"resample must be one of {', '.join(RESAMPLE_MODES)}, not {resample!r}")
        self.reader, self.tokenizer = reader, tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        self.seed, self.epoch, self.shuffle = seed, epoch, shuffle
        self.resample = resample
        order = np.arange(len(reader.shards))
        if shuffle:
            order = np.random.default_rng([seed, epoch]).permutation(len(reader.shards))
        self.windows: list[_Window] = []
        first = 0
        span = batch_size * window
        # resample: the epoch's rows in order as (shard, row in shard); the windows cut it along the epoch.
        self.sequence: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        if resample != "none":
            self.sequence = self._resampled(order)
            for lo in range(0, len(self.sequence[0]), span):
                hi = min(len(self.sequence[0]), lo + span)
                n = -(-(hi - lo) // batch_size)
                self.windows.append(_Window(-1, lo, hi, first, n))
                first += n
            self.num_batches = first
            return
        for shard in order:
            rows = reader.shards[shard][1]
            for lo in range(0, rows, span):
                hi = min(rows, lo + span)
                n = -(-(hi - lo) // batch_size)
                self.windows.append(_Window(int(shard), lo, hi, first, n))
                first += n
        self.num_batches = first

    def _permutation(self, shard: int, rows: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(rows)
        return np.random.default_rng([self.seed, self.epoch, shard]).permutation(rows)

    def _resampled(self, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's class-balanced multiset of rows as (shard, row), in shard order; from (seed, epoch).

        oversample: every class is drawn up to the largest class's count (all its rows, plus
        rows drawn with replacement); undersample: every class keeps a random subset of the
        smallest class's count. Rows are then grouped by shard and permuted within it.
        """
        labels = self.reader.labels()
        offsets = np.cumsum([0] + [len(x) for x in labels])
        flat = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
        classes, counts = np.unique(flat, return_counts=True)
        rng = np.random.default_rng([self.seed, self.epoch, _RESAMPLE_STREAM])
        picks: list[np.ndarray] = []
        for label, count in zip(classes, counts, strict=True):
            where = np.flatnonzero(flat == label)
            if self.resample == "oversample":
                picks += [where, rng.choice(where, int(counts.max() - count), replace=True)]
            else:
                picks.append(rng.choice(where, int(counts.min()), replace=False))
        chosen = np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=np.int64)
        bounds = np.searchsorted(chosen, offsets)  # chosen[bounds[i]:bounds[i+1]] lie in shard i
        shards: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        for shard in order:
            mine = chosen[bounds[shard] : bounds[shard + 1]] - offsets[shard]
            mine = mine[self._permutation(int(shard), len(mine))]
            shards.append(np.full(len(mine), shard, dtype=np.int64))
            rows.append(mine)
        if not shards:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(shards), np.concatenate(rows)

    def batches(self, start: int = 0) -> Iterator[Batch]:
        """Batches from index ``start`` to the end of the epoch (start > 0 is a resume: no replay)."""
        for w_index, win in enumerate(self.windows):
            if win.first_batch + win.n_batches <= start:
                continue
            if self.resample != "none":
                texts, rows, labels = self._gather(win.lo, win.hi)
                key = [self.seed, self.epoch, _RESAMPLE_STREAM, w_index]
            else:
                frame = self.reader.shard(win.shard)
                picks = self._permutation(win.shard, len(frame))[win.lo : win.hi]
                texts = frame["text"].to_numpy()[picks]
                rows = frame["row"].to_numpy()[picks]
                labels = frame["label"].to_numpy()[picks].astype(np.int32)
                key = [self.seed, self.epoch, win.shard, w_index]
            yield from self._window_batches(texts, rows, labels, win.first_batch, key, start)

    def _gather(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Texts, row ids and labels of sequence[lo:hi], reading each shard it spans once, in order."""
        shards, picks = self.sequence[0][lo:hi], self.sequence[1][lo:hi]
        cuts = [0, *(np.flatnonzero(np.diff(shards)) + 1).tolist(), len(shards)]
        texts, rows, labels = [], [], []
        for a, b in itertools.pairwise(cuts):
            if a == b:
                continue
            frame = self.reader.shard(int(shards[a]))
            texts.append(frame["text"].to_numpy()[picks[a:b]])
            rows.append(frame["row"].to_numpy()[picks[a:b]])
            labels.append(frame["label"].to_numpy()[picks[a:b]].astype(np.int32))
        return np.concatenate(texts), np.concatenate(rows), np.concatenate(labels)

    def _window_batches(
        self, texts: np.ndarray, rows: np.ndarray, labels: np.ndarray, first: int, key: list[int], start: int
    ) -> Iterator[Batch]:
        """One window's rows sorted by token length, batched, the batch order shuffled by ``key``."""
        encoded = self.tokenizer(
            [str(t) for t in texts], truncation=True, max_length=self.max_length, add_special_tokens=True
        )["input_ids"]
        lengths = np.array([len(e) for e in encoded])
        by_length = np.argsort(lengths, kind="stable")
        groups = [by_length[i : i + self.batch_size] for i in range(0, len(by_length), self.batch_size)]
        if self.shuffle:
            rng = np.random.default_rng(key)
            groups = [groups[i] for i in rng.permutation(len(groups))]
        for j, group in enumerate(groups):
            index = first + j
            if index < start:
                continue
            ids, mask = pad([encoded[i] for i in group], self.tokenizer.pad_token_id or 0)
            yield Batch(self.epoch, index, rows[group], ids, mask, labels[group])


def steps_per_epoch(num_batches: int, accum: int) -> int:
    return -(-num_batches // accum)
