"""A disk that fills up under a prediction: a clear record, nothing lost, and a resume after freeing space
that ends with the same file as an uninterrupted run.

The output lies on a small tmpfs mounted by the test (root only; skipped with the reason
otherwise); a filler file leaves room for about half the output.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine import protocol
from engine.journal import read_all
from engine.predict import writer as writer_module
from engine.predict.writer import DiskFull, read_cursor, read_metadata
from engine.session import SessionPaths, list_sessions, pid_alive, read_state
from tests.conftest import wait_for
from tests.predict.conftest import run_job, texts, write_csv
from tui.cli import main as ftc

CHUNK = 50
ROWS = 1000
FILLER = "filler.bin"


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``folder``, unmounted afterwards whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill the disk with a file so that about ``leave`` bytes stay free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler = disk / FILLER
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
        fh.flush()
        os.fsync(fh.fileno())
    return filler


@pytest.fixture(scope="module")
def job(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The model, an input and the output of one uninterrupted run (on an ordinary disk)."""
    folder = tmp_path_factory.mktemp("full")
    inp = write_csv(folder / "in.csv", [*texts(ROWS - 1, seed=5), None])
    ref = folder / "ref.h5"
    run_job(tiny_classifier, inp, ref, chunk_rows=CHUNK)
    return tiny_classifier, inp, ref


def _room_for_half(ref: Path) -> int:
    """Free bytes that let about half the output be written before the writer stops."""
    chunk = pd.read_hdf(ref, stop=CHUNK)
    raw = sum(
        int(c.nbytes) if c.dtype != object else len(c) * 32 for c in (chunk[k].to_numpy() for k in chunk)
    )
    return writer_module.RESERVE_BYTES + 2 * raw + ref.stat().st_size // 2


def _logs(events: list[Any]) -> list[str]:
    return [e.text for e in events if isinstance(e, protocol.LogRecorded)]


def _assert_same_output(out: Path, ref: Path) -> None:
    pd.testing.assert_frame_equal(pd.read_hdf(out), pd.read_hdf(ref), check_exact=True)
    assert read_metadata(out) == read_metadata(ref), "a resumed run records what one run records"


def test_a_full_disk_stops_cleanly_and_resume_finishes_the_same_file(
    job: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, inp, ref = job
    with small_disk(tmp_path / "disk") as disk:
        out = disk / "out.h5"
        filler = fill(disk, _room_for_half(ref))
        with pytest.raises(DiskFull) as caught:
            run_job(model, inp, out, chunk_rows=CHUNK)
        exc = caught.value
        assert isinstance(exc, OSError) and exc.errno == errno.ENOSPC and exc.filename == str(out)
        text = str(exc)
        assert text.startswith(f"no space left on device writing {out}; free space, then ftc predict"), text
        assert "--resume" in text and str(inp) in text and "\n" not in text
        written = read_cursor(out)["rows"]  # type: ignore[index]
        assert 0 < written < ROWS, f"the disk should have filled mid-run, not after {written} rows"
        filler.unlink()
        events = run_job(model, inp, out, chunk_rows=CHUNK, resume=True)
        assert any(f"resuming out.h5 after {written:,} rows" in t for t in _logs(events)), _logs(events)
        assert not list(disk.glob("out.h5.damaged-*")), "nothing was damaged: the writer stopped before"
        _assert_same_output(out, ref)


def test_a_write_the_disk_drops_is_caught_and_resume_repairs_it(
    job: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the space check, HDF5 meets the full disk itself (and reports nothing): the read-back
    catches it, the cursor stays behind, and a resume repairs whatever the torn append left."""
    model, inp, ref = job
    monkeypatch.setattr(writer_module.PredictionWriter, "_check_space", lambda self, frame: None)
    with small_disk(tmp_path / "disk") as disk:
        out = disk / "out.h5"
        filler = fill(disk, ref.stat().st_size)  # room for about the whole table, not its B-tree and cursor
        with pytest.raises(DiskFull) as caught:
            run_job(model, inp, out, chunk_rows=CHUNK)
        assert caught.value.errno == errno.ENOSPC
        assert str(caught.value).startswith("no space left on device writing ")
        assert 0 < read_cursor(out)["rows"] < ROWS  # type: ignore[index]
        filler.unlink()
        run_job(model, inp, out, chunk_rows=CHUNK, resume=True)
        _assert_same_output(out, ref)


def test_the_engine_records_a_full_disk_and_a_resume_finishes(
    job: tuple[Path, Path, Path], sessions_root: Path, tmp_path: Path
) -> None:
    """Through ``ftc predict``: the engine's last record says what filled up and how to continue."""
    model, inp, ref = job
    with small_disk(tmp_path / "disk") as disk:
        out = disk / "out.h5"
        filler = fill(disk, _room_for_half(ref))
        args = ["predict", "--model", str(model), "--input", str(inp), "--output", str(out)]
        args += ["--chunk-rows", str(CHUNK), "--detach"]
        assert ftc(args) == 0
        paths = SessionPaths(Path(list_sessions(sessions_root)[0].path))
        pid = int(wait_for(lambda: read_state(paths).get("pid"), what="engine pid"))
        wait_for(lambda: not pid_alive(pid), timeout=120, what="engine to stop on the full disk")
        state = read_state(paths)
        assert state["status"] == "failed", state
        failed = [e.body for e in read_all(paths.events) if isinstance(e.body, protocol.JobFailed)]
        assert len(failed) == 1
        record = failed[0].error_text
        # The engine's own final record (engine/server.py) for a full disk, from the OSError's errno and path.
        assert record == f"no space left on device writing {out}; free space, then ftc resume {paths.id}", (
            record
        )
        assert record in state["message"]
        written = read_cursor(out)["rows"]  # type: ignore[index]
        assert 0 < written < ROWS
        filler.unlink()
        assert ftc(["resume", paths.id, "--detach"]) == 0
        wait_for(lambda: read_state(paths).get("pid") not in (None, pid), what="the resumed engine's pid")
        pid = int(read_state(paths)["pid"])
        wait_for(lambda: not pid_alive(pid), timeout=120, what="the resumed engine to finish")
        assert read_state(paths)["status"] == "finished", paths.log.read_text()[-2000:]
        logs = [e.body.text for e in read_all(paths.events) if isinstance(e.body, protocol.LogRecorded)]
        assert any(f"resuming out.h5 after {written:,} rows" in t for t in logs), logs
        _assert_same_output(out, ref)
