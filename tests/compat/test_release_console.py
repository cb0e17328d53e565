"""The console replays journals ftc 0.1.0 wrote, and a newer minor's: every step, evaluation, checkpoint."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import RichLog

from tests.compat.conftest import PREDICT_FIXTURE, TRAIN_FIXTURE, TRAIN_ID, as_newer_minor
from tests.tui.screen_text import screen_text
from tui.app import FtcApp
from tui.screens.monitor import MonitorScreen
from tui.screens.predict import PredictScreen
from tui.widgets.eventlog import EventLog
from tui.widgets.tables import CheckpointTable, EvaluationView


async def _until(pilot: Pilot[Any], predicate: Callable[[], Any], what: str, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _log_lines(screen: Any, selector: str) -> list[str]:
    if selector == "#event-log":
        return screen.query_one(EventLog).shown()
    return [strip.text for strip in screen.query_one(selector, RichLog).lines]


async def test_monitor_replays_a_0_1_0_training_session(old_session: Path, sessions_root: Path) -> None:
    app = FtcApp(sessions_root, attach=TRAIN_ID)
    async with app.run_test(size=(100, 30)) as pilot:
        monitor = app.screen
        assert isinstance(monitor, MonitorScreen)
        await _until(pilot, lambda: monitor.feed.events_seen == 35, "all 35 events of the journal")
        assert monitor.loss_panel.steps == list(range(1, 13))
        assert monitor.lr_panel.steps == list(range(1, 13))
        assert monitor.lr_panel.plan_steps[-1] == 24, "the planned schedule of the whole run"
        assert len(monitor.loss_panel.val_losses) == 3, "every evaluation's validation loss"
        evaluation = monitor.query_one(EvaluationView).last
        assert evaluation is not None and evaluation.step == 12
        checkpoints = [saved.step for saved, _ in monitor.query_one(CheckpointTable).entries]
        assert sorted(checkpoints) == [4, 8, 12]
        await _until(pilot, lambda: monitor.feed.status == "stopped", "the status")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "stopped" in text and "step 12/24" in text
        assert not [ln for ln in _log_lines(monitor, "#event-log") if "note" in ln]


async def test_monitor_shows_a_newer_minors_journal_and_says_what_it_skips(sessions_root: Path) -> None:
    target = sessions_root / TRAIN_ID
    shutil.copytree(TRAIN_FIXTURE, target)
    as_newer_minor(target, {"evaluation_ended": {"calibration_error": 0.03}})
    app = FtcApp(sessions_root, attach=TRAIN_ID)
    async with app.run_test(size=(100, 30)) as pilot:
        monitor = app.screen
        assert isinstance(monitor, MonitorScreen)
        await _until(pilot, lambda: monitor.feed.events_seen == 35, "every event this ftc knows")
        assert monitor.loss_panel.steps == list(range(1, 13))
        assert len(monitor.loss_panel.val_losses) == 3, "evaluations with an unknown field still count"
        await _until(
            pilot, lambda: len([ln for ln in _log_lines(monitor, "#event-log") if "note" in ln]) == 2, "notes"
        )
        notes = [ln for ln in _log_lines(monitor, "#event-log") if "note" in ln]
        assert any("calibration_error" in n and "evaluation_ended" in n for n in notes)
        assert any("confusion_computed" in n for n in notes)


async def test_prediction_screen_replays_a_0_1_0_prediction(sessions_root: Path) -> None:
    session = "20261130-063510-predict-ac99"
    shutil.copytree(PREDICT_FIXTURE, sessions_root / session)
    app = FtcApp(sessions_root, attach=session)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, PredictScreen)
        await _until(
            pilot, lambda: screen.progress is not None and screen.progress.done == 400, "the last report"
        )
        await _until(pilot, lambda: screen.feed.status == "finished", "the status")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "finished  400/400 rows" in text
        assert "mid ██████████ 100.0%" in text
        assert " 400  mid    0.353" in text, "the last rows written"
        assert "job finished at step 400" in text
