"""The monitor's event log: no resource samples, a filter (/), a line in full (enter), the engine's
log (v), why a run failed before step 1 at the top; and screens drop worker messages once closed."""

from __future__ import annotations

import re
import time
from pathlib import Path

from engine import protocol
from engine.journal import Journal
from engine.session import SessionPaths, write_state
from tests.tui.pilot import until as _until
from tests.tui.screen_text import screen_text
from tui.app import FtcApp
from tui.screens.dataset import DatasetScreen, PageLoaded, SourceOpened
from tui.screens.log import TextScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.sessions import SessionsScreen
from tui.widgets.eventlog import EventLog, FailureNote

SIZE = (80, 24)
LONG = "the label column holds 3 values that are not in labels.txt: " + ", ".join(
    f"label_{i}" for i in range(30)
)


def _session(root: Path, events: list[protocol._Body]) -> SessionPaths:
    paths = SessionPaths(root / "20260101-000000-train-beef")
    paths.create()
    paths.config.write_text('[job]\nkind = "train"\n')
    write_state(paths, status="failed", job="train", step=0, created=time.time())
    journal = Journal(paths.events, paths.id)
    for body in events:
        journal.append(body)
    journal.close()
    return paths


def _history() -> list[protocol._Body]:
    events: list[protocol._Body] = [protocol.JobStarted(job="train", step=0)]
    for step in range(1, 31):
        events.append(protocol.StepEnded(step=step, total_steps=100, loss=1.0 / step))
        events.append(protocol.ResourcesSampled(cpu_percent=99.0, rss=1, cpu_count=2))
    events.append(protocol.LogRecorded(level="warning", text=LONG))
    events.append(protocol.JobFailed(step=30, error_name="DataError", error_text="bad row 7"))
    return events


async def _monitor(app: FtcApp, pilot, paths: SessionPaths) -> MonitorScreen:
    await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
    monitor = app.screen
    assert isinstance(monitor, MonitorScreen)
    log = monitor.query_one(EventLog)
    await _until(pilot, lambda: any("FAILED" in line for line in log.shown()), what="every event replayed")
    return monitor


async def test_the_filter_shows_matching_lines_and_escape_clears_it(tmp_path: Path) -> None:
    paths = _session(tmp_path, _history())
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await _monitor(app, pilot, paths)
        log = monitor.query_one(EventLog)
        everything = log.shown()
        assert not [line for line in everything if "resources_sampled" in line or "99.0" in line]
        assert any("step 10/100" in line for line in everything)
        await pilot.press("slash", *"failed")
        await _until(pilot, lambda: log.filter == "failed", what="filter typed")
        assert log.shown() and all("failed" in line.lower() for line in log.shown())
        assert "step 10/100" not in screen_text(app)
        await pilot.press("escape")
        await _until(pilot, lambda: log.shown() == everything, what="filter cleared")
        assert isinstance(app.screen, MonitorScreen), "escape cleared the filter, it did not go back"
        await pilot.press("escape")
        await _until(pilot, lambda: isinstance(app.screen, SessionsScreen), what="then back")


async def test_enter_shows_a_long_line_in_full(tmp_path: Path) -> None:
    paths = _session(tmp_path, _history())
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await _monitor(app, pilot, paths)
        await pilot.press("slash", *"label_29", "enter")  # the filter, then browse its lines
        log = monitor.query_one(EventLog)
        await _until(pilot, lambda: log.options.has_focus, what="the lines focused")
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, TextScreen), what="the line in full")
        assert LONG in app.screen.text
        shown = " ".join(screen_text(app).split())
        assert "label_28, label_29" in shown, shown
        await pilot.press("escape")
        await _until(pilot, lambda: app.screen is monitor, what="closed")


async def test_v_opens_the_engine_log_at_its_traceback(tmp_path: Path) -> None:
    paths = _session(tmp_path, _history())
    paths.log.write_text(
        "".join(f"engine line {i}\n" for i in range(300)) + "Traceback\nValueError: bad row 7\n"
    )
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        await _monitor(app, pilot, paths)
        await pilot.press("v")
        await _until(pilot, lambda: isinstance(app.screen, TextScreen), what="the engine log")
        await _until(pilot, lambda: "ValueError: bad row 7" in screen_text(app), what="scrolled to its end")
        await pilot.press("home")
        await _until(pilot, lambda: re.search(r"engine line 0\b", screen_text(app)), what="scrolls up")
        await pilot.press("q")
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="closed")


async def test_a_run_that_failed_before_step_1_says_why_in_full_at_the_top(tmp_path: Path) -> None:
    reason = "model folder /data/models/bert has no config.json; " + "give a folder with config.json " * 3
    paths = _session(
        tmp_path,
        [
            protocol.JobStarted(job="train", step=0),
            protocol.JobFailed(step=0, error_name="ModelError", error_text=reason),
        ],
    )
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
        note = app.screen.query_one(FailureNote)
        await _until(pilot, lambda: note.display, what="the reason shown")
        await pilot.pause(0.2)
        top = " ".join(screen_text(app).split("EventsEvaluation")[0].split())
        assert f"failed before step 1: ModelError: {' '.join(reason.split())}" in top, top


async def test_data_screen_messages_after_it_closed_are_dropped(tmp_path: Path) -> None:
    data = tmp_path / "tweets.csv"
    data.write_text("text,label\nhello there,pos\nawful day,neg\n")
    app = FtcApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = DatasetScreen(data)
        await app.push_screen(screen)
        await _until(pilot, lambda: screen.source is not None, what="file opened")
        source = screen.source
        await pilot.press("escape")
        await _until(pilot, lambda: not screen.is_attached, what="screen removed")
        # As if its workers' results arrived now: no NoMatches from removed widgets.
        screen._source_opened(SourceOpened(source))
        screen._page_loaded(PageLoaded(type("Page", (), {"rows": [], "total_rows": 2, "start_row": 1})()))
        assert isinstance(app.screen, SessionsScreen)
