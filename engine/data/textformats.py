"""Record-level readers for CSV, TSV and JSONL that know each row's number and byte offset.

We decode line by line ourselves (rather than letting pandas or io decode) so that an
undecodable byte can be reported with its data row and absolute byte offset, and so a
page of the preview can start reading at any byte offset found in a sparse row index.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from engine.data.errors import DataError, EncodingProblem

# A field larger than this is almost certainly a runaway quote; it becomes a reject, not an OOM.
MAX_FIELD = 16 * 1024 * 1024
csv.field_size_limit(MAX_FIELD)

BOM = b"\xef\xbb\xbf"
CR_MASK = "\ue000"  # a private-use character stands in for a CR inside a field while parsing

# (row, byte offset of the row's first byte, fields | dict | reason string when malformed)
Record = tuple[int, int, Any]


class _Feed:
    """Decoded lines of a binary file from an offset; remembers where the next line starts."""

    def __init__(self, fh: BinaryIO, path: str, encoding: str, offset: int) -> None:
        self.fh, self.path, self.encoding = fh, path, encoding
        self.offset = offset
        self.row = 0  # the data row being read, for error messages
        self.eof = False
        self.last_line_ended = True
        self.masked = False  # a lone CR was hidden from the csv module in the current record

    def lines(self) -> Iterator[str]:
        decode, encoding = bytes.decode, self.encoding
        for raw in self.fh:
            try:
                line = decode(raw, encoding)
            except UnicodeDecodeError as exc:
                raise EncodingProblem(
                    self.path, self.row, self.offset + exc.start, raw[exc.start], encoding
                ) from None
            self.offset += len(raw)
            self.last_line_ended = raw.endswith(b"\n")
            # The csv module takes a lone CR (old Mac line breaks inside a tweet) as the end of an
            # unquoted field's line and fails; hide it and put it back in the fields afterwards.
            if "\r" in line and line.find("\r") < len(line.rstrip("\r\n")):
                body = line.rstrip("\r\n")
                line = body.replace("\r", CR_MASK) + line[len(body) :]
                self.masked = True
            yield line
        self.eof = True


def _open_at(path: str, offset: int) -> tuple[BinaryIO, int]:
    fh = open(path, "rb")  # noqa: SIM115 - closed by the generator that owns it
    if offset == 0 and fh.read(3) == BOM:
        offset = 3
    fh.seek(offset)
    return fh, offset


def read_header(path: str, delimiter: str, encoding: str) -> tuple[list[str], int]:
    """The column names and the byte offset where data row 1 starts."""
    fh, offset = _open_at(path, 0)
    with fh:
        feed = _Feed(fh, path, encoding, offset)
        feed.row = 0
        try:
            header = next(csv.reader(feed.lines(), delimiter=delimiter, strict=True))
        except StopIteration:
            raise DataError(f"{path}: file is empty; give a file with a header line and data rows") from None
        except csv.Error as exc:
            raise DataError(
                f"{path}: the header line cannot be parsed ({exc}); check --format and the file"
            ) from None
        return [h.strip() for h in header], feed.offset


def iter_delimited(
    path: str, *, delimiter: str, encoding: str, ncols: int, start_offset: int, start_row: int = 0
) -> Iterator[Record]:
    """Yield (row, offset, fields) from ``start_offset``, which must be the start of row ``start_row + 1``.

    A row with the wrong number of fields, or that the csv module cannot parse, is
    yielded with a reason string instead of fields; a file ending inside a quoted field
    raises DataError (the file is truncated).
    """
    fh, _ = _open_at(path, start_offset)
    with fh:
        feed = _Feed(fh, path, encoding, start_offset)
        lines = feed.lines()
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        row = start_row
        while True:
            start = feed.offset
            feed.row = row + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row += 1
                if feed.eof and "unexpected end of data" in str(exc):
                    raise DataError(
                        f"{path}: row {row} (byte offset {start}) opens a quoted field that never "
                        "closes before the end of the file; the file looks truncated: re-export it or "
                        "fix that row"
                    ) from None
                feed.masked = False
                # A fresh reader continues at the next line; the bad record is reported, not skipped.
                reader = csv.reader(lines, delimiter=delimiter, strict=True)
                yield row, start, f"unparsable row: {exc}"
                continue
            row += 1
            if feed.masked:
                fields = [f.replace(CR_MASK, "\r") for f in fields]
                feed.masked = False
            if len(fields) == ncols:
                yield row, start, fields
            elif not fields:
                yield row, start, "blank line"
            else:
                why = f"wrong field count: expected {ncols}, got {len(fields)}"
                if not feed.last_line_ended:  # only the last line of a file can lack its newline
                    why += " (last line is cut short: truncated file?)"
                yield row, start, why


def jsonl_columns(path: str, encoding: str, probe_rows: int = 1000) -> list[str]:
    """Keys seen in the first objects of a JSONL file, in first-seen order."""
    seen: dict[str, None] = {}
    for _, _, obj in iter_jsonl(path, encoding=encoding, start_offset=0):
        if isinstance(obj, dict):
            seen.update(dict.fromkeys(obj))
        probe_rows -= 1
        if probe_rows <= 0:
            break
    if not seen:
        raise DataError(f"{path}: no JSON object found in the first lines; expected one JSON object per line")
    return list(seen)


def iter_jsonl(path: str, *, encoding: str, start_offset: int, start_row: int = 0) -> Iterator[Record]:
    """Yield (row, offset, object) per line; rows are line numbers, malformed lines get a reason."""
    fh, offset = _open_at(path, start_offset)
    with fh:
        feed = _Feed(fh, path, encoding, offset)
        row = start_row
        feed.row = row + 1
        start = feed.offset
        for line in feed.lines():
            next_start = feed.offset
            row += 1
            feed.row = row + 1
            if not line.strip():
                yield row, start, "blank line"
                start = next_start
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                cut = "" if line.endswith("\n") else " (last line is cut short: truncated file?)"
                yield row, start, f"malformed JSON: {exc.msg} at column {exc.colno}{cut}"
                start = next_start
                continue
            if not isinstance(obj, dict):
                yield row, start, f"malformed JSON: expected an object, got {type(obj).__name__}"
            else:
                yield row, start, obj
            start = next_start
