"""The monitor's plots: integer step ticks, rates as 5e-5, one x range, legends outside the data,
the log-scale and window keys, the differential rates' two lines; checkpoint ages that update."""

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
from tui.format import ago
from tui.screens.monitor import MonitorScreen
from tui.widgets.curves import WINDOW_STEPS, rate_text, step_ticks
from tui.widgets.tables import CheckpointTable

SIZE = (80, 24)
TOTAL = 600
DONE = 450


def _session(root: Path, head: float = 1.0, lowest: float = 1.0) -> SessionPaths:
    paths = SessionPaths(root / "20260101-000000-train-beef")
    paths.create()
    paths.config.write_text('[job]\nkind = "train"\n')
    write_state(paths, status="stopped", job="train", step=DONE, created=time.time())
    journal = Journal(paths.events, paths.id)
    journal.append(protocol.JobStarted(job="train", step=0))
    plan = list(range(0, TOTAL + 1, 20))
    rates = [5e-5 * (1 - s / TOTAL) for s in plan]
    journal.append(
        protocol.SchedulePlanned(
            steps=plan, learning_rates=rates, head_lr_multiplier=head, lowest_lr_multiplier=lowest
        )
    )
    for step in range(1, DONE + 1):
        rate = 5e-5 * (1 - step / TOTAL)
        journal.append(protocol.StepEnded(step=step, total_steps=TOTAL, loss=2.0 / step, learning_rate=rate))
    journal.append(protocol.EvaluationEnded(step=400, metrics={"loss": 0.3}))
    journal.close()
    return paths


async def _drawn(app: FtcApp, pilot) -> MonitorScreen:
    await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
    monitor = app.screen
    assert isinstance(monitor, MonitorScreen)
    await _until(pilot, lambda: monitor.step == DONE and monitor.loss_panel.val_steps, what="replayed")
    await _until(pilot, lambda: not monitor._plots_dirty, what="drawn")
    await pilot.pause(0.1)
    return monitor


def test_rates_read_as_a_config_writes_them_and_step_ticks_are_integers() -> None:
    assert [rate_text(r) for r in (5e-5, 2.5e-4, 1e-3, 0.0, 3.3333e-5)] == [
        "5e-5",
        "2.5e-4",
        "1e-3",
        "0",
        "3.3e-5",
    ]
    for lo, hi in ((0, 7), (0, 600), (250, 450), (0, 123457)):
        ticks = step_ticks(lo, hi)
        assert ticks and all(isinstance(t, int) and lo <= t <= hi for t in ticks), (lo, hi, ticks)
        assert 2 <= len(ticks) <= 8, ticks


async def test_both_panels_share_the_runs_steps_with_integer_ticks_and_rates_as_5e_5(tmp_path: Path) -> None:
    paths = _session(tmp_path)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await _drawn(app, pilot)
        assert monitor.loss_panel.x_range == monitor.lr_panel.x_range == (0, TOTAL), "the run's length"
        text = screen_text(app)
        assert "5e-5" in text and not re.search(r"0\.0000\d", text), text
        tick_rows = [line for line in text.splitlines() if re.fullmatch(r"[\s\d]+", line) and "600" in line]
        assert tick_rows and not re.search(r"\d\.\d", tick_rows[0]), text
        # The legends are in the top borders, above the data, not drawn over it.
        legend = next(line for line in text.splitlines() if "smoothed" in line)
        assert "raw" in legend and "validation" in legend and "learning rate" in legend and "plan" in legend
        canvas = monitor.loss_panel.plt.build()
        assert "smoothed" not in canvas and "raw" not in canvas


async def test_l_toggles_log_scale_and_w_the_last_steps_window(tmp_path: Path) -> None:
    paths = _session(tmp_path)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await _drawn(app, pilot)
        linear = monitor.loss_panel.plt.build()
        await pilot.press("l")
        await _until(pilot, lambda: monitor.loss_panel.log_scale, what="log scale")
        assert "(log)" in screen_text(app)
        assert monitor.loss_panel.plt.build() != linear
        await pilot.press("w")
        await _until(pilot, lambda: monitor.windowed, what="window")
        window = (DONE - WINDOW_STEPS, DONE)
        assert monitor.loss_panel.x_range == monitor.lr_panel.x_range == window
        await pilot.press("l", "w")
        await _until(pilot, lambda: not monitor.windowed and not monitor.loss_panel.log_scale, what="back")
        assert monitor.lr_panel.x_range == (0, TOTAL)


async def test_differential_rates_draw_the_head_and_the_lowest_layer(tmp_path: Path) -> None:
    paths = _session(tmp_path, head=10.0, lowest=0.28)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await _drawn(app, pilot)
        text = screen_text(app)
        assert "head x10" in text and "low x0.28" in text, text
        assert "5e-4" in text, "the head's peak, 10 x 5e-5, is on the rate axis"
        assert len(monitor.lr_panel.lines()) == 4


async def test_checkpoint_ages_update_by_themselves(tmp_path: Path) -> None:
    paths = _session(tmp_path)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        monitor = await _drawn(app, pilot)
        table = monitor.query_one(CheckpointTable)
        saved = time.time() - 5
        table.add(protocol.CheckpointSaved(step=DONE, path=str(paths.root / "ck"), reason="stop"), saved)
        await _until(pilot, lambda: table.row_count == 1, what="the row (drawn once per batch of events)")
        first = table.get_cell("0", table.saved_column)
        await _until(pilot, lambda: table.get_cell("0", table.saved_column) != first, what="a newer age")
        table.update_ages(now=saved + 65)
        assert table.get_cell("0", table.saved_column) == ago(saved, saved + 65) == "1m05s ago"
