"""kill -9 of a prediction engine inside writes and at random moments, then --resume: the same file."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from engine.fsio import FAULT_ENV
from engine.journal import read_all
from engine.predict.run import Hooks, Params, run_prediction
from engine.predict.writer import read_cursor, read_metadata
from engine.session import SessionPaths, list_sessions, pid_alive, read_state
from tests.conftest import wait_for
from tests.predict.conftest import texts, write_csv
from tui.cli import main as ftc

CHUNK = 500


@pytest.fixture(scope="module")
def job(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    """An input, and the output of one uninterrupted run to compare against."""
    folder = tmp_path_factory.mktemp("kill")
    inp = write_csv(folder / "in.csv", [*texts(12_000, seed=9), None])
    ref = folder / "ref.h5"
    hooks = Hooks(emit=lambda _e: None, update_state=lambda **_: None, boundary=lambda _s: None)
    cfg = {"model": str(tiny_classifier), "input": str(inp), "output": str(ref), "chunk_rows": CHUNK}
    run_prediction(Params.from_config(cfg), hooks)
    return tiny_classifier, inp, pd.read_hdf(ref)


def _start(model: Path, inp: Path, out: Path, *, resume: bool) -> SessionPaths:
    args = ["predict", "--model", str(model), "--input", str(inp), "--output", str(out)]
    args += ["--chunk-rows", str(CHUNK), "--detach"] + (["--resume"] if resume else [])
    assert ftc(args) == 0
    return SessionPaths(Path(list_sessions(Path(os.environ["FTC_SESSIONS_DIR"]))[0].path))


def _pid(paths: SessionPaths) -> int:
    return int(wait_for(lambda: read_state(paths).get("pid"), what="engine pid"))


def _wait_dead(pid: int) -> None:
    wait_for(lambda: not pid_alive(pid), timeout=60, what=f"engine {pid} to end")


def _rows(out: Path) -> int:
    try:
        cursor = read_cursor(out)
    except ValueError:
        return 0
    return int(cursor["rows"]) if cursor else 0


def _resumed_cleanly(paths: SessionPaths, out: Path, rows: int) -> None:
    """The resumed engine went on after the cursor's rows: it did not find the file damaged and start over."""
    logs = [e.body.text for e in read_all(paths.events) if e.type == "log_recorded"]
    assert any(f"resuming {out.name} after {rows:,} rows" in t for t in logs), logs
    assert not any("first row" in t for t in logs), logs


def _finish_and_compare(model: Path, inp: Path, out: Path, expected: pd.DataFrame) -> None:
    rows = _rows(out)
    paths = _start(model, inp, out, resume=True)
    _wait_dead(_pid(paths))
    assert read_state(paths)["status"] == "finished", paths.log.read_text()[-2000:]
    _resumed_cleanly(paths, out, rows)
    pd.testing.assert_frame_equal(pd.read_hdf(out), expected, check_exact=True)
    assert read_metadata(out)["labels"] == ["neg", "pos", "mid"]


@pytest.mark.parametrize(
    "points",
    [
        # Killed with rows handed to HDF5 but not flushed (the file has more than the cursor, or a torn tail).
        ["predict_append@3"],
        # Then again mid-write after a resume, then with rows flushed but the cursor not yet moved.
        pytest.param(["predict_append@3", "predict_append@2", "predict_flushed@2"], marks=pytest.mark.slow),
    ],
)
def test_kill_inside_writes_then_resume_gives_the_uninterrupted_file(
    job: tuple[Path, Path, pd.DataFrame],
    sessions_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    points: list[str],
) -> None:
    model, inp, expected = job
    out = tmp_path / "out.h5"
    for n, point in enumerate(points):
        monkeypatch.setenv(FAULT_ENV, point)
        rows = _rows(out)
        paths = _start(model, inp, out, resume=n > 0)
        _wait_dead(_pid(paths))
        assert read_state(paths)["status"] == "running", "the engine must have died without a clean end"
        assert _rows(out) < len(expected), f"kill {n} came too late"
        if n > 0:
            _resumed_cleanly(paths, out, rows)
    monkeypatch.delenv(FAULT_ENV)
    _finish_and_compare(model, inp, out, expected)


def _random_kills(job: tuple[Path, Path, pd.DataFrame], out: Path, kills: int, seed: int) -> None:
    model, inp, expected = job
    rng = random.Random(seed)
    resume = False
    for _ in range(kills):
        paths = _start(model, inp, out, resume=resume)
        pid = _pid(paths)
        before = _rows(out)
        # Once it is writing, anywhere in the next few chunks: between, inside or across writes.
        wait_for(lambda b=before, p=pid: _rows(out) > b or not pid_alive(p), timeout=60, what="rows written")
        time.sleep(rng.uniform(0, 0.4))
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        _wait_dead(pid)
        resume = True
    _finish_and_compare(model, inp, out, expected)


@pytest.mark.slow
def test_random_kill_then_resume_gives_the_uninterrupted_file(
    job: tuple[Path, Path, pd.DataFrame], sessions_root: Path, tmp_path: Path
) -> None:
    _random_kills(job, tmp_path / "out.h5", kills=2, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_many_random_kills_then_resume(
    job: tuple[Path, Path, pd.DataFrame], sessions_root: Path, tmp_path: Path, seed: int
) -> None:
    _random_kills(job, tmp_path / "out.h5", kills=8, seed=100 + seed)
