"""Parquet input: a resume skips whole row groups before the cursor unread, and ends with the same file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.jobs.base import StopRequested
from engine.predict.run import Hooks, Params, run_prediction
from engine.predict.source import InputChunk, Position, iter_input, open_input
from tests.predict.conftest import texts

GROUP = 30  # rows per row group
CHUNK = 20  # rows per chunk: chunk and row-group boundaries do not line up


def _parquet(path: Path, n: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    items: list[str | None] = list(texts(n, seed=6))
    items[44] = None
    table = pa.table({"id": list(range(n)), "text": items})
    pq.write_table(table, path, row_group_size=GROUP, compression="snappy")
    return path


def _spoil_row_groups(path: Path, groups: range) -> None:
    """Overwrite the text column's pages of some row groups; the footer stays readable."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    col = meta.schema.names.index("text")
    with open(path, "r+b") as fh:
        for g in groups:
            chunk = meta.row_group(g).column(col)
            start = chunk.dictionary_page_offset or chunk.data_page_offset
            fh.seek(start)
            fh.write(b"\xff" * chunk.total_compressed_size)


def _chunks(path: Path, start: int) -> list[InputChunk]:
    return list(iter_input(open_input(path), CHUNK, Position(row=start)))


@pytest.mark.parametrize("done", [60, 40, 100])
def test_a_resume_reads_no_row_group_before_the_cursor(tmp_path: Path, done: int) -> None:
    intact = _parquet(tmp_path / "intact.parquet", 110)
    expected = _chunks(intact, done)
    assert [c.rows[0] for c in expected] == list(range(done + 1, 111, CHUNK))
    assert [len(c.rows) for c in expected][:-1] == [CHUNK] * (len(expected) - 1)
    spoiled = _parquet(tmp_path / "spoiled.parquet", 110)
    _spoil_row_groups(spoiled, range(done // GROUP))  # every group that ends at or before the cursor
    with pytest.raises(Exception):  # noqa: B017  (pyarrow's error type for a bad page varies)
        _chunks(spoiled, 0)
    assert _chunks(spoiled, done) == expected


def _run(model: Path, inp: Path, out: Path, stop_at: int | None = None, **kw: Any) -> None:
    def boundary(rows: int) -> None:
        if stop_at is not None and rows >= stop_at:
            raise StopRequested("test")

    hooks = Hooks(emit=lambda _e: None, update_state=lambda **_: None, boundary=boundary)
    cfg = {"model": str(model), "input": str(inp), "output": str(out), "chunk_rows": CHUNK, **kw}
    try:
        run_prediction(Params.from_config(cfg), hooks)
    except StopRequested:
        pass


def test_a_stopped_and_resumed_parquet_run_equals_one_run(tiny_classifier: Path, tmp_path: Path) -> None:
    inp = _parquet(tmp_path / "in.parquet", 110)
    _run(tiny_classifier, inp, tmp_path / "ref.h5")
    out = tmp_path / "out.h5"
    _run(tiny_classifier, inp, out, stop_at=40)
    assert len(pd.read_hdf(out)) == 40
    _run(tiny_classifier, inp, out, stop_at=80, resume=True)
    assert len(pd.read_hdf(out)) == 80
    _run(tiny_classifier, inp, out, resume=True)
    expected = pd.read_hdf(tmp_path / "ref.h5")
    assert list(expected["row"]) == list(range(1, 111)) and expected.loc[44, "flag"] == "missing_text"
    pd.testing.assert_frame_equal(pd.read_hdf(out), expected, check_exact=True)
