"""The prediction screen, driven through Pilot on a prediction session's journal: what a person sees."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.pilot import Pilot
from textual.widgets import RichLog

from engine import protocol
from engine.journal import Journal
from engine.session import SessionPaths, write_state
from tests.tui.screen_text import screen_text
from tui.app import FtcApp
from tui.screens.monitor import MonitorScreen
from tui.screens.predict import PredictApp, PredictScreen
from tui.screens.sessions import SessionsScreen


def _session(root: Path) -> SessionPaths:
    paths = SessionPaths(root / "20260101-000000-predict-beef")
    paths.create()
    paths.config.write_text('[job]\nkind = "predict"\n')
    write_state(paths, status="finished", job="predict", step=0, created=time.time())
    journal = Journal(paths.events, paths.id)
    journal.append(protocol.JobStarted(job="predict", step=0))
    last = [
        {"row": 4999, "label": "pos", "score": 0.91, "flag": "", "text": "lovely train ride"},
        {"row": 5000, "label": "", "score": None, "flag": "empty_text", "text": ""},
    ]
    detail = {
        "label_counts": {"pos": 3000, "neg": 1500, "mid": 499},
        "flag_counts": {"empty_text": 1},
        "estimated_total": 20000,
        "padding": 0.08,
        "tokens_per_s": 52000.0,
        "last_rows": last,
    }
    journal.append(
        protocol.ProgressReported(stage="predict", done=5000, rate=1234.0, eta_s=12.0, detail=detail)
    )
    journal.append(protocol.LogRecorded(level="warning", text="resuming with encoding latin-1"))
    journal.close()
    return paths


class _App(App[None]):
    def __init__(self, root: Path, session: str) -> None:
        super().__init__()
        self._args = (root, session)

    def on_mount(self) -> None:
        self.push_screen(PredictScreen(*self._args))


async def test_predict_screen_shows_progress_labels_and_last_rows(tmp_path: Path) -> None:
    paths = _session(tmp_path)
    app = _App(tmp_path, paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, PredictScreen)
        deadline = time.monotonic() + 10
        while screen.feed.seen_seq < 3 or screen.feed.status == "?":
            assert time.monotonic() < deadline, "the journal was not replayed"
            await pilot.pause(0.05)
        await pilot.pause()
        text = screen_text(app)
        assert "5,000/~20,000 rows" in text
        assert "1,234 rows/s" in text and "flagged 1" in text
        lines = text.splitlines()
        # Most frequent label first, with its share of the predictions.
        pos = next(i for i, ln in enumerate(lines) if "pos" in ln and "60.0%" in ln)
        neg = next(i for i, ln in enumerate(lines) if "neg" in ln and "30.0%" in ln)
        assert pos < neg
        assert "4,999" in text and "lovely" in text and "0.910" in text
        assert "[empty_text]" in text
        assert "resuming with encoding latin-1" in text
        assert "finished" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PredictScreen)


def _train_session(root: Path) -> SessionPaths:
    paths = SessionPaths(root / "20250101-000000-train-cafe")
    paths.create()
    paths.config.write_text('[job]\nkind = "train"\n')
    write_state(paths, status="finished", job="train", step=3, total_steps=3, created=time.time())
    journal = Journal(paths.events, paths.id)
    journal.append(protocol.JobStarted(job="train", step=0, total_steps=3))
    journal.close()
    return paths


async def _until(
    pilot: Pilot[None], predicate: Callable[[], object], what: str, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def test_enter_on_a_prediction_session_opens_the_prediction_screen(tmp_path: Path) -> None:
    predict = _session(tmp_path)
    train = _train_session(tmp_path)
    app = FtcApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: len(getattr(app.screen, "sessions", [])) == 2, "2 sessions listed")
        await pilot.pause(0.1)
        assert isinstance(app.screen, SessionsScreen) and app.screen.selected_id() == predict.id
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, PredictScreen), "the prediction screen")
        screen = app.screen
        assert isinstance(screen, PredictScreen) and screen.session_id == predict.id
        await _until(pilot, lambda: screen.feed.seen_seq >= 3, "the journal replayed")
        await pilot.pause()
        assert "5,000/~20,000 rows" in screen_text(app)
        await pilot.press("escape")
        await _until(pilot, lambda: isinstance(app.screen, SessionsScreen), "back on the sessions screen")
        await pilot.press("down")
        await pilot.pause(0.1)
        assert app.screen.selected_id() == train.id
        await pilot.press("enter")  # a training session still opens its monitor
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), "the monitor")


async def test_attach_to_a_prediction_session_opens_the_prediction_screen(tmp_path: Path) -> None:
    paths = _session(tmp_path)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, PredictScreen), "the prediction screen")
        await pilot.press("escape")  # back to the sessions list, as from the monitor
        await _until(pilot, lambda: isinstance(app.screen, SessionsScreen), "the sessions screen")


async def test_escape_in_ftc_predicts_own_screen_quits_rather_than_blanking(tmp_path: Path) -> None:
    paths = _session(tmp_path)
    app = PredictApp(tmp_path, paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, PredictScreen) and len(app.screen_stack) == 1
        await pilot.press("escape")
        await pilot.pause()
        assert app.return_code == 0, "escape should quit the prediction app"


async def test_a_flood_of_progress_reports_ends_on_the_newest_and_keeps_every_log_line(
    tmp_path: Path,
) -> None:
    paths = SessionPaths(tmp_path / "20260101-000000-predict-f00d")
    paths.create()
    paths.config.write_text('[job]\nkind = "predict"\n')
    write_state(paths, status="finished", job="predict", step=0, created=time.time())
    journal = Journal(paths.events, paths.id)
    for i in range(1, 401):
        journal.append(protocol.ProgressReported(stage="predict", done=i * 100, total=40_000, rate=float(i)))
        if i % 100 == 0:
            journal.append(protocol.LogRecorded(text=f"chunk {i // 100} written"))
    journal.close()
    app = _App(tmp_path, paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, PredictScreen)
        await _until(pilot, lambda: screen.feed.seen_seq == 404, "the whole journal")
        await pilot.pause()
        assert screen.progress is not None and screen.progress.done == 40_000, "the newest report is shown"
        assert "40,000/40,000 rows" in screen_text(app)
        logged = [line.text for line in screen.query_one("#predict-log", RichLog).lines]
        # Reports may be skipped when they come faster than the screen draws; log lines never are.
        chunks = [line.split("info: ", 1)[1].strip() for line in logged if "written" in line]
        assert chunks == [f"chunk {n} written" for n in range(1, 5)]


def test_a_progress_report_gives_way_to_a_newer_one_but_a_batch_of_events_never_does() -> None:
    from tui.messages import EventsReceived, LatestEventReceived, StatusRefreshed

    def report(done: int) -> protocol.Envelope:
        return protocol.Envelope(
            type="progress_reported",
            session="s",
            seq=done,
            body=protocol.ProgressReported(stage="predict", done=done),
        )

    assert LatestEventReceived(report(1)).can_replace(LatestEventReceived(report(2)))
    assert not LatestEventReceived(report(1)).can_replace(EventsReceived([report(2)]))
    assert not EventsReceived([report(1)]).can_replace(EventsReceived([report(2)]))
    assert StatusRefreshed("running").can_replace(StatusRefreshed("paused"))
