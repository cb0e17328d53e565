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


def _zero_head(out: Path) -> None:
    with open(out, "r+b") as fh:  # a torn write over the file's superblock
        fh.write(b"\0" * 4096)


def _cut_in_half(out: Path) -> None:
    data = out.read_bytes()  # a copy cut short, or a disk that filled up under it
    out.write_bytes(data[: len(data) // 2])


def _table_gone(out: Path) -> None:
    with pd.HDFStore(out, mode="a") as store:  # an HDF5 file, but its table is gone
        store.remove(KEY)
        store.put("other", pd.DataFrame({"x": [1, 2]}))


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (_zero_head, "is not an HDF5 file"),
        (_cut_in_half, "cannot be opened"),
        (_table_gone, "has no 'predictions' table"),
    ],
)
def test_a_file_that_no_longer_opens_is_set_aside_and_rebuilt(
    setup: tuple[Path, Path, pd.DataFrame], tmp_path: Path, damage: Any, said: str
) -> None:
    model, inp, expected = setup
    out = tmp_path / "out.h5"
    run_job(model, inp, out, stop_at=40)
    damage(out)
    damaged = out.read_bytes()
    events = run_job(model, inp, out, resume=True)
    warnings = [t for t in _logs(events) if said in t]
    assert len(warnings) == 1, _logs(events)
    line = warnings[0]
    assert "moved it aside as out.h5.damaged-" in line and "predicting again from the first row" in line
    assert "\n" not in line and "back trace" not in line and "Error" not in line, line
    kept = list(tmp_path.glob("out.h5.damaged-*"))
    assert len(kept) == 1 and kept[0].name in line, (
        "the damaged file is kept for inspection, named in the log"
    )
    assert kept[0].read_bytes() == damaged, "kept byte for byte"
    pd.testing.assert_frame_equal(pd.read_hdf(out), expected, check_exact=True)


def test_a_finished_output_resumes_to_nothing(setup: tuple[Path, Path, pd.DataFrame], tmp_path: Path) -> None:
    model, inp, _ = setup
    events = run_job(model, inp, tmp_path / "ref.h5", resume=True)
    assert any("already complete (70 rows)" in t for t in _logs(events))
