"""Reading prepared data: the manifest and the shuffled HDF5 shards of each split (training's input)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from engine.data.errors import DataError

MANIFEST = "manifest.json"
SHARD_KEY = "rows"
SPLITS = ("train", "validation", "test")


def shard_relpath(split: str, index: int) -> str:
    return f"{split}/shard-{index:05d}.h5"


def load_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a prepared data folder; DataError saying what to run when it is missing or damaged."""
    path = Path(directory) / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{path}: no manifest; prepare the data first (ftc prepare DATA --out {directory})"
        ) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: manifest is not valid JSON ({exc}); prepare the data again") from None
    if manifest.get("version") != 1:
        raise DataError(
            f"{path}: manifest version {manifest.get('version')!r} is not supported; prepare the data again"
        )
    return manifest


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
    frame = pd.read_hdf(Path(directory) / shards[index]["path"], key=SHARD_KEY, columns=columns)
    assert isinstance(frame, pd.DataFrame)
    return frame.reset_index(drop=True)


def iter_split(
    directory: str | os.PathLike[str], split: str, *, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Every shard of a split in order: one shard in memory at a time."""
    manifest = load_manifest(directory)
    for i in range(len(manifest["splits"][split]["shards"])):
        yield read_shard(directory, split, i, columns=columns, manifest=manifest)
