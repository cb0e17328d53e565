"""The fine-tuning recipe's options together survive kill -9 and resume: cyclic LR, differential rates,
dropout and label smoothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.journal import read_all
from engine.launcher import create_session, start_engine
from engine.session import live_status, read_state
from engine.train import checkpoints as ck
from engine.train.config import parse_config
from engine.train.loop import Trainer
from tests.conftest import wait_for
from tests.train.conftest import make_ctx, train_config

# Shards of 50, 50 and 28 rows in batches of 16: 4 + 4 + 2 = 10 steps an epoch, 20 in all. Cycles of
# 6 steps start at 0, 6, 12 and 18; checkpoints every 4 steps. The engine dies writing ckpt-8 and
# resumes from ckpt-4, mid-cycle, so the resumed stretch crosses three restarts.
RECIPE = {
    "batch_size": 16,
    "epochs": 2,
    "schedule": "cyclic",
    "cycle_steps": 6,
    "cycle_mode": "triangular2",
    "min_lr_ratio": 0.1,
    "warmup_steps": 0,
    "head_lr_multiplier": 10.0,
    "layer_lr_decay": 0.8,
    "dropout": 0.2,
    "attention_dropout": 0.15,
    "classifier_dropout": 0.3,
    "label_smoothing": 0.1,
    "checkpoint_every_steps": 4,
}
TOTAL = 20


def test_kill_9_mid_cycle_with_differential_rates_then_resume_matches_an_uninterrupted_run(
    tiny_tf: Path, tiny_data: Path, sessions_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = train_config(tiny_tf, tiny_data, **RECIPE)
    # The uninterrupted run, in this process.
    ctx, rec = make_ctx(tmp_path / "reference", config=cfg)
    assert Trainer(parse_config(cfg), tiny_data, ctx).run()["steps"] == TOTAL
    want_lr = {e.step: e.learning_rate for e in rec.of("StepEnded")}
    want_loss = {e.step: e.loss for e in rec.of("StepEnded")}
    planned = rec.of("SchedulePlanned")[0]
    assert planned.head_lr_multiplier == 10.0 and planned.lowest_lr_multiplier == pytest.approx(0.8**2)
    reference = ck.load_arrays(tmp_path / "reference" / "checkpoints" / f"ckpt-{TOTAL}", "weights.npz")

    # The engine, SIGKILLed half-way through writing ckpt-8, then resumed.
    monkeypatch.setenv("FTC_FAULT", "checkpoint_write@8")
    paths = create_session(sessions_root, cfg, name="recipe")
    start_engine(paths)
    pid = read_state(paths)["pid"]
    wait_for(lambda: live_status(read_state(paths)) == "crashed", 240, "the engine to die writing ckpt-8")
    assert ck.step_of(ck.latest_complete(paths.checkpoints)) == 4
    monkeypatch.delenv("FTC_FAULT")
    start_engine(paths, resume=True)
    wait_for(lambda: live_status(read_state(paths)) in ("finished", "failed", "crashed"), 240, "the end")
    assert read_state(paths)["status"] == "finished", paths.log.read_text()[-3000:]
    assert read_state(paths)["pid"] != pid

    events = list(read_all(paths.events))
    assert [e.body.step for e in events if e.type == "job_started"] == [0, 4]
    steps = {e.body.step: e.body for e in events if e.type == "step_ended"}  # the resumed run's last word
    assert sorted(steps) == list(range(1, TOTAL + 1))
    for step in steps:
        assert steps[step].learning_rate == pytest.approx(want_lr[step], rel=1e-9), f"step {step}"
        assert steps[step].loss == pytest.approx(want_loss[step], abs=1e-5), f"step {step}"
    got = ck.load_arrays(paths.checkpoints / f"ckpt-{TOTAL}", "weights.npz")
    for a, b in zip(got, reference, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
