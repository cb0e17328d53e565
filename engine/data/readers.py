"""Open a dataset file (CSV, TSV, JSONL, Parquet, HDF5), guess its columns, read it in chunks or by page."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data import columnar, textformats
from engine.data.encoding import resolve, sniff_binary
from engine.data.errors import DataError, EncodingProblem
from engine.fsio import atomic_write_text

FORMATS = ("csv", "tsv", "jsonl", "parquet", "hdf5")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
}
_FORMAT_ALIASES = {"h5": "hdf5", "hdf": "hdf5", "ndjson": "jsonl", "json": "jsonl", "pq": "parquet"}
TEXT_NAMES = ("text", "tweet", "sentence", "content", "review", "body", "message", "comment", "document")
LABEL_NAMES = ("label", "labels", "sentiment", "class", "category", "target", "y", "emotion", "intent")
DEFAULT_CHUNK_ROWS = 50_000
# One byte offset kept per this many rows: ~800 bytes of index per million rows.
INDEX_EVERY = 10_000


@dataclass
class Source:
    """A dataset file as ftc reads it: format, codec, columns and the two columns that matter."""

    path: str
    format: str
    columns: list[str]
    text_col: str
    label_col: str
    encoding: str | None = None
    encoding_note: str = ""  # set only when --encoding auto chose the codec
    data_offset: int = 0
    hdf_key: str | None = None
    n_rows: int | None = None  # known up front for Parquet and HDF5
    size: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "encoding": self.encoding,
            "encoding_note": self.encoding_note,
            "columns": self.columns,
            "text_col": self.text_col,
            "label_col": self.label_col,
        }


@dataclass
class Chunk:
    """A block of rows: the usable fields plus rows that could not be parsed (row, reason, preview)."""

    rows: list[int]
    text: list[Any]
    label: list[Any]
    malformed: list[tuple[int, str, str]] = field(default_factory=list)
    bytes_done: int = 0


def detect_format(path: str, fmt: str | None) -> str:
    if fmt:
        fmt = _FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
        if fmt not in FORMATS:
            raise DataError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    raise DataError(
        f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
        "pass --format csv|tsv|jsonl|parquet|hdf5"
    )


def open_source(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    encoding: str | None = None,
    text_col: str | None = None,
    label_col: str | None = None,
    hdf_key: str | None = None,
) -> Source:
    """Check the file, resolve format and encoding, read the header and pick the columns."""
    src = probe(path, fmt=fmt, encoding=encoding, hdf_key=hdf_key)
    p = src.path
    if len(src.columns) < 2:
        raise DataError(
            f"{p}: found {len(src.columns)} column ({', '.join(src.columns) or 'none'}); need a text and "
            "a label column (is the delimiter right? try --format)"
        )
    src.text_col, src.label_col = pick_columns(src, text_col, label_col)
    check_column_values(src)
    return src


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "struct"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, bytes):
        return "binary"
    return type(value).__name__


def check_column_values(src: Source, sample_rows: int = 200) -> None:
    """Refuse columns whose first rows cannot be what they are used as (wrong Parquet/HDF5 dtypes too).

    The text column must hold words, not numbers or structs; the label column must hold classes,
    not fractional numbers (a score), structs or lists.
    """
    ti, li = src.columns.index(src.text_col), src.columns.index(src.label_col)
    raw: dict[str, list[Any]] = {src.text_col: [], src.label_col: []}
    if src.format in ("parquet", "hdf5"):  # typed values: read them as stored, not as display strings
        raw = _typed_sample(src, sample_rows)
    else:
        records = iter_records(src)
        try:
            for _, _, values in records:
                if isinstance(values, dict):
                    raw[src.text_col].append(values.get(src.text_col))
                    raw[src.label_col].append(values.get(src.label_col))
                elif isinstance(values, list) and len(values) == len(src.columns):
                    raw[src.text_col].append(values[ti])
                    raw[src.label_col].append(values[li])
                if len(raw[src.text_col]) >= sample_rows:
                    break
        except DataError:
            pass  # an undecodable byte or a cut file: the full read reports it with its row
        finally:
            getattr(records, "close", lambda: None)()  # a generator: close its file now
    texts = [v for v in raw[src.text_col] if v is not None and str(v).strip()]
    labels = [v for v in raw[src.label_col] if v is not None and str(v).strip()]
    odd = [v for v in texts if not isinstance(v, str)]
    if texts and len(odd) > len(texts) // 2:
        raise DataError(
            f"{src.path}: text column {src.text_col!r} holds {_kind(odd[0])} values (e.g. {_short(odd[0])}), "
            "not text; name the text column with --text-col"
        )
    if texts and sum(_is_number(v) for v in texts) >= 0.9 * len(texts):
        raise DataError(
            f"{src.path}: text column {src.text_col!r} holds only numbers (e.g. {_short(texts[0])}), "
            "not text; name the text column with --text-col"
        )
    nested = [v for v in labels if isinstance(v, dict | list | tuple | bytes)]
    if nested:
        raise DataError(
            f"{src.path}: label column {src.label_col!r} holds {_kind(nested[0])} values "
            f"(e.g. {_short(nested[0])}), not class names; name the label column with --label-col"
        )
    fractional = [v for v in labels if _is_fraction(v)]
    if labels and len(fractional) > len(labels) // 2:
        raise DataError(
            f"{src.path}: label column {src.label_col!r} holds fractional numbers "
            f"(e.g. {_short(fractional[0])}), a score rather than classes; "
            "name the class column with --label-col"
        )


def _typed_sample(src: Source, n: int) -> dict[str, list[Any]]:
    cols = [src.text_col, src.label_col]
    if src.format == "parquet":
        return columnar.parquet_page(src.path, cols, 1, n)
    return columnar.hdf_page(src.path, src.hdf_key or "", cols, 1, n)


def _is_fraction(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return value == value and not value.is_integer()
    if isinstance(value, str) and _is_number(value):
        number = float(value.strip().replace(",", ""))
        return number == number and not number.is_integer()
    return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def probe(
    path: str | os.PathLike[str],
    *,
    fmt: str | None,
    encoding: str | None,
    hdf_key: str | None,
    arg: str = "",
    check_encoding: Callable[[str, str], None] | None = None,
) -> Source:
    """A Source with format, encoding and columns, but no columns picked: the checks every reader shares.

    ``arg`` names the option the path came from (``--input``) in the messages; ``check_encoding``
    (path, codec) may refuse the chosen codec before the header is read.
    """
    p = str(path)
    as_arg = f" {arg}" if arg else ""
    if not os.path.exists(p):
        raise DataError(f"{p}: no such file; check the{as_arg} path")
    if os.path.isdir(p):
        raise DataError(f"{p}: is a directory; give a data file{' as ' + arg if arg else ''}")
    if not stat.S_ISREG(os.stat(p).st_mode):
        raise DataError(f"{p}: is not a regular file (a pipe, socket or device); give a data file{as_arg}")
    size = os.path.getsize(p)
    if size == 0:
        raise DataError(f"{p}: file is empty (0 bytes); give a file with a header line and data rows")
    kind = detect_format(p, fmt)
    src = Source(path=p, format=kind, columns=[], text_col="", label_col="", size=size)
    if kind in ("csv", "tsv", "jsonl"):
        with open(p, "rb") as fh:
            sniff_binary(p, fh.read(8192))
        choice = resolve(p, encoding)
        src.encoding, src.encoding_note = choice.name, choice.note if choice.detected else ""
        if check_encoding is not None:
            check_encoding(p, choice.name)
        try:
            if kind == "jsonl":
                src.columns = textformats.jsonl_columns(p, choice.name)
            else:
                src.columns, src.data_offset = textformats.read_header(p, _delimiter(kind), choice.name)
        except EncodingProblem as exc:
            raise exc.as_detected() if choice.detected else exc from None
    elif kind == "parquet":
        src.columns, src.n_rows = columnar.parquet_info(p)
    else:
        src.columns, src.n_rows, src.hdf_key = columnar.hdf_info(p, hdf_key)
    return src


def _delimiter(kind: str) -> str:
    return "\t" if kind == "tsv" else ","


def pick_columns(src: Source, text_col: str | None, label_col: str | None) -> tuple[str, str]:
    """The user's choice if given (and present), else a guess by name, then by content."""
    cols = src.columns
    for given, what, flag in ((text_col, "text", "--text-col"), (label_col, "label", "--label-col")):
        if given is not None and given not in cols:
            raise DataError(
                f"{src.path}: no {what} column {given!r}; the columns are {', '.join(cols)} (use {flag})"
            )
    lower = {c.lower(): c for c in cols}
    text = text_col or next((lower[n] for n in TEXT_NAMES if n in lower), None)
    label = label_col or next((lower[n] for n in LABEL_NAMES if n in lower and lower[n] != text), None)
    if text is None or label is None:
        sample = [dict(zip(src.columns, values, strict=False)) for _, values in read_page(src, 1, 200).rows]
        text = text or _longest_text(src, sample, exclude=label)
        label = label or _fewest_values(cols, sample, exclude=text)
    if text == label:
        raise DataError(
            f"{src.path}: text and label are both {text!r}; pick two columns with --text-col/--label-col"
        )
    return text, label


def _is_number(value: Any) -> bool:
    if isinstance(value, bool | int | float):
        return True
    if not isinstance(value, str):
        return False
    try:
        float(value.strip().replace(",", ""))
    except ValueError:
        return False
    return True


def _longest_text(src: Source, sample: list[dict[str, Any]], exclude: str | None) -> str:
    """The column with the longest texts, among those that hold words (not numbers) in the sample."""

    def texts(c: str) -> list[str]:
        return [v for r in sample if isinstance(v := r.get(c), str) and v.strip()]

    def text_like(c: str) -> bool:
        vals = [v for r in sample if (v := r.get(c)) is not None and str(v).strip()]
        words = [v for v in vals if not _is_number(v)]
        return bool(vals) and len(words) / len(vals) >= 0.5

    candidates = [c for c in src.columns if c != exclude and text_like(c)]
    if not candidates:
        raise DataError(
            f"{src.path}: no text column: none of the columns ({', '.join(src.columns)}) holds text "
            "in the first rows (only numbers or blanks); name it with --text-col"
        )

    def mean_len(c: str) -> float:
        vals = texts(c)
        return sum(map(len, vals)) / max(1, len(vals))

    return max(candidates, key=mean_len)


def _fewest_values(cols: list[str], sample: list[dict[str, Any]], exclude: str | None) -> str:
    # A label column repeats a few values; ties go to the leftmost column.
    def distinct(c: str) -> int:
        n = len({str(r.get(c)) for r in sample})
        return n if n > 1 else 10**9

    return min((c for c in cols if c != exclude), key=distinct)


# ---------------------------------------------------------------- chunked reading


def iter_records(
    src: Source, start_offset: int | None = None, start_row: int = 0
) -> Iterator[textformats.Record]:
    """(row, byte offset, fields-or-dict-or-reason) for text formats."""
    assert src.encoding is not None
    offset = src.data_offset if start_offset is None else start_offset
    if src.format == "jsonl":
        records = textformats.iter_jsonl(
            src.path, encoding=src.encoding, start_offset=offset, start_row=start_row
        )
    else:
        records = textformats.iter_delimited(
            src.path,
            delimiter=_delimiter(src.format),
            encoding=src.encoding,
            ncols=len(src.columns),
            start_offset=offset,
            start_row=start_row,
        )
    return records if not src.encoding_note else _detected_codec(records)


def _detected_codec(records: Iterator[textformats.Record]) -> Iterator[textformats.Record]:
    """Reword a later undecodable byte: ``--encoding auto`` chose this codec from a sample only."""
    try:
        yield from records
    except EncodingProblem as exc:
        raise exc.as_detected() from None


def _preview(values: Any) -> str:
    text = values if isinstance(values, str) else json.dumps(values, ensure_ascii=False, default=str)
    return text.replace("\n", " ")[:120]


def iter_chunks(src: Source, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[Chunk]:
    """The text and label of every row, in blocks of ``chunk_rows``; never the whole file."""
    tc, lc = src.text_col, src.label_col
    if src.format in ("parquet", "hdf5"):
        blocks = (
            columnar.iter_parquet(src.path, [tc, lc], chunk_rows)
            if src.format == "parquet"
            else columnar.iter_hdf(src.path, src.hdf_key or "", [tc, lc], chunk_rows)
        )
        for first, cols in blocks:
            n = len(cols[tc])
            yield Chunk(list(range(first, first + n)), cols[tc], cols[lc], bytes_done=0)
        return
    ti, li = src.columns.index(tc), src.columns.index(lc)
    chunk = Chunk([], [], [])
    offset = src.data_offset
    for row, offset, values in iter_records(src):
        if isinstance(values, str):
            chunk.malformed.append((row, values, ""))
        elif isinstance(values, dict):
            chunk.rows.append(row)
            chunk.text.append(values.get(tc))
            chunk.label.append(values.get(lc))
        else:
            chunk.rows.append(row)
            chunk.text.append(values[ti])
            chunk.label.append(values[li])
        if len(chunk.rows) + len(chunk.malformed) >= chunk_rows:
            chunk.bytes_done = offset
            yield chunk
            chunk = Chunk([], [], [])
    chunk.bytes_done = src.size
    if chunk.rows or chunk.malformed:
        yield chunk


# ---------------------------------------------------------------- random access for the preview


@dataclass
class Page:
    """Rows [start_row, start_row + len(rows)) with all columns as display strings."""

    start_row: int
    columns: list[str]
    rows: list[tuple[int, list[str]]]
    total_rows: int | None


@dataclass
class _RowIndex:
    offsets: list[int]  # offsets[k] is where row k * INDEX_EVERY + 1 starts
    total_rows: int | None = None
    # The preview's page and row-count workers may extend the same index at once.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


_INDEXES: dict[tuple[Any, ...], _RowIndex] = {}
_INDEX_LOCK = threading.Lock()


def _index_for(src: Source, index_dir: str | os.PathLike[str] | None) -> tuple[_RowIndex, Callable[[], None]]:
    st = os.stat(src.path)
    key = (os.path.abspath(src.path), st.st_size, st.st_mtime_ns, src.encoding, src.format)
    sidecar = None
    if index_dir is not None:
        name = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
        sidecar = Path(index_dir) / f"rowindex-{name}.json"
    with _INDEX_LOCK:
        idx = _INDEXES.get(key)
        if idx is None and sidecar is not None and sidecar.exists():
            try:
                saved = json.loads(sidecar.read_text())
                idx = _RowIndex(saved["offsets"], saved.get("total_rows"))
            except (ValueError, KeyError):
                idx = None
        if idx is None:
            idx = _RowIndex([src.data_offset])
        _INDEXES[key] = idx

    def save() -> None:
        if sidecar is not None:
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            with idx.lock:
                saved = json.dumps({"offsets": idx.offsets, "total_rows": idx.total_rows})
            atomic_write_text(sidecar, saved)

    return idx, save


def _cells(src: Source, values: Any) -> list[str]:
    if isinstance(values, str):
        return [f"<malformed: {values}>"] + [""] * (len(src.columns) - 1)
    if isinstance(values, dict):
        return ["" if values.get(c) is None else str(values.get(c)) for c in src.columns]
    return [str(v) for v in values]


def read_page(
    src: Source, start_row: int, n_rows: int, *, index_dir: str | os.PathLike[str] | None = None
) -> Page:
    """Rows starting at 1-based data row ``start_row``, reading only what is needed.

    Text formats resume from the nearest byte offset in a sparse row index (built as
    pages are read, optionally saved as a sidecar in ``index_dir``); Parquet reads only
    the row groups involved and HDF5 uses start/stop.
    """
    start_row = max(1, start_row)
    if src.format == "parquet":
        cols = columnar.parquet_page(src.path, src.columns, start_row, n_rows)
        return _columnar_page(src, start_row, cols)
    if src.format == "hdf5":
        cols = columnar.hdf_page(src.path, src.hdf_key or "", src.columns, start_row, n_rows)
        return _columnar_page(src, start_row, cols)
    idx, save = _index_for(src, index_dir)
    k = min((start_row - 1) // INDEX_EVERY, len(idx.offsets) - 1)
    rows: list[tuple[int, list[str]]] = []
    grew = False
    reached_end = True
    last = k * INDEX_EVERY
    for row, offset, values in iter_records(src, idx.offsets[k], k * INDEX_EVERY):
        last = row
        if (row - 1) % INDEX_EVERY == 0:
            with idx.lock:
                if (row - 1) // INDEX_EVERY == len(idx.offsets):
                    idx.offsets.append(offset)
                    grew = True
        if row >= start_row:
            rows.append((row, _cells(src, values)))
            if len(rows) >= n_rows:
                reached_end = False
                break
    if reached_end and idx.total_rows != last:
        idx.total_rows, grew = last, True
    if grew:
        save()
    return Page(start_row, src.columns, rows, idx.total_rows)


def count_rows(src: Source, *, index_dir: str | os.PathLike[str] | None = None) -> int:
    """The number of data rows (completes the row index for text formats, so End is instant after)."""
    if src.n_rows is not None:
        return src.n_rows
    idx, _ = _index_for(src, index_dir)
    while idx.total_rows is None:
        start = (len(idx.offsets) - 1) * INDEX_EVERY + 1
        read_page(src, start + INDEX_EVERY * 50, 1, index_dir=index_dir)
    return idx.total_rows


def _columnar_page(src: Source, start_row: int, cols: dict[str, list[Any]]) -> Page:
    n = len(next(iter(cols.values()), []))
    rows = [
        (start_row + i, ["" if cols[c][i] is None else str(cols[c][i]) for c in src.columns])
        for i in range(n)
    ]
    return Page(start_row, src.columns, rows, src.n_rows)


def read_rows(
    src: Source, rows: list[int], *, index_dir: str | os.PathLike[str] | None = None
) -> list[tuple[int, list[str]]]:
    """Specific rows (e.g. a test's offending rows), reading each 10,000-row block at most once."""
    wanted = sorted(set(rows))
    found: list[tuple[int, list[str]]] = []
    blocks: dict[int, list[int]] = {}
    for r in wanted:
        blocks.setdefault((r - 1) // INDEX_EVERY, []).append(r)
    for group in blocks.values():
        page = read_page(src, group[0], group[-1] - group[0] + 1, index_dir=index_dir)
        keep = set(group)
        found.extend(item for item in page.rows if item[0] in keep)
    return found
