"""The compare screen, driven by keys: marked sessions' figures, their config diff, a running one live."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Markdown

from tests.tui.compare_sessions import crashed_run, finished_run
from tests.tui.screen_text import screen_text
from tests.tui.test_keymap import _assert_documented_and_offered
from tui.app import FtcApp
from tui.screens.compare import RUN_COLUMNS, CompareScreen
from tui.screens.help import HelpScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.sessions import SessionsScreen
from tui.widgets.compare import OverlayPanel, config_diff, resolved_config


async def _until(pilot, predicate, timeout: float = 15.0, what: str = "condition") -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _row(screen: CompareScreen, session: str) -> dict[str, str]:
    table = screen.query_one("#compare-runs", DataTable)
    cells = table.get_row(session)
    return {name: str(cell) for name, cell in zip(RUN_COLUMNS, cells, strict=True)}


async def test_compare_three_marked_sessions(start_selftest, sessions_root: Path) -> None:
    sessions_root.mkdir(parents=True, exist_ok=True)
    expected = [crashed_run(sessions_root), finished_run(sessions_root)]
    running = start_selftest(name="live", steps=100000, step_s=0.05, eval_every=40, eval_s=0.05)
    app = FtcApp(sessions_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: len(app.screen.sessions) == 3, what="3 sessions listed")
        await pilot.press("m")
        await pilot.pause(0.1)
        assert isinstance(app.screen, SessionsScreen), "nothing marked: no comparison"
        # Listed newest id first: run-b, run-a, then the selftest (ids begin with the date).
        await pilot.press("space", "space", "space")
        await _until(pilot, lambda: screen_text(app).count("● ") == 3, what="three marks shown")
        await pilot.press("m")
        await _until(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare screen")
        screen = app.screen
        assert [run.session for run in screen.runs] == ["run-b", "run-a", running.id]

        def settled() -> bool:
            rows = [_row(screen, e.session) for e in expected]
            return all(
                row["Status"] == e.status and row["Steps"] == e.steps
                for row, e in zip(rows, expected, strict=True)
            )

        await _until(pilot, settled, what="the journals replayed")
        for e in expected:
            row = _row(screen, e.session)
            assert row == {
                "Session": e.session,
                "Status": e.status,
                "Steps": e.steps,
                "Best (metric, value, step)": e.best,
                "Time": e.time,
                "Ex/s": e.throughput,
            }
        # Exactly the keys that differ, defaults filled in (run-a writes out two defaults; the
        # selftest has no [model], its own [selftest], and no data folder).
        assert screen.diff_keys == [
            "data.dir",
            "job.kind",
            "model.source",
            "selftest.eval_every",
            "selftest.eval_s",
            "selftest.step_s",
            "selftest.steps",
            "train.batch_size",
            "train.early_stopping.metric",
            "train.learning_rate",
            "train.max_steps",
        ]
        diff = screen.query_one("#compare-diff", DataTable)
        assert [str(c) for c in diff.get_row("train.learning_rate")] == [
            "train.learning_rate",
            "0.0001",
            "5e-05",
            "5e-05",
        ]
        await pilot.press("tab")  # to the config diff, and back to the runs
        assert app.focused is diff
        await pilot.press("shift+tab")
        assert app.focused is screen.query_one("#compare-runs", DataTable)
        # The running one advances on screen, and its evaluations reach the metric plot.
        await _until(pilot, lambda: _row(screen, running.id)["Status"] == "running", what="running")
        first = int(_row(screen, running.id)["Steps"].split("/")[0])
        await _until(
            pilot,
            lambda: int(_row(screen, running.id)["Steps"].split("/")[0]) > first + 10,
            what="live steps",
        )
        assert _row(screen, running.id)["Steps"] in screen_text(app)
        # m cycles the metric plotted: accuracy is the one the selftest reports.
        metric = screen.query_one("#compare-metric", OverlayPanel)
        assert "macro F1" in str(metric.border_title)
        await pilot.press("m")
        assert "accuracy" in str(metric.border_title)
        await _until(pilot, lambda: len(metric.series[2][0]) >= 1, timeout=20, what="a live evaluation")
        # enter opens the selected run's monitor; escape comes back to the comparison.
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
        assert app.screen.session_id == "run-b"
        await pilot.press("escape")
        await _until(pilot, lambda: app.screen is screen, what="back to the comparison")


async def test_one_marked_compares_with_the_selected_and_one_alone_does_not(sessions_root: Path) -> None:
    sessions_root.mkdir(parents=True)
    crashed_run(sessions_root)
    finished_run(sessions_root)
    app = FtcApp(sessions_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: len(app.screen.sessions) == 2, what="2 sessions listed")
        await pilot.press("space", "up", "m")  # run-b marked, then moved back onto it
        await pilot.pause(0.1)
        assert isinstance(app.screen, SessionsScreen)
        assert "Mark two or more sessions" in list(app._notifications)[-1].message
        await pilot.press("down", "m")  # run-b marked, run-a selected
        await _until(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare screen")
        compare = app.screen
        assert [run.session for run in compare.runs] == ["run-b", "run-a"]
        # Its keys are in the ? help and the palette (from the keymap), as every screen's are.
        await pilot.press("question_mark")
        await _until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        help_text = app.screen.query_one(Markdown).source
        await pilot.press("escape")
        await _until(pilot, lambda: app.screen is compare, what="help closed")
        _assert_documented_and_offered(app, compare, help_text)
        await pilot.press("escape")
        await _until(pilot, lambda: isinstance(app.screen, SessionsScreen), what="sessions")
        await pilot.press("up", "space")  # unmarked again
        await _until(pilot, lambda: "● " not in screen_text(app), what="mark gone")


def test_a_config_that_does_not_validate_compares_as_written(tmp_path: Path) -> None:
    good, bad, broken = tmp_path / "good.toml", tmp_path / "bad.toml", tmp_path / "broken.toml"
    good.write_text('[model]\nsource = "bert-base-uncased"\n[train]\nbatch_size = 32\n')
    bad.write_text('[model]\nsource = "bert-base-uncased"\n[train]\nbatch_size = 0\n')
    broken.write_text("[train\n")
    configs = [resolved_config(path) for path in (good, bad, broken)]
    assert configs[0].problem is None and configs[0].values["train.epochs"] == 3  # a default, filled in
    assert configs[1].problem == f"{bad}: [train] does not validate; shown as written"
    assert configs[1].values["train.batch_size"] == 0 and "train.epochs" not in configs[1].values
    assert configs[2].problem is not None and configs[2].problem.startswith(f"{broken}: not valid TOML")
    rows = dict(config_diff([c.values for c in configs]))
    assert rows["train.batch_size"] == [32, 0, None]
    assert "model.source" in rows and "train.epochs" in rows  # the broken file has neither
