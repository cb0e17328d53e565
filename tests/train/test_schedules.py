"""Learning-rate schedules: warmup, linear and cosine decay, exponential decay, constant, the plan."""

from __future__ import annotations

import math

import pytest

from engine.train.config import TrainSection
from engine.train.schedules import Schedule, from_config


def test_linear_warmup_then_linear_decay() -> None:
    s = Schedule("linear", peak=1.0, total_steps=110, warmup_steps=10)
    assert s.lr_at(0) == pytest.approx(0.1)
    assert s.lr_at(9) == pytest.approx(1.0)
    assert s.lr_at(10) == pytest.approx(1.0)
    assert s.lr_at(60) == pytest.approx(0.5)
    assert s.lr_at(110) == pytest.approx(0.0)
    assert s.lr_at(500) == pytest.approx(0.0)


def test_cosine_decays_to_the_floor() -> None:
    s = Schedule("cosine", peak=2.0, total_steps=100, min_lr_ratio=0.1)
    assert s.lr_at(0) == pytest.approx(2.0)
    assert s.lr_at(50) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert s.lr_at(100) == pytest.approx(0.2)


def test_exponential_and_constant() -> None:
    e = Schedule("exponential", peak=1.0, total_steps=10_000, warmup_steps=5, decay_rate=0.5, decay_steps=100)
    assert e.lr_at(105) == pytest.approx(0.5)
    assert e.lr_at(205) == pytest.approx(0.25)
    c = Schedule("constant", peak=3e-5, total_steps=10)
    assert {c.lr_at(i) for i in range(10)} == {3e-5}


def test_plan_covers_the_run_with_first_and_last_step() -> None:
    s = Schedule("linear", peak=1.0, total_steps=1000, warmup_steps=100)
    plan = s.plan(n_points=50)
    assert plan[0] == (0, pytest.approx(0.01)) and plan[-1][0] == 999
    assert len(plan) == 50
    assert max(lr for _, lr in plan) == pytest.approx(1.0, abs=0.02)
    assert len(Schedule("constant", 1.0, 3).plan(n_points=100)) == 3


def test_warmup_ratio_from_config() -> None:
    t = TrainSection.model_validate({"schedule": "cosine", "warmup_ratio": 0.1, "learning_rate": 1e-4})
    s = from_config(t, 95)
    assert s.warmup_steps == math.ceil(9.5)
    assert s.lr_at(s.warmup_steps - 1) == pytest.approx(1e-4)


def test_config_schedules_and_job_entry_import_without_tensorflow() -> None:
    # The TUI draws the planned schedule from config.toml; it must not pull TensorFlow in to do it.
    import subprocess
    import sys

    code = (
        "import sys, engine.train.config, engine.train.schedules, engine.train.job; "
        "heavy = [m for m in ('tensorflow', 'transformers', 'tf_keras') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
