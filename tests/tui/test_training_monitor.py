"""The monitor on a real (tiny) training session: loss and learning-rate panels move with live events."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.launcher import create_session, start_engine
from engine.session import read_state
from tests.conftest import wait_for
from tests.support.tiny import make_tiny_model, write_dataset
from tests.tui.screen_text import screen_text
from tui.app import FtcApp
from tui.screens.monitor import MonitorScreen
from tui.widgets.tables import CheckpointTable, EvaluationTable


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
            "epochs": 4,
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
        assert plan.plan_steps and plan.plan_steps[-1] >= 290, "the planned schedule covers the whole run"
        assert max(plan.plan_rates) == pytest.approx(2e-3, rel=1e-3)
        warm = plan.rates[: min(5, len(plan.rates))]
        assert warm == sorted(warm) and warm[0] < warm[-1], "warmup: the learning rate rises first"
        await until(lambda: monitor.query_one(EvaluationTable).last, "an evaluation")
        await until(lambda: monitor.query_one(CheckpointTable).entries, "a checkpoint")
        assert monitor.loss_panel.val_losses, "validation loss is drawn with the training loss"
        await pilot.pause(0.6)
        text = screen_text(app)
        assert "loss" in text and "learning rate" in text and "tok/s" in text and "ETA" in text
    # Quitting the console neither stops nor kills the run.
    wait_for(lambda: read_state(paths)["status"] in ("running", "finished"), what="engine still going")
