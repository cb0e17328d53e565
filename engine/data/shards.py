"""Reading prepared data: the manifest (its one reader) and the shuffled HDF5 shards of each split."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.data.errors import DataError, one_line

MANIFEST = "manifest.json"
SHARD_KEY = "rows"
SPLITS = ("train", "validation", "test")


def shard_relpath(split: str, index: int) -> str:
    return f"{split}/shard-{index:05d}.h5"


MANIFEST_MAJOR = 1  # the major version this release reads and writes (manifests say ``"version": 1``)


class _Loose(BaseModel):
    # A later minor version may add keys: read what we know, ignore the rest.
    model_config = ConfigDict(extra="ignore")


class ShardEntry(_Loose):
    path: str
    rows: int = Field(ge=0)
    label_counts: dict[str, int] = Field(default_factory=dict)


class SplitEntry(_Loose):
    rows: int = Field(0, ge=0)
    label_counts: dict[str, int] = Field(default_factory=dict)
    shards: list[ShardEntry] = Field(default_factory=list)


class Manifest(_Loose):
    """``manifest.json`` of a prepared data folder, as engine/data/prepare.py writes it."""

    version: int | str
    labels: list[str] = Field(min_length=1)
    splits: dict[str, SplitEntry]
    data_fingerprint: str | None = None

    @property
    def major(self) -> int:
        """The major of ``1`` or ``"1.2"``; a later minor only adds keys, which are ignored."""
        return int(str(self.version).split(".", 1)[0])


def read_manifest(directory: str | os.PathLike[str]) -> tuple[Manifest, dict[str, Any]]:
    """The manifest of a prepared data folder, typed and as written; DataError saying what to run if unusable.

    The raw dict is returned beside the typed model for callers that show or copy the manifest
    whole (reports, fingerprints): it keeps the keys this release does not know.
    """
    path = Path(directory) / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{path}: no manifest; prepare the data first (ftc prepare DATA --out {directory}) "
            "or fix [data] dir"
        ) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: manifest is not valid JSON ({exc}); prepare the data again") from None
    try:
        manifest = Manifest.model_validate(raw)
        major = manifest.major
    except (ValidationError, ValueError) as exc:
        raise DataError(f"{path}: unknown manifest layout ({_first(exc)}); prepare the data again") from None
    if major != MANIFEST_MAJOR:
        raise DataError(
            f"{path}: manifest version {manifest.version!r} is not supported by this ftc, which reads "
            f"version {MANIFEST_MAJOR}; prepare the data again"
        )
    return manifest, raw


def _first(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)


def load_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest as a dict, validated by ``read_manifest`` (for callers that index it by key)."""
    return read_manifest(directory)[1]


def read_shard(
    directory: str | os.PathLike[str],
    split: str,
    index: int,
    *,
    columns: list[str] | None = None,
    manifest: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """One shard as a DataFrame (row int64, text str, label int32), rows in their shuffled order."""
    manifest = manifest or load_manifest(directory)
    shards = manifest["splits"][split]["shards"]
    if not 0 <= index < len(shards):
        raise IndexError(f"split {split!r} has {len(shards)} shards; no shard {index}")
    entry = shards[index]
    return load_shard(Path(directory) / entry["path"], int(entry["rows"]), columns=columns)


SHARD_COLUMNS = ("row", "text", "label")


def load_shard(path: Path, rows: int, *, columns: list[str] | None = None) -> pd.DataFrame:
    """A shard file as a DataFrame; a missing, truncated or damaged one is one DataError: prepare again.

    HDF5's own errors are many lines of back trace; the person needs the file and the fix.
    """
    try:
        frame = pd.read_hdf(path, key=SHARD_KEY, columns=columns)
    except FileNotFoundError:
        raise DataError(f"{path}: shard is missing; prepare the data again (ftc prepare ... --out)") from None
    except Exception as exc:  # PyTables/HDF5 raise many types for a truncated or damaged file
        raise DataError(
            f"{path}: shard cannot be read ({one_line(exc)}); the file is truncated or damaged: "
            "prepare the data again"
        ) from None
    if not isinstance(frame, pd.DataFrame) or len(frame) != rows:
        found = len(frame) if isinstance(frame, pd.DataFrame) else "no"
        raise DataError(f"{path}: has {found} rows, the manifest says {rows}; prepare the data again")
    missing = [c for c in (columns or SHARD_COLUMNS) if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: shard lacks column(s) {', '.join(missing)}; prepare the data again")
    return frame.reset_index(drop=True)


def iter_split(
    directory: str | os.PathLike[str], split: str, *, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Every shard of a split in order: one shard in memory at a time."""
    manifest = load_manifest(directory)
    for i in range(len(manifest["splits"][split]["shards"])):
        yield read_shard(directory, split, i, columns=columns, manifest=manifest)
