"""The console driven with Pilot at 80x24: sessions screen, help, controls, monitor, reattach."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from engine.journal import read_all
from engine.launcher import create_session, start_engine
from engine.session import pid_alive, read_state
from tests.conftest import selftest_config, wait_for
from tests.tui.screen_text import screen_text
from tui.app import FtcApp
from tui.messages import EventsReceived
from tui.screens.help import HelpScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.sessions import SessionsScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.curves import LossPanel
from tui.widgets.tables import CheckpointTable

SIZE = (80, 24)


async def _until(pilot, predicate, timeout: float = 15.0, what: str = "condition") -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _sessions_of_every_kind(root: Path) -> dict[str, object]:
    # Neutral names: the session id must not already contain the status word the test looks for.
    running = create_session(root, selftest_config(), name="alpha")
    start_engine(running)
    finished = create_session(root, selftest_config(steps=3, step_s=0.0), name="bravo")
    start_engine(finished)
    failed = create_session(root, selftest_config(fail_at=2, step_s=0.0), name="charlie")
    start_engine(failed)
    crashed = create_session(root, selftest_config(), name="delta")
    start_engine(crashed)
    os.kill(read_state(crashed)["pid"], signal.SIGKILL)
    for paths, status in ((finished, "finished"), (failed, "failed")):
        wait_for(lambda p=paths, s=status: read_state(p).get("status") == s, what=status)
    wait_for(lambda: not pid_alive(read_state(crashed)["pid"]), what="crashed engine gone")
    return {"running": running, "finished": finished, "failed": failed, "crashed": crashed}


async def test_sessions_screen_shows_every_status_and_the_keys(sessions_root: Path) -> None:
    made = _sessions_of_every_kind(sessions_root)
    app = FtcApp(sessions_root)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: len(app.screen.sessions) == 4, what="4 sessions listed")
        await pilot.pause(0.2)
        text = screen_text(app)
        for name, paths in made.items():
            lines = [ln for ln in text.splitlines() if paths.id in ln]
            assert len(lines) == 1, f"{paths.id} not shown once in:\n{text}"
            status_cell = lines[0].split(paths.id, 1)[1].split()[0]
            assert status_cell == name, f"{paths.id}: status {status_cell!r}, expected {name!r}"
        for key in ("q Quit", "p Pause", "r Resume", "? more"):
            assert key in text, f"footer lacks {key}"


async def test_help_opens_and_closes(sessions_root: Path) -> None:
    app = FtcApp(sessions_root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert "No sessions yet" in screen_text(app)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        assert "Sessions screen" in screen_text(app) and "select a session" in screen_text(app)
        await pilot.press("end")  # the help scrolls with the keyboard alone
        await pilot.pause(0.2)
        assert "Press escape, q or ? to close." in screen_text(app)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert isinstance(app.screen, SessionsScreen)


async def test_keys_pause_and_unpause_the_selected_session(start_selftest, sessions_root: Path) -> None:
    paths = start_selftest()
    app = FtcApp(sessions_root)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: len(app.screen.sessions) == 1, what="session listed")
        await pilot.press("p")
        await _until(pilot, lambda: read_state(paths)["status"] == "paused", what="paused")
        await _until(pilot, lambda: "paused" in screen_text(app), what="paused shown")
        await pilot.press("u")
        await _until(pilot, lambda: read_state(paths)["status"] == "running", what="running again")


async def test_monitor_replays_history_then_follows_live(start_selftest, sessions_root: Path) -> None:
    paths = start_selftest(steps=100000, step_s=0.02)
    wait_for(lambda: read_state(paths).get("step", 0) >= 40, what="history before attaching")
    app = FtcApp(sessions_root)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: len(app.screen.sessions) == 1, what="session listed")
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
        monitor = app.screen
        assert isinstance(monitor, MonitorScreen)
        loss = monitor.loss_panel
        await _until(pilot, lambda: loss.steps and loss.steps[0] == 1, what="replayed history")
        replayed = len(loss.steps)
        assert replayed >= 40
        await _until(pilot, lambda: len(loss.steps) > replayed + 10, what="live steps")
        assert loss.steps == list(range(1, len(loss.steps) + 1)), "no gap, no duplicate"
        assert len(monitor.lr_panel.rates) == len(loss.steps)
        await pilot.pause(0.6)  # one plot refresh
        text = screen_text(app)
        assert "running" in text and "loss" in text and "learning rate" in text
        # The header shows a live step (drawn at the last refresh; on a busy machine a few steps behind).
        shown = re.search(r"step (\d+)", text)
        assert shown is not None and replayed + 10 <= int(shown.group(1)) <= loss.steps[-1], text
        await pilot.press("escape")
        assert isinstance(app.screen, SessionsScreen)
    # Quitting the console leaves the engine running.
    assert pid_alive(read_state(paths)["pid"])
    assert read_state(paths)["status"] == "running"


async def test_attach_after_finish_shows_the_whole_history(sessions_root: Path) -> None:
    paths = create_session(sessions_root, selftest_config(steps=30, step_s=0.0), name="done")
    start_engine(paths)
    wait_for(lambda: read_state(paths).get("status") == "finished", what="finished")
    app = FtcApp(sessions_root, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
        monitor = app.screen
        await _until(
            pilot, lambda: monitor.feed.events_seen == len(read_all(paths.events)), what="all events"
        )
        assert monitor.loss_panel.steps == list(range(1, 31))
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "finished" in text and "engine stopped: finished" in text


async def test_events_that_arrive_after_the_monitor_closed_are_dropped(sessions_root: Path) -> None:
    """The follower thread can post a batch just before escape; it must not reach removed widgets."""
    paths = create_session(sessions_root, selftest_config(steps=5, step_s=0.0), name="late")
    start_engine(paths)
    wait_for(lambda: read_state(paths).get("status") == "finished", what="finished")
    late = [env for env in read_all(paths.events) if env.type == "step_ended"]
    app = FtcApp(sessions_root, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
        monitor = app.screen
        await _until(
            pilot, lambda: monitor.feed.events_seen == len(read_all(paths.events)), what="all events"
        )
        feed = monitor.feed
        await pilot.press("escape")
        await _until(pilot, lambda: isinstance(app.screen, SessionsScreen), what="sessions")
        await _until(pilot, lambda: not monitor.is_attached, what="monitor removed")
        seen = feed.events_seen
        feed.seen_seq = 0  # as if the batch were new
        feed._events_received(EventsReceived(late))
        assert feed.events_seen == seen, "a closed monitor's feed handled events"


async def test_resume_key_restarts_a_crashed_session(start_selftest, sessions_root: Path) -> None:
    paths = start_selftest(steps=100000, checkpoint_every=5)
    wait_for(lambda: read_state(paths).get("step", 0) >= 10, what="steps")
    old_pid = read_state(paths)["pid"]
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old_pid), what="crash")
    app = FtcApp(sessions_root, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: "crashed" in screen_text(app), what="crashed shown")
        await pilot.press("r")
        await _until(pilot, lambda: read_state(paths).get("pid") not in (None, old_pid), what="new engine")
        await _until(pilot, lambda: "running" in screen_text(app), what="running shown")
        monitor = app.screen
        assert isinstance(monitor, MonitorScreen)
        await _until(pilot, lambda: monitor.step > 12, what="live steps after resume")
        steps = monitor.loss_panel.steps
        assert steps == sorted(set(steps)), "steps redone after a checkpoint replace the old ones"


async def test_checkpoint_key_lists_it_and_enter_resumes_from_it(start_selftest, sessions_root: Path) -> None:
    paths = start_selftest(steps=100000)
    app = FtcApp(sessions_root, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
        monitor = app.screen
        await _until(pilot, lambda: monitor.step >= 5, what="steps")
        await pilot.press("c")
        table = monitor.query_one(CheckpointTable)
        await _until(pilot, lambda: len(table.entries) == 1, what="checkpoint listed")
        saved_at = table.entries[0][0].step
        await pilot.press("t", "t")  # events -> evaluation -> checkpoints
        await pilot.pause(0.2)
        assert "on_command" in screen_text(app) and str(saved_at) in screen_text(app)
        await pilot.press("s")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="stop asks first")
        await pilot.press("y")
        await _until(pilot, lambda: read_state(paths).get("status") == "stopped", what="stopped")
        await _until(pilot, lambda: len(table.entries) == 2, what="stop checkpoint listed")
        table.focus()
        table.move_cursor(row=1)  # newest first: row 1 is the on-command checkpoint
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="rewind asks first")
        await pilot.press("enter")
        await _until(pilot, lambda: read_state(paths).get("status") == "running", what="resumed")
        starts = lambda: [e.body.step for e in read_all(paths.events) if e.type == "job_started"]  # noqa: E731
        await _until(pilot, lambda: len(starts()) == 2, what="the resumed job to start")
        assert starts() == [0, saved_at], "the resumed job starts at the chosen checkpoint, not the latest"


async def test_two_consoles_attached_at_once_see_the_same_history(sessions_root: Path) -> None:
    paths = create_session(sessions_root, selftest_config(steps=150, step_s=0.02), name="shared")
    start_engine(paths)
    wait_for(lambda: read_state(paths).get("step", 0) >= 20, what="history before attaching")
    first, second = FtcApp(sessions_root, attach=paths.id), FtcApp(sessions_root, attach=paths.id)
    async with first.run_test(size=SIZE) as p1, second.run_test(size=SIZE) as p2:
        await _until(p1, lambda: isinstance(first.screen, MonitorScreen), what="first monitor")
        await _until(p2, lambda: isinstance(second.screen, MonitorScreen), what="second monitor")
        monitors = [first.screen, second.screen]
        live_at_attach = read_state(paths)["status"]

        def at_end(monitor: MonitorScreen) -> bool:
            panels = monitor.query(LossPanel)  # not there until the screen has composed
            return bool(panels) and panels.first().steps[-1:] == [150]

        for pilot, monitor in ((p1, monitors[0]), (p2, monitors[1])):
            await _until(pilot, lambda m=monitor: at_end(m), timeout=30, what="the last step")
        steps = [list(m.query_one(LossPanel).steps) for m in monitors]
        seen = [m.feed.seen_seq for m in monitors]
    assert live_at_attach == "running", "both consoles attached while the engine was stepping"
    assert steps[0] == steps[1] == list(range(1, 151)), "each console: every step once, in order"
    assert seen[0] == seen[1] > 150
