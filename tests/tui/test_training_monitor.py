"""The monitor on a real (tiny) training session: live curves, the evaluation table, pausing."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.launcher import create_session, start_engine
from engine.protocol import CheckpointSaved
from engine.session import read_state
from tests.conftest import wait_for
from tests.support.tiny import make_tiny_model, write_dataset
from tests.tui.screen_text import screen_text
from tui.app import FtcApp
from tui.screens.monitor import MonitorScreen
from tui.widgets.tables import CheckpointTable, EvaluationView


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny")
    model = make_tiny_model(root / "model", fmt="tf", seed=0)
    data = write_dataset(root / "data", n_train=600, n_validation=48, n_test=48, shard_rows=200)
    return model, data


async def test_loss_and_learning_rate_panels_follow_a_training_run(tiny, sessions_root: Path) -> None:
    model, data = tiny
    config = {
        "job": {"kind": "train"},
        "model": {"source": str(model)},
        "data": {"dir": str(data)},
        "train": {
            # Long enough to be still running when p is pressed, on a loaded machine where the
            # console sees the first evaluation late (the teardown kills the engine).
            "epochs": 40,
            "batch_size": 8,
            "max_length": 32,
            "learning_rate": 2e-3,
            "warmup_ratio": 0.2,
            "schedule": "cosine",
            "eval_every_steps": 40,
            "checkpoint_every_steps": 40,
            "checkpoint_every_minutes": None,
        },
    }
    paths = create_session(sessions_root, config, name="monitor")
    start_engine(paths)
    app = FtcApp(sessions_root, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = app.screen
        assert isinstance(monitor, MonitorScreen)

        async def until(predicate, what: str, timeout: float = 180) -> None:
            for _ in range(int(timeout / 0.1)):
                if predicate():
                    return
                await pilot.pause(0.1)
            raise AssertionError(f"timed out waiting for {what}")

        await until(lambda: len(monitor.loss_panel.steps) >= 5, "first steps")
        seen = len(monitor.loss_panel.steps)
        await until(lambda: len(monitor.loss_panel.steps) >= seen + 20, "more live steps")
        plan = monitor.lr_panel
        assert len(plan.steps) == len(monitor.loss_panel.steps), "every step reaches both panels"
        assert plan.plan_steps and plan.plan_steps[-1] >= 290, "the planned schedule covers the whole run"
        assert max(plan.plan_rates) == pytest.approx(2e-3, rel=1e-3)
        warm = plan.rates[: min(5, len(plan.rates))]
        assert warm == sorted(warm) and warm[0] < warm[-1], "warmup: the learning rate rises first"
        planned = dict(zip(plan.plan_steps, plan.plan_rates, strict=True))
        common = [
            (rate, planned[step])
            for step, rate in zip(plan.steps, plan.rates, strict=True)
            if step in planned
        ]
        assert common and all(rate == pytest.approx(p) for rate, p in common), "actual LR lies on the plan"
        await until(lambda: monitor.query_one(EvaluationView).last, "an evaluation")
        await until(lambda: monitor.query_one(CheckpointTable).entries, "a checkpoint")
        assert monitor.loss_panel.val_losses, "validation loss is drawn with the training loss"
        # Between an evaluation and a checkpoint the header gives their activity the room tok/s had,
        # so wait for a training stretch instead of reading one frame (a loaded machine lands anywhere).
        await until(lambda: "tok/s" in screen_text(app) and "ETA" in screen_text(app), "tok/s and ETA")
        text = screen_text(app)
        # The legends are in the panels' top borders, outside the data; the curves are drawn below.
        assert all(word in str(monitor.loss_panel.border_title) for word in ("raw", "smoothed", "validation"))
        assert all(word in str(monitor.lr_panel.border_title) for word in ("plan", "actual"))
        assert "smoothed" in text and "actual" in text
        drawn = str(monitor.loss_panel.render())
        assert any(0x2801 <= ord(c) <= 0x28FF for c in drawn), drawn  # the smoothed curve's braille

        await pilot.press("p")
        await until(lambda: monitor.feed.status == "paused", "the session to pause", timeout=60)
        await pilot.pause(0.5)  # events sent before the pause may still be on their way
        held = len(monitor.loss_panel.steps)
        await pilot.pause(1.0)
        assert len(monitor.loss_panel.steps) == held, "no steps while paused"
        assert "paused" in screen_text(app)

        # Every headline metric of the latest evaluation (fixed while paused) is visible at 80 columns.
        await pilot.press("t")
        await pilot.pause(0.3)
        text = screen_text(app)
        evaluation = monitor.query_one(EvaluationView).last
        assert evaluation is not None
        metrics = evaluation.metrics
        rows = text.splitlines()
        for label, name in (("macro F1", "macro_f1"), ("ROC-AUC", "roc_auc"), ("accuracy", "accuracy")):
            row = f"{label} {metrics[name]:.4f}"
            assert any(row in " ".join(line.split()) for line in rows), (row, text)

        await pilot.press("u")
        await until(
            lambda: monitor.feed.status in ("running", "finished"), "the session to go on", timeout=60
        )
    # Quitting the console neither stops nor kills the run.
    wait_for(lambda: read_state(paths)["status"] in ("running", "finished"), what="engine still going")


async def test_checkpoint_list_has_one_row_per_folder(tmp_path: Path) -> None:
    from textual.app import App, ComposeResult

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield CheckpointTable()

    app = Host()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(CheckpointTable)
        table.add(CheckpointSaved(step=3, path=str(tmp_path / "ckpt-3"), reason="periodic"), 1.0)
        table.add(CheckpointSaved(step=6, path=str(tmp_path / "ckpt-6"), reason="best", metric=0.5), 2.0)
        table.add(CheckpointSaved(step=6, path=str(tmp_path / "ckpt-6"), reason="final", metric=0.5), 3.0)
        await pilot.pause()
        text = screen_text(app)
        assert table.row_count == 2 and text.count("ckpt-6") == 1 and "ckpt-3" in text
