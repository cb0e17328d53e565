"""Row validation (malformed rows, empty texts, missing labels), label normalisation and the rejects file."""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data.readers import Chunk

# Spellings of "no value" that pandas and spreadsheet exports produce for a missing label.
MISSING_LABELS = frozenset({"", "nan", "na", "n/a", "null", "<na>"})
PREVIEW_CHARS = 80


def norm_label(value: Any) -> str | None:
    """A label as a stripped string, or None when missing. 1.0 and 1 are the same label."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    return None if text.casefold() in MISSING_LABELS else text


def _preview(text: Any) -> str:
    return ("" if text is None else str(text)).replace("\n", " ").replace("\r", " ")[:PREVIEW_CHARS]


class RejectsWriter:
    """Streams rejected rows to a CSV (row, reason, preview) and counts them by reason."""

    def __init__(self, path: str | os.PathLike[str] | None, *, append: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.by_reason: Counter[str] = Counter()
        self.first_rows: dict[str, list[int]] = {}  # a few row numbers per reason, for offending rows
        self._fh = None
        self._writer: Any = None
        if self.path is not None:
            # The folder must exist: a missing one is the caller's to refuse, never created silently.
            mode = "a" if append else "w"
            self._fh = open(self.path, mode, newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._writer = csv.writer(self._fh)
            if not append:
                self._writer.writerow(["row", "reason", "preview"])

    @property
    def count(self) -> int:
        return sum(self.by_reason.values())

    def add(self, row: int, kind: str, detail: str, preview: Any) -> None:
        self.by_reason[kind] += 1
        kept = self.first_rows.setdefault(kind, [])
        if len(kept) < 100:
            kept.append(row)
        if self._writer is not None:
            self._writer.writerow([row, f"{kind}: {detail}" if detail else kind, _preview(preview)])

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path.name if self.path else None,
            "count": self.count,
            "by_reason": dict(sorted(self.by_reason.items())),
        }

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ValidRows:
    """The usable rows of a chunk, in file order."""

    rows: list[int]
    text: list[str]
    label: list[str]


def validate(chunk: Chunk, rejects: RejectsWriter) -> ValidRows:
    """Keep rows with a non-blank text and a label; every other row goes to the rejects file."""
    for row, reason, preview in chunk.malformed:
        rejects.add(row, "malformed", reason, preview)
    rows: list[int] = []
    texts: list[str] = []
    labels: list[str] = []
    for row, text, label in zip(chunk.rows, chunk.text, chunk.label, strict=True):
        if text is not None and not isinstance(text, str):
            text = str(text)
        if text is None or not text.strip():
            rejects.add(row, "empty_text", "", label)
            continue
        if "\x00" in text:
            # Binary data or a damaged file; HDF5 shards would also cut the text at the NUL.
            rejects.add(
                row, "nul_byte", "the text holds a NUL byte (binary data?)", text.replace("\x00", "\\0")
            )
            continue
        name = norm_label(label)
        if name is None:
            rejects.add(row, "missing_label", "", text)
            continue
        rows.append(row)
        texts.append(text)
        labels.append(name)
    return ValidRows(rows, texts, labels)
