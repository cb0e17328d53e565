"""Per-example predictions of an evaluation: written by the engine, read lazily by the console.

Each evaluation of a split (validation, test; at the end, a sample of the training split) leaves
``<session>/evaluations/<split>-step<N>.npz``: for each example its position in the split's
prepared shards (shard order, then row order inside a shard), its data row id, the true label id,
the predicted id, the probability of each, and the top classes with their probabilities. The
texts are not copied: ``Texts`` fetches the few a page shows from the prepared HDF5 shards, only
from the shards those rows lie in and only those rows, so a 1M-row split opens at once.

Only the last ``KEEP`` evaluations of each split and the best validation one are kept (``prune``).
This module needs numpy and pandas only (the console imports it; no TensorFlow).
"""

from __future__ import annotations

import csv
import io
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.data.errors import one_line
from engine.data.shards import SHARD_KEY, load_manifest
from engine.errors import DataError, FtcError, OutputError
from engine.fsio import atomic_write_bytes, atomic_write_text

FOLDER = "evaluations"  # inside the session folder
KEEP = 3  # the predictions of the last KEEP evaluations of each split are kept, and the best one
TOP_K = 5  # classes kept per example with their probabilities (all of them when there are fewer)
# The training split scored at the end for the label-noise list: at most this many rows, a seeded
# sample of them beyond (about 4 MB of predictions, and at most a minute of evaluation on a GPU).
TRAIN_SAMPLE_ROWS = 100_000
TEXT_CACHE = 20_000  # texts kept in memory by a reader (a search scans page after page)
_NAME = re.compile(r"^(?P<split>[a-z]+)-step(?P<step>\d+)\.npz$")


class PredictionsError(FtcError):
    """A predictions file that cannot be read or used; the message names it and what to do."""


def file_name(split: str, step: int) -> str:
    return f"{split}-step{step}.npz"


def relative_path(split: str, step: int) -> str:
    """The file's path relative to the session folder (what EvaluationEnded.predictions says)."""
    return f"{FOLDER}/{file_name(split, step)}"


# ---------------------------------------------------------------- writing (the engine's chief)


def write(
    session_root: Path,
    *,
    split: str,
    step: int,
    epoch: float | None,
    labels: Sequence[str],
    data_dir: Path,
    positions: np.ndarray,
    rows: np.ndarray,
    true: np.ndarray,
    probs: np.ndarray,
) -> str:
    """Write one evaluation's predictions atomically; returns the session-relative path.

    ``probs`` are softmax probabilities, one row per example, in the order of ``positions``.
    The file is sorted by position, so a page of rows in file order reads shards in order.
    """
    order = np.argsort(positions, kind="stable")
    probs = np.asarray(probs, dtype=np.float32)[order]
    true = np.asarray(true, dtype=np.int32)[order]
    n, classes = probs.shape if probs.ndim == 2 else (0, len(labels))
    k = min(TOP_K, classes)
    top = (
        np.argsort(-probs, axis=1, kind="stable")[:, :k].astype(np.int32) if n else np.zeros((0, k), np.int32)
    )
    arrays: dict[str, Any] = {
        "position": np.asarray(positions, dtype=np.int64)[order],
        "row": np.asarray(rows, dtype=np.int64)[order],
        "label": true,
        "pred": top[:, 0] if n else np.zeros(0, np.int32),
        "p_true": probs[np.arange(n), true] if n else np.zeros(0, np.float32),
        "top_ids": top,
        "top_probs": np.take_along_axis(probs, top, axis=1).astype(np.float16),
        "labels": np.array(list(labels), dtype=str),
        "meta": np.array([split, str(step), "" if epoch is None else repr(float(epoch)), str(data_dir)]),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # not compressed: a page's rows come back at once
    folder = session_root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / file_name(split, step), buffer.getvalue())
    return relative_path(split, step)


def stored(session_root: Path) -> dict[str, list[int]]:
    """The steps whose predictions are on disk, by split, ascending."""
    found: dict[str, list[int]] = {}
    for path in (session_root / FOLDER).glob("*.npz"):
        m = _NAME.match(path.name)
        if m:
            found.setdefault(m["split"], []).append(int(m["step"]))
    return {split: sorted(steps) for split, steps in found.items()}


def prune(
    session_root: Path, *, keep: int = KEEP, protect: Iterable[tuple[str, int]] = (), upto: int | None = None
) -> list[Path]:
    """Delete all but each split's last ``keep`` files and the ``protect``ed (split, step) ones.

    With ``upto`` (the run's step now), files of later steps go too: a run resumed from an earlier
    checkpoint left them on a path it no longer follows (it writes its own when it gets there).
    """
    spare = set(protect)
    removed = []
    for split, steps in stored(session_root).items():
        later = [s for s in steps if upto is not None and s > upto]
        steps = [s for s in steps if s not in later]
        for step in later + (steps[:-keep] if keep else steps):
            if (split, step) not in spare:
                path = session_root / FOLDER / file_name(split, step)
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def sample_positions(total: int, limit: int, seed: int) -> np.ndarray:
    """Every position of a split, or a seeded sample of ``limit`` of them (ascending) beyond that."""
    if total <= limit:
        return np.arange(total, dtype=np.int64)
    picked = np.random.default_rng([seed, 0x1AB3_1E55]).choice(total, size=limit, replace=False)
    return np.sort(picked).astype(np.int64)


# ---------------------------------------------------------------- reading (the console)


@dataclass
class Predictions:
    """One evaluation's per-example predictions (indexable arrays, sorted by position)."""

    path: Path
    split: str
    step: int
    epoch: float | None
    labels: list[str]
    data_dir: Path
    position: np.ndarray
    row: np.ndarray
    label: np.ndarray
    pred: np.ndarray
    p_true: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray

    def __len__(self) -> int:
        return len(self.position)

    @property
    def p_pred(self) -> np.ndarray:
        """The probability of the predicted class: the model's confidence."""
        return self.top_probs[:, 0].astype(np.float32) if len(self) else np.zeros(0, np.float32)

    @property
    def loss(self) -> np.ndarray:
        """Each example's cross-entropy against its given label."""
        return np.asarray(-np.log(np.clip(self.p_true.astype(np.float64), 1e-12, 1.0)))

    def label_id(self, name: str) -> int:
        try:
            return self.labels.index(name)
        except ValueError:
            raise PredictionsError(
                f"{self.path}: no label {name!r} (it has {', '.join(self.labels)}); pick another cell"
            ) from None


def load(path: Path) -> Predictions:
    """A predictions file; PredictionsError (one line: the file, what is wrong, what to do) if unusable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        meta = [str(x) for x in arrays["meta"]]
        return Predictions(
            path=path,
            split=meta[0],
            step=int(meta[1]),
            epoch=float(meta[2]) if meta[2] else None,
            labels=[str(x) for x in arrays["labels"]],
            data_dir=Path(meta[3]),
            position=arrays["position"],
            row=arrays["row"],
            label=arrays["label"],
            pred=arrays["pred"],
            p_true=arrays["p_true"],
            top_ids=arrays["top_ids"],
            top_probs=arrays["top_probs"],
        )
    except FileNotFoundError:
        raise PredictionsError(
            f"{path}: not kept (ftc keeps the predictions of the last {KEEP} evaluations and the best "
            "one); open a later evaluation"
        ) from None
    except Exception as exc:  # numpy and zipfile raise many kinds for a damaged file
        raise PredictionsError(
            f"{path}: cannot be read ({one_line(exc)}); it is damaged: evaluate again to rewrite it"
        ) from None


def latest(session_root: Path, split: str) -> Path | None:
    """The newest predictions file of ``split`` in a session (None: none kept)."""
    steps = stored(session_root).get(split)
    return session_root / FOLDER / file_name(split, steps[-1]) if steps else None


def select(p: Predictions, true: int | None = None, pred: int | None = None) -> np.ndarray:
    """Indices of a confusion cell's examples; with neither label, every misclassified one.

    One label alone: that row (or column) of the matrix, less its diagonal.
    """
    if true is not None and pred is not None:
        mask = (p.label == true) & (p.pred == pred)
    else:
        mask = p.label != p.pred
        if true is not None:
            mask &= p.label == true
        if pred is not None:
            mask &= p.pred == pred
    return np.flatnonzero(mask)


def by_confidence(p: Predictions, indices: np.ndarray, *, descending: bool = True) -> np.ndarray:
    """``indices`` ordered by the predicted class's probability (ties: by position)."""
    conf = p.p_pred[indices]
    order = np.lexsort((p.position[indices], -conf if descending else conf))
    return np.asarray(indices[order])


def by_loss(p: Predictions, *, disagreeing: bool = True) -> np.ndarray:
    """Likely label noise: the examples (where the model disagrees with the label) by loss, highest first."""
    indices = np.flatnonzero(p.label != p.pred) if disagreeing else np.arange(len(p))
    order = np.lexsort((p.position[indices], -p.loss[indices]))
    return np.asarray(indices[order])


def data_dir_of(p: Predictions, session_root: Path) -> Path:
    """Where the prepared data is: as the engine resolved it, else the session's own data/."""
    if (p.data_dir / "manifest.json").is_file():
        return p.data_dir
    return session_root / "data"


class Texts:
    """The texts of a split's rows by position, read from the prepared shards only as asked.

    ``get(positions)`` reads, from each shard those positions lie in, only those rows (HDF5
    coordinates), and keeps the last TEXT_CACHE texts. ``reads`` records each (shard, rows read).
    """

    def __init__(self, data_dir: Path, split: str) -> None:
        self.data_dir, self.split = data_dir, split
        manifest = load_manifest(data_dir)
        info = manifest["splits"].get(split) or {}
        self.paths = [data_dir / s["path"] for s in info.get("shards", [])]
        sizes = [int(s["rows"]) for s in info.get("shards", [])]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.reads: list[tuple[int, int]] = []
        self._cache: OrderedDict[int, str] = OrderedDict()

    def shard_of(self, positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, positions, side="right") - 1

    def get(self, positions: Sequence[int] | np.ndarray) -> list[str]:
        wanted = [int(x) for x in positions]
        missing = np.array(sorted({x for x in wanted if x not in self._cache}), dtype=np.int64)
        if len(missing):
            if missing[0] < 0 or missing[-1] >= self.starts[-1]:
                raise DataError(
                    f"{self.data_dir}: the {self.split} split has {self.starts[-1]} rows, not row "
                    f"{int(missing[-1])}; the data was prepared again after this evaluation"
                )
            shards = self.shard_of(missing)
            for shard in np.unique(shards):
                mine = missing[shards == shard]
                texts = self._read(int(shard), mine - self.starts[shard])
                for pos, text in zip(mine, texts, strict=True):
                    self._cache[int(pos)] = text
        out = []
        for x in wanted:
            self._cache.move_to_end(x)
            out.append(self._cache[x])
        while len(self._cache) > max(TEXT_CACHE, len(wanted)):
            self._cache.popitem(last=False)
        return out

    def _read(self, shard: int, offsets: np.ndarray) -> list[str]:
        """The texts at ``offsets`` (ascending) of one shard, reading those rows only."""
        path = self.paths[shard]
        self.reads.append((shard, len(offsets)))
        try:
            with pd.HDFStore(path, mode="r") as store:
                frame = store.select(SHARD_KEY, where=pd.Index(offsets), columns=["text"])
        except FileNotFoundError:
            raise DataError(
                f"{path}: shard is missing; the session's prepared data was moved or deleted"
            ) from None
        except Exception as exc:
            raise DataError(
                f"{path}: shard cannot be read ({one_line(exc)}); the file is truncated or damaged"
            ) from None
        return [str(t) for t in frame["text"].tolist()]


# ---------------------------------------------------------------- export


def write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[object]], *, protect: Iterable[Path] = ()
) -> int:
    """Write rows as CSV atomically (never over a file under ``protect``); returns the rows written."""
    target = path.expanduser().resolve()
    for guarded in protect:
        g = guarded.expanduser().resolve()
        if target == g or g in target.parents:
            raise OutputError(f"{target}: is the run's data; choose a path outside {g}")
    if target.is_dir():
        raise OutputError(f"{target}: is a folder; give a file name such as {target / 'label-noise.csv'}")
    if not target.parent.is_dir():
        raise OutputError(f"{target.parent}: no such folder; create it or choose another path")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    try:
        atomic_write_text(target, out.getvalue(), mode=0o644)
    except OSError as exc:
        from engine.errors import os_error_text

        raise OutputError(os_error_text(exc, "export again")) from None
    return count
