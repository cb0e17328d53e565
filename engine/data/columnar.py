"""Chunked and random-access reading of Parquet (row groups) and HDF5 pandas tables (start/stop)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from engine.data.errors import DataError, one_line

PARQUET_MAGIC = b"PAR1"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _check_magic(path: str, magic: bytes, what: str) -> None:
    with open(path, "rb") as fh:
        head = fh.read(len(magic))
    if not head:
        raise DataError(f"{path}: file is empty; give a {what} file with data rows")
    if head != magic:
        raise DataError(
            f"{path}: not a {what} file (it does not start with the {what} signature); check --format"
        )


# ---------------------------------------------------------------- parquet


def parquet_info(path: str) -> tuple[list[str], int]:
    """Column names and row count, from the footer only."""
    _check_magic(path, PARQUET_MAGIC, "Parquet")
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        # The top-level columns: the Parquet schema's own names are its leaves (a struct's fields).
        names, n_rows = list(pf.schema_arrow.names), int(pf.metadata.num_rows)
    except Exception as exc:  # pyarrow raises several types for a damaged footer
        raise DataError(
            f"{path}: Parquet footer cannot be read ({one_line(exc)}); the file looks truncated or damaged: "
            "copy or export it again"
        ) from None
    return names, n_rows


def _unreadable(path: str, what: str, first: int, last: int, exc: Exception) -> DataError:
    """A reader failure (damaged pages, bad string bytes, ...) as one sentence: where and what to do."""
    if isinstance(exc, DataError):
        return exc
    return DataError(
        f"{path}: rows {first}-{last} cannot be read ({type(exc).__name__}: {one_line(exc)}); "
        f"the {what} file looks damaged: re-export it from the original data"
    )


def _column_lists(table: Any, columns: list[str]) -> dict[str, list[Any]]:
    # to_pylist keeps ints as ints and nulls as None (pandas would turn an int label with nulls into floats).
    return {c: table.column(c).to_pylist() for c in columns}


def iter_parquet(
    path: str, columns: list[str], chunk_rows: int
) -> Iterator[tuple[int, dict[str, list[Any]]]]:
    """Yield (first row number, {column: values}) per batch, never the whole file."""
    import pyarrow.parquet as pq

    row, total = 1, chunk_rows
    # The try covers only the reading (next), not the consumer's work between yields.
    try:
        pf = pq.ParquetFile(path)
        total = pf.metadata.num_rows
        batches = pf.iter_batches(batch_size=chunk_rows, columns=columns)
    except Exception as exc:
        raise _unreadable(path, "Parquet", row, total, exc) from None
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            cols = _column_lists(batch, columns)
        except Exception as exc:
            raise _unreadable(path, "Parquet", row, min(row + chunk_rows - 1, total), exc) from None
        yield row, cols
        row += batch.num_rows


def parquet_page(path: str, columns: list[str], start_row: int, n_rows: int) -> dict[str, list[Any]]:
    """Rows [start_row, start_row + n_rows) reading only the row groups that hold them."""
    try:
        return _parquet_page(path, columns, start_row, n_rows)
    except Exception as exc:
        raise _unreadable(path, "Parquet", start_row, start_row + n_rows - 1, exc) from None


def _parquet_page(path: str, columns: list[str], start_row: int, n_rows: int) -> dict[str, list[Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    meta = pf.metadata
    first = 1
    wanted = []
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        if first + n > start_row and first < start_row + n_rows:
            wanted.append((g, first))
        first += n
    if not wanted:
        return {c: [] for c in columns}
    table = pa.concat_tables([pf.read_row_group(g, columns=columns) for g, _ in wanted])
    offset = start_row - wanted[0][1]
    return _column_lists(table.slice(max(0, offset), n_rows), columns)


# ---------------------------------------------------------------- HDF5 (pandas "table" format)


def _store_key(store: pd.HDFStore, path: str, key: str | None) -> str:
    keys = store.keys()
    if key is None:
        if not keys:
            raise DataError(
                f"{path}: HDF5 file holds no pandas table; write it with DataFrame.to_hdf(format='table')"
            )
        return keys[0]
    wanted = key if key.startswith("/") else f"/{key}"
    if wanted not in keys:
        raise DataError(f"{path}: no table {key!r} in this HDF5 file; it has {', '.join(keys) or 'none'}")
    return wanted


def hdf_info(path: str, key: str | None) -> tuple[list[str], int, str]:
    """Column names, row count and the table key, without reading rows."""
    _check_magic(path, HDF5_MAGIC, "HDF5")
    try:
        with pd.HDFStore(path, mode="r") as store:
            k = _store_key(store, path, key)
            storer = store.get_storer(k)
            if not storer.is_table:
                raise DataError(
                    f"{path}: table {k} is in pandas 'fixed' format, which cannot be read in chunks; "
                    "rewrite it with to_hdf(..., format='table')"
                )
            head = store.select(k, start=0, stop=1)
            return [str(c) for c in head.columns], int(storer.nrows), k
    except DataError:
        raise
    except Exception as exc:  # PyTables raises HDF5ExtError and friends for damaged files
        raise DataError(
            f"{path}: HDF5 file cannot be read ({one_line(exc)}); the file looks truncated or damaged: "
            "copy or export it again"
        ) from None


def iter_hdf(
    path: str, key: str, columns: list[str], chunk_rows: int
) -> Iterator[tuple[int, dict[str, list[Any]]]]:
    """Yield (first row number, {column: values}) per block of ``chunk_rows`` rows."""
    start, stop = 0, chunk_rows
    try:
        with pd.HDFStore(path, mode="r") as store:
            nrows = int(store.get_storer(key).nrows)
            for start in range(0, nrows, chunk_rows):
                stop = min(start + chunk_rows, nrows)
                frame = store.select(key, start=start, stop=stop, columns=columns)
                cols = {c: _plain(frame[c]) for c in columns}
                yield start + 1, cols
    except Exception as exc:  # the consumer's errors are not thrown in here, so this is the reader's
        raise _unreadable(path, "HDF5", start + 1, stop, exc) from None


def hdf_page(path: str, key: str, columns: list[str], start_row: int, n_rows: int) -> dict[str, list[Any]]:
    try:
        with pd.HDFStore(path, mode="r") as store:
            frame = store.select(key, start=start_row - 1, stop=start_row - 1 + n_rows, columns=columns)
            return {c: _plain(frame[c]) for c in columns}
    except Exception as exc:
        raise _unreadable(path, "HDF5", start_row, start_row + n_rows - 1, exc) from None


def _plain(series: pd.Series) -> list[Any]:
    """Python values with None for missing, and integral floats as ints (a NaN-holed int column)."""
    out: list[Any] = []
    for v in series.tolist():
        if v is None or (isinstance(v, float) and v != v):
            out.append(None)
        elif isinstance(v, float) and v.is_integer():
            out.append(int(v))
        else:
            out.append(v)
    return out
