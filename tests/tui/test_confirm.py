"""Destructive keys ask first (one line, y/enter yes, escape/n no); nothing is sent on cancel."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from engine import protocol
from engine.journal import Journal
from engine.session import SessionPaths, write_state
from tests.tui.pilot import until as _until
from tests.tui.screen_text import screen_text
from tui import actions
from tui.app import FtcApp
from tui.screens.monitor import MonitorScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.tables import CheckpointTable

SIZE = (80, 24)


def _session(root: Path, name: str, status: str, checkpoints: int = 0) -> SessionPaths:
    paths = SessionPaths(root / f"20260101-000000-{name}")
    paths.create()
    paths.config.write_text('[job]\nkind = "selftest"\n')
    # "running" with this test's own pid: a live engine as the console sees it, with no engine.
    write_state(paths, status=status, job="selftest", step=3, created=time.time(), pid=os.getpid())
    write_state(paths, hostname=socket.gethostname())
    journal = Journal(paths.events, paths.id)
    journal.append(protocol.JobStarted(job="selftest", step=0))
    for step in range(1, checkpoints + 1):
        folder = paths.root / "checkpoints" / f"step-{step:08d}"
        folder.mkdir(parents=True)
        journal.append(protocol.CheckpointSaved(step=step, path=str(folder), reason="periodic"))
    journal.close()
    return paths


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str | None]]:
    """The control commands the console sends (none reach an engine)."""
    calls: list[tuple[str, str, str | None]] = []

    def control(_root: Path, session: str, command: str, checkpoint: str | None = None) -> tuple[bool, str]:
        calls.append((session, command, checkpoint))
        return True, f"{session}: {command} sent"

    monkeypatch.setattr(actions, "control", control)
    return calls


async def test_stop_on_the_sessions_screen_asks_and_cancel_sends_nothing(tmp_path: Path, sent: list) -> None:
    paths = _session(tmp_path, "alpha", "running")
    app = FtcApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: len(app.screen.sessions) == 1, what="session listed")
        for cancel in ("escape", "n"):
            await pilot.press("s")
            await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            assert f"Stop session {paths.id}? y/enter yes, esc no" in screen_text(app)
            await pilot.press(cancel)
            await _until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="closed")
        await pilot.pause(0.3)
        assert sent == [], "cancelled: nothing sent"
        for n, accept in enumerate(("y", "enter"), start=1):
            await pilot.press("s")
            await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press(accept)
            await _until(pilot, lambda n=n: len(sent) == n, what="stop sent")
        assert sent == [(paths.id, "stop", None)] * 2


async def test_stop_and_rewind_on_the_monitor_ask_first(tmp_path: Path, sent: list) -> None:
    paths = _session(tmp_path, "bravo", "running", checkpoints=2)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
        monitor = app.screen
        assert isinstance(monitor, MonitorScreen)
        await _until(pilot, lambda: monitor.feed.status == "running", what="status read")
        await pilot.press("s")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("escape")
        await _until(pilot, lambda: app.screen is monitor, what="back on the monitor")
        table = monitor.query_one(CheckpointTable)
        await _until(pilot, lambda: len(table.entries) == 2, what="checkpoints listed")
        await pilot.press("t", "t")
        table.focus()
        table.move_cursor(row=1)  # newest first: row 1 is the earlier checkpoint
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert f"Resume {paths.id} from step-00000001 (step 1)?" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert sent == [], "cancelled: nothing sent"
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("y")
        await _until(pilot, lambda: len(sent) == 1, what="resume sent")
        assert sent == [(paths.id, "resume", "step-00000001")]


async def test_delete_moves_a_stopped_session_to_the_trash_and_refuses_a_running_one(tmp_path: Path) -> None:
    running = _session(tmp_path, "charlie", "running")
    stopped = _session(tmp_path, "delta", "stopped")
    app = FtcApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: len(app.screen.sessions) == 2, what="sessions listed")
        screen = app.screen
        table = screen.query_one("#sessions-table")
        # Newest id first: row 0 is delta (stopped), row 1 charlie (running).
        table.move_cursor(row=1)
        await pilot.press("x")
        await _until(pilot, lambda: len(app._notifications) == 1, what="the refusal")
        assert "is running: stop it first" in list(app._notifications)[-1].message
        assert not isinstance(app.screen, ConfirmScreen)
        table.move_cursor(row=0)
        await pilot.press("x")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert stopped.root.is_dir(), "cancelled: nothing moved"
        await pilot.press("x")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("y")
        await _until(pilot, lambda: not stopped.root.exists(), what="moved aside")
        await _until(pilot, lambda: len(screen.sessions) == 1, what="listed no more")
    kept = tmp_path / ".trash" / stopped.id
    assert (kept / "config.toml").is_file() and (kept / "events.jsonl").is_file(), "nothing lost"
    assert running.root.is_dir()


def test_trash_keeps_an_earlier_session_of_the_same_id(tmp_path: Path) -> None:
    first = _session(tmp_path, "echo", "finished")
    ok, text = actions.trash_session(tmp_path, first.id)
    assert ok, text
    again = _session(tmp_path, "echo", "finished")
    ok, text = actions.trash_session(tmp_path, again.id)
    assert ok and text.endswith("(move it back to restore it)"), text
    assert sorted(p.name for p in (tmp_path / ".trash").iterdir()) == [first.id, f"{first.id}.2"]
