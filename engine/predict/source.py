"""The input of a prediction job: open a file (no label column needed) and read it in resumable chunks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.data import columnar, readers
from engine.data.encoding import sample
from engine.data.errors import DataError

# Flags of rows that get no prediction; the row is still written so row counts line up with the input.
FLAG_MISSING = "missing_text"
FLAG_EMPTY = "empty_text"
FLAG_MALFORMED = "malformed_row"
FLAG_WIDTH = 16


@dataclass
class InputChunk:
    """Consecutive input records: their data row numbers, texts (None where flagged) and flags."""

    rows: list[int]
    texts: list[str | None]
    flags: list[str]
    # Where the last record starts (text formats), so a resume can reopen the file right there.
    last_offset: int | None = None
    bytes_done: int = 0


@dataclass
class Position:
    """Where reading stopped: the last data row consumed and, for text formats, its byte offset."""

    row: int = 0
    offset: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "offset": self.offset}


def open_input(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    encoding: str | None = None,
    text_col: str | None = None,
    hdf_key: str | None = None,
) -> readers.Source:
    """Like ``readers.open_source`` but only a text column is needed (files to label have no labels)."""
    src = readers.probe(
        path, fmt=fmt, encoding=encoding, hdf_key=hdf_key, arg="--input", check_encoding=_check_sample_decodes
    )
    src.text_col = src.label_col = pick_text_column(src.path, src.columns, text_col)
    return src


def _check_sample_decodes(path: str, encoding: str) -> None:
    """Catch a wrong encoding before the engine starts (a bad byte later in the file still fails the job)."""
    data = sample(path)
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: byte 0x{data[exc.start]:02x} in the sampled start/middle/end is not valid {encoding}; "
            "rerun with --encoding latin-1 (or --encoding auto to detect it)"
        ) from None


def pick_text_column(path: str, columns: list[str], text_col: str | None) -> str:
    if text_col is not None:
        if text_col not in columns:
            raise DataError(
                f"{path}: no text column {text_col!r}; the columns are {', '.join(columns)} (use --text-col)"
            )
        return text_col
    lower = {c.lower(): c for c in columns}
    named = next((lower[n] for n in readers.TEXT_NAMES if n in lower), None)
    if named is not None:
        return named
    if len(columns) == 1:
        return columns[0]
    raise DataError(
        f"{path}: cannot tell which column holds the text ({', '.join(columns)}); pass --text-col"
    )


def input_fingerprint(src: readers.Source) -> dict[str, Any]:
    """What a resume checks to be sure it continues the same input file."""
    st = os.stat(src.path)
    return {
        "path": os.path.abspath(src.path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "format": src.format,
        "text_col": src.text_col,
    }


def flag_of(value: Any) -> tuple[str | None, str]:
    """The text to predict on (None if none) and the row's flag."""
    if value is None or (isinstance(value, float) and value != value):
        return None, FLAG_MISSING
    text = value if isinstance(value, str) else str(value)
    if not text.strip():
        return None, FLAG_EMPTY
    return text, ""


def iter_input(
    src: readers.Source, chunk_rows: int, start: Position | None = None, last_row: int | None = None
) -> Iterator[InputChunk]:
    """Chunks of exactly ``chunk_rows`` records (the last may be shorter), starting after ``start``
    and ending at data row ``last_row`` (a shard's last; None: the end of the file).

    Every record counts, malformed ones included, so chunk boundaries after a resume fall
    where they fell in an uninterrupted run and the batches (and float results) are the same.
    """
    start = start or Position()
    if last_row is not None and start.row >= last_row:
        return
    if src.format in ("csv", "tsv", "jsonl"):
        yield from _iter_text(src, chunk_rows, start, last_row)
    else:
        yield from _iter_columnar(src, chunk_rows, start.row, last_row)


def count_records(src: readers.Source, every: int) -> tuple[int, dict[int, int]]:
    """(data rows, {row: byte offset of that record}) for every ``every``-th row of a text file.

    One pass over the records (malformed ones count, as in ``iter_input``), so a shard can
    open the file right at the record before its first row instead of parsing its way there.
    Parquet and HDF5 know their row count and seek by row: nothing is read for them.
    """
    if src.n_rows is not None:
        return src.n_rows, {}
    offsets: dict[int, int] = {}
    rows = 0
    for row, offset, _values in readers.iter_records(src):
        rows = row
        if row % every == 0:
            offsets[row] = offset
    return rows, offsets


def _iter_text(
    src: readers.Source, chunk_rows: int, start: Position, last_row: int | None = None
) -> Iterator[InputChunk]:
    if start.row and start.offset is not None:
        # Reopen at the last consumed record and skip it: its start offset is known, the next one's is not.
        records = readers.iter_records(src, start.offset, start.row - 1)
        first = next(records, None)
        if first is None or first[0] != start.row:
            raise DataError(
                f"{src.path}: row {start.row} is no longer at byte offset {start.offset}; "
                "the input changed since the output was started: start again with --overwrite"
            )
    else:
        records = readers.iter_records(src)
    ti = src.columns.index(src.text_col)
    tc = src.text_col
    chunk = InputChunk([], [], [])
    for row, offset, values in records:
        if isinstance(values, str):
            text, flag = None, FLAG_MALFORMED
        elif isinstance(values, dict):
            text, flag = flag_of(values.get(tc))
        else:
            text, flag = flag_of(values[ti])
        chunk.rows.append(row)
        chunk.texts.append(text)
        chunk.flags.append(flag)
        chunk.last_offset = offset
        if row == last_row:  # a shard's end: the records after it are another shard's
            chunk.bytes_done = offset
            yield chunk
            return
        if len(chunk.rows) >= chunk_rows:
            chunk.bytes_done = offset
            yield chunk
            chunk = InputChunk([], [], [])
    if chunk.rows:
        chunk.bytes_done = src.size
        yield chunk


def _iter_columnar(
    src: readers.Source, chunk_rows: int, done: int, last_row: int | None = None
) -> Iterator[InputChunk]:
    tc = src.text_col
    if src.format == "hdf5":
        total = src.n_rows or 0
        if last_row is not None:
            total = min(total, last_row)
        for first in range(done + 1, total + 1, chunk_rows):
            cols = columnar.hdf_page(
                src.path, src.hdf_key or "", [tc], first, min(chunk_rows, total + 1 - first)
            )
            yield _columnar_chunk(first, cols[tc])
        return
    for first, values in _parquet_values(src.path, tc, chunk_rows, done, last_row):
        yield _columnar_chunk(first, values)


def _parquet_values(
    path: str, column: str, chunk_rows: int, done: int, last_row: int | None = None
) -> Iterator[tuple[int, list[Any]]]:
    """(first row, values) of exactly ``chunk_rows`` rows after row ``done``, the last maybe shorter.

    Row groups wholly before the cursor are never read (the footer's row counts say where
    each starts), so a resume late in a big file does not decode the file's head again.
    """
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    meta = pf.metadata
    groups: list[int] = []
    first_of_read: int | None = None
    first = 1
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        if last_row is not None and first > last_row:
            break  # a shard's rows end before this group: it and those after are never read
        if first + n - 1 > done:
            groups.append(g)
            first_of_read = first if first_of_read is None else first_of_read
        first += n
    if first_of_read is None:
        return
    skip = done + 1 - first_of_read  # rows of the first group read that come before the cursor
    row = done + 1
    pending: list[Any] = []
    # Batches may start mid-chunk (at a row group's start): regroup them so chunks begin where an
    # uninterrupted run's begin, which keeps the batches, and the float results, the same.
    for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=groups, columns=[column]):
        values = batch.column(0).to_pylist()
        if skip:
            cut = min(skip, len(values))
            values, skip = values[cut:], skip - cut
        if last_row is not None:
            values = values[: max(0, last_row + 1 - row - len(pending))]
        pending.extend(values)
        while len(pending) >= chunk_rows:
            yield row, pending[:chunk_rows]
            row, pending = row + chunk_rows, pending[chunk_rows:]
        if last_row is not None and row + len(pending) > last_row:
            break
    if pending:
        yield row, pending


def _columnar_chunk(first: int, values: list[Any]) -> InputChunk:
    chunk = InputChunk([], [], [])
    for i, value in enumerate(values):
        text, flag = flag_of(value)
        chunk.rows.append(first + i)
        chunk.texts.append(text)
        chunk.flags.append(flag)
    return chunk
