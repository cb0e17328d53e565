"""Append prediction rows to an HDF5 table (pandas 'table' format) with a durable JSON cursor beside it.

HDF5 is not crash-safe, so the table is only trusted up to the cursor: each chunk is
appended with the file opened for that append only, flushed and fsynced, and only then
is the cursor (rows written, input position, a digest of the chunk) replaced atomically.
A resume cuts rows past the cursor, checks the last chunk against its digest, and treats
a file that no longer opens as damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import OutputError
from engine.fsio import atomic_write_json, fault, fsync, replace
from engine.predict.source import FLAG_WIDTH

KEY = "predictions"
CURSOR_VERSION = 1


class DamagedOutput(OutputError):
    """The HDF5 file no longer opens or disagrees with its cursor (a kill in the middle of a write)."""


def cursor_path(output: Path) -> Path:
    return output.with_name(output.name + ".cursor.json")


def prob_column(label: str) -> str:
    return f"prob_{label}"


def read_cursor(output: Path) -> dict[str, Any] | None:
    path = cursor_path(output)
    try:
        cursor: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise OutputError(f"{path}: cursor is not valid JSON ({exc}); start again with --overwrite") from None
    if cursor.get("version") != CURSOR_VERSION:
        raise OutputError(f"{path}: cursor version {cursor.get('version')!r} is not supported by this ftc")
    return cursor


def check_target(output: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing output (the CLI calls this before starting an engine)."""
    cursor = cursor_path(output)
    if resume and overwrite:
        raise OutputError("--resume and --overwrite contradict each other; give one of them")
    if not output.parent.is_dir():
        raise OutputError(f"{output.parent}: no such folder for the output; create it first")
    if resume:
        if not cursor.exists():
            raise OutputError(
                f"{output}: nothing to resume (no cursor {cursor.name} next to it); run without --resume"
            )
        return
    if (output.exists() or cursor.exists()) and not overwrite:
        hint = " or --resume to continue it" if cursor.exists() else ""
        raise OutputError(f"{output}: already exists; pass --overwrite to replace it{hint}")


def frame_digest(frame: pd.DataFrame) -> str:
    """A hash of a chunk's rows as stored, to check the table's last chunk on resume."""
    digest = hashlib.sha256()
    for col in frame.columns:
        values = frame[col].to_numpy()
        if values.dtype == object:
            digest.update("\x1f".join(map(str, values)).encode())
        else:
            digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()[:32]


class PredictionWriter:
    """The output table and its cursor; ``append`` makes one chunk durable."""

    def __init__(self, output: Path, labels: list[str], cursor: dict[str, Any]) -> None:
        self.output = output
        self.labels = labels
        self.cursor = cursor
        self.label_width = max([len(x) for x in labels] + [1])

    @property
    def rows(self) -> int:
        return int(self.cursor["rows"])

    # ------------------------------------------------------------ start / resume

    @classmethod
    def create(
        cls, output: Path, labels: list[str], meta: dict[str, Any], *, overwrite: bool
    ) -> PredictionWriter:
        check_target(output, resume=False, overwrite=overwrite)
        # The cursor goes first: a file without a cursor is never ours to continue or remove.
        cursor = {
            "version": CURSOR_VERSION,
            "output": output.name,
            "rows": 0,
            "position": {"row": 0, "offset": None},
            "label_counts": {},
            "flag_counts": {},
            "last_chunk": None,
            "done": False,
            "created": time.time(),
            "meta": meta,
        }
        atomic_write_json(cursor_path(output), cursor)
        output.unlink(missing_ok=True)
        return cls(output, labels, cursor)

    @classmethod
    def resume(cls, output: Path, labels: list[str]) -> PredictionWriter:
        """Continue an output at its cursor, cutting rows past it; DamagedOutput if it cannot be trusted."""
        cursor = read_cursor(output)
        if cursor is None:
            raise OutputError(f"{output}: nothing to resume (no cursor next to it); run without --resume")
        writer = cls(output, labels, cursor)
        writer._reconcile()
        return writer

    def _reconcile(self) -> None:
        rows = self.rows
        if rows == 0:
            # Killed before the first chunk was durable: whatever is there is a partial first write.
            self.output.unlink(missing_ok=True)
            return
        try:
            with pd.HDFStore(self.output, mode="a") as store:
                table = store.get_storer(KEY).table
                if table.nrows < rows:
                    raise DamagedOutput(f"{self.output}: holds {table.nrows} rows but its cursor says {rows}")
                if table.nrows > rows:
                    table.truncate(rows)
                last = self.cursor["last_chunk"]
                tail = store.select(KEY, start=last["start"], stop=rows)
                store.flush(fsync=True)
        except DamagedOutput:
            raise
        except Exception as exc:  # PyTables raises many types for a damaged file
            raise DamagedOutput(f"{self.output}: cannot be opened ({type(exc).__name__}: {exc})") from None
        if frame_digest(tail) != last["digest"]:
            raise DamagedOutput(f"{self.output}: its last chunk differs from the one its cursor recorded")

    def set_aside(self) -> Path:
        """Move a damaged output out of the way (kept for inspection) and restart the cursor at row 0."""
        aside = self.output.with_name(f"{self.output.name}.damaged-{int(time.time())}")
        if self.output.exists():
            replace(self.output, aside)
        self.cursor.update(rows=0, position={"row": 0, "offset": None}, label_counts={}, flag_counts={})
        self.cursor["last_chunk"] = None
        atomic_write_json(cursor_path(self.output), self.cursor)
        return aside

    # ------------------------------------------------------------ writing

    def frame(
        self, rows: list[int], probs: np.ndarray, predicted: np.ndarray, flags: list[str]
    ) -> pd.DataFrame:
        """The stored layout of one chunk; flagged rows have label '' and id -1 and NaN scores."""
        ok = np.array([not f for f in flags], dtype=bool)
        label_id = np.where(ok, predicted, -1).astype(np.int32)
        probs = np.where(ok[:, None], probs, np.nan).astype(np.float32)
        score = np.where(ok, probs[np.arange(len(rows)), np.maximum(label_id, 0)], np.nan).astype(np.float32)
        data: dict[str, Any] = {
            "row": np.asarray(rows, dtype=np.int64),
            "label": [self.labels[i] if i >= 0 else "" for i in label_id],
            "label_id": label_id,
            "score": score,
        }
        for j, name in enumerate(self.labels):
            data[prob_column(name)] = probs[:, j]
        data["flag"] = flags
        start = self.rows
        return pd.DataFrame(data, index=pd.RangeIndex(start, start + len(rows)))

    def append(self, frame: pd.DataFrame, position: dict[str, Any]) -> None:
        """Append one chunk, make it durable, then move the cursor past it."""
        start = self.rows
        with warnings.catch_warnings():
            # Label names become column names; odd ones are fine for pandas but PyTables warns.
            warnings.simplefilter("ignore")
            with pd.HDFStore(self.output, mode="a", complevel=1, complib="blosc:lz4") as store:
                store.append(
                    KEY,
                    frame,
                    format="table",
                    index=False,
                    data_columns=["row", "label", "label_id", "score", "flag"],
                    min_itemsize={"label": self.label_width, "flag": FLAG_WIDTH},
                )
                if start == 0:
                    store.get_storer(KEY).attrs.ftc = json.dumps(self.cursor["meta"])
                fault("predict_append")  # rows handed to HDF5, nothing flushed
                store.flush(fsync=True)
        fsync(self.output)
        fault("predict_flushed")  # rows durable, cursor not yet moved
        counts = self.cursor["label_counts"]
        for name, n in frame.loc[frame["flag"] == "", "label"].value_counts().items():
            counts[str(name)] = counts.get(str(name), 0) + int(n)
        flags = self.cursor["flag_counts"]
        for name, n in frame.loc[frame["flag"] != "", "flag"].value_counts().items():
            flags[str(name)] = flags.get(str(name), 0) + int(n)
        self.cursor.update(
            rows=start + len(frame),
            position=position,
            last_chunk={"start": start, "digest": frame_digest(frame)},
            updated=time.time(),
        )
        atomic_write_json(cursor_path(self.output), self.cursor)

    def finish(self, summary: dict[str, Any]) -> None:
        self.cursor.update(done=True, summary=summary, updated=time.time())
        atomic_write_json(cursor_path(self.output), self.cursor)


def read_metadata(output: str | os.PathLike[str]) -> dict[str, Any]:
    """The label map, model identity and input of an output file."""
    with pd.HDFStore(output, mode="r") as store:
        meta: dict[str, Any] = json.loads(store.get_storer(KEY).attrs.ftc)
    return meta
