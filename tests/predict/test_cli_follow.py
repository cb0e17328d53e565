"""What ``ftc predict`` prints and returns while following its engine: plain lines, the exit code."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest

from engine import protocol
from engine.journal import Journal
from engine.predict.progress import rows_line
from engine.session import LIVE_STATUSES, SessionPaths, live_status, read_state, write_state
from tests.conftest import wait_for
from tests.predict.conftest import fake_model, texts, write_csv
from tui.cli import main as ftc
from tui.commands.follow import follow_plain as follow


def _rows(first: int, n: int) -> list[protocol.RowWritten]:
    rows = [
        protocol.RowWritten(
            row=r, label="pos", score=0.9123, flag="", text=f"row {r} lovely\ntrain ride " * 5
        )
        for r in range(first, first + n)
    ]
    rows[0] = protocol.RowWritten(row=first, label="", score=None, flag="empty_text", text="")
    return rows


def _finished_session(root: Path) -> SessionPaths:
    paths = SessionPaths(root / "20260101-000000-predict-beef")
    paths.create()
    write_state(paths, status="finished", job="predict", step=200, created=time.time())
    journal = Journal(paths.events, paths.id)
    journal.append(protocol.JobStarted(job="predict", step=0))
    detail = protocol.ProgressDetail(label_counts={"pos": 80, "neg": 20}, estimated_total=200)
    # A report inside a chunk (no rows yet), one per chunk with its last rows, and the final one
    # that repeats the last chunk's rows.
    journal.append(protocol.ProgressReported(stage="predict", done=50, rate=25.0, eta_s=6.0, detail=detail))
    for done, last in ((100, _rows(96, 5)), (200, _rows(196, 5)), (200, _rows(196, 5))):
        body = detail.model_copy(update={"last_rows": last})
        journal.append(protocol.ProgressReported(stage="predict", done=done, rate=25.0, detail=body))
    journal.append(protocol.EngineStopped(status="finished"))
    journal.close()
    return paths


def test_plain_output_shows_each_chunks_last_rows_once(tmp_path: Path) -> None:
    paths = _finished_session(tmp_path)
    out = io.StringIO()
    assert follow(paths, out=out) == 0
    lines = out.getvalue().splitlines()
    progress = [ln for ln in lines if "predict: " in ln and "rows" in ln and "last rows" not in ln]
    assert len(progress) == 4 and "pos 80%" in progress[0]
    shown = [ln for ln in lines if "last rows: " in ln]
    assert len(shown) == 2, "one line per chunk, not one per report"
    assert "#100 pos 0.91" in shown[0] and "#200 pos 0.91" in shown[1]
    assert "#97" not in shown[0] and "#98 pos" in shown[0], "a few rows, not all of them"
    assert all(len(ln) < 200 and "\n" not in ln for ln in shown)


def test_attach_without_a_terminal_prints_what_predict_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ftc attach`` to a prediction session in a pipe: the same progress and last-rows lines."""
    paths = _finished_session(tmp_path)
    paths.config.write_text('[job]\nkind = "predict"\n')  # what makes a folder a session for ftc attach
    expected = io.StringIO()
    assert follow(paths, out=expected) == 0
    capsys.readouterr()
    assert ftc(["--sessions-dir", str(tmp_path), "attach", paths.id]) == 0
    printed = capsys.readouterr().out
    assert printed == expected.getvalue()
    assert sum("last rows: " in ln for ln in printed.splitlines()) == 2


def test_rows_line_shows_flags_and_cuts_texts() -> None:
    text = rows_line(_rows(1, 3), n=3)
    assert text.startswith("last rows: #1 [empty_text] | #2 pos 0.91 'row 2 lovely train ride row 2 l…' | #3")
    assert "\n" not in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_terminal_path_returns_the_jobs_outcome(
    tmp_path: Path, sessions_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a TTY the screen shows the job; once it closes, the exit code is the job's, as without a TTY."""
    import tui.screens.predict as screen

    # Passes the checks made before the engine starts (config, weights, tokenizer), fails to load in it.
    model = fake_model(tmp_path / "model")
    inp = write_csv(tmp_path / "in.csv", texts(5))
    ended: list[str] = []

    def watch_until_the_end(root: Path, session: str) -> None:
        paths = SessionPaths(root / session)
        wait_for(lambda: live_status(read_state(paths)) not in LIVE_STATUSES, timeout=90, what="engine end")
        ended.append(read_state(paths)["status"])

    monkeypatch.setattr(screen, "run_predict_app", watch_until_the_end)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    monkeypatch.setattr(sys, "stdout", _Terminal())
    args = ["predict", "--model", str(model), "--input", str(inp), "--output", str(tmp_path / "o.h5")]
    assert ftc(args) == 1
    assert ended == ["failed"]
    assert "prediction failed: " in capsys.readouterr().err
