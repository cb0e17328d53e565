"""Resume repairs what a kill mid-write leaves: rows past the cursor, or a file that no longer opens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine import protocol
from engine.predict.writer import KEY, read_cursor
from tests.predict.conftest import run_job, texts, write_csv


def _logs(events: list[Any]) -> list[str]:
    return [e.text for e in events if isinstance(e, protocol.LogRecorded)]


@pytest.fixture
def setup(tiny_classifier: Path, tmp_path: Path) -> tuple[Path, Path, pd.DataFrame]:
    inp = write_csv(tmp_path / "in.csv", texts(70, seed=4))
    run_job(tiny_classifier, inp, tmp_path / "ref.h5")
    return tiny_classifier, inp, pd.read_hdf(tmp_path / "ref.h5")


def test_rows_past_the_cursor_are_cut_on_resume(
    setup: tuple[Path, Path, pd.DataFrame], tmp_path: Path
) -> None:
    model, inp, expected = setup
    out = tmp_path / "out.h5"
    run_job(model, inp, out, stop_at=40)
    assert read_cursor(out)["rows"] == 40  # type: ignore[index]
    # What a kill after the HDF5 flush but before the cursor moved leaves: rows the cursor does not know.
    with pd.HDFStore(out, mode="a") as store:
        store.append(KEY, expected.iloc[40:55], format="table", index=False)
    events = run_job(model, inp, out, resume=True)
    assert any("resuming out.h5 after 40 rows" in t for t in _logs(events))
    pd.testing.assert_frame_equal(pd.read_hdf(out), expected, check_exact=True)


def test_a_file_that_no_longer_opens_is_set_aside_and_rebuilt(
    setup: tuple[Path, Path, pd.DataFrame], tmp_path: Path
) -> None:
    model, inp, expected = setup
    out = tmp_path / "out.h5"
    run_job(model, inp, out, stop_at=40)
    with open(out, "r+b") as fh:  # a torn write over the file's metadata
        fh.write(b"\0" * 4096)
    events = run_job(model, inp, out, resume=True)
    warnings = [t for t in _logs(events) if "cannot be opened" in t]
    assert warnings and "predicting again from the first row" in warnings[0]
    assert list(tmp_path.glob("out.h5.damaged-*")), "the damaged file is kept for inspection"
    pd.testing.assert_frame_equal(pd.read_hdf(out), expected, check_exact=True)


def test_a_finished_output_resumes_to_nothing(setup: tuple[Path, Path, pd.DataFrame], tmp_path: Path) -> None:
    model, inp, _ = setup
    events = run_job(model, inp, tmp_path / "ref.h5", resume=True)
    assert any("already complete (70 rows)" in t for t in _logs(events))
