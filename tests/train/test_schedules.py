"""Learning-rate schedules: warmup, linear and cosine decay, exponential decay, constant, the plan."""

from __future__ import annotations

import itertools
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


def test_cyclic_starts_at_the_peak_falls_to_lo_at_mid_cycle_and_rises_back() -> None:
    # Warmup ends at the peak; a cycle starts there (falling first): Smith's triangle shifted by half a cycle.
    s = Schedule("cyclic", peak=1.0, total_steps=1000, warmup_steps=4, min_lr_ratio=0.1, cycle_steps=10)
    lo, amp = 0.1, 0.9
    assert s.lr_at(3) == pytest.approx(1.0)  # warmup's last step
    assert s.lr_at(4) == pytest.approx(1.0)  # cycle 0 starts at the peak
    assert s.lr_at(6) == pytest.approx(lo + amp * (1 - 2 / 5))  # mid-fall
    assert s.lr_at(9) == pytest.approx(lo)  # trough at mid-cycle
    assert s.lr_at(12) == pytest.approx(lo + amp * 3 / 5)  # mid-rise
    assert s.lr_at(14) == pytest.approx(1.0)  # the next cycle's peak
    assert s.lr_at(4 + 10 * 37 + 5) == pytest.approx(lo)  # every cycle alike
    assert min(s.lr_at(i) for i in range(4, 400)) == pytest.approx(lo)
    assert max(s.lr_at(i) for i in range(4, 400)) == pytest.approx(1.0)


def test_triangular2_halves_the_amplitude_each_cycle_without_a_jump() -> None:
    s = Schedule(
        "cyclic", peak=2.0, total_steps=1000, min_lr_ratio=0.25, cycle_steps=8, cycle_mode="triangular2"
    )
    lo, amp = 0.5, 1.5
    assert s.lr_at(0) == pytest.approx(lo + amp)
    assert s.lr_at(4) == pytest.approx(lo)
    assert s.lr_at(6) == pytest.approx(lo + amp / 2 * 2 / 4)  # rising towards cycle 1's halved peak
    assert s.lr_at(8) == pytest.approx(lo + amp / 2)  # 2nd cycle: half the amplitude
    assert s.lr_at(10) == pytest.approx(lo + amp / 2 * 2 / 4)
    assert s.lr_at(12) == pytest.approx(lo)
    assert s.lr_at(16) == pytest.approx(lo + amp / 4)
    steps = [s.lr_at(i) for i in range(40)]
    assert max(abs(a - b) for a, b in itertools.pairwise(steps)) <= amp / 4 + 1e-12  # no jump


def test_cosine_restarts_with_fixed_and_growing_cycles() -> None:
    s = Schedule(
        "cosine_restarts", peak=1.0, total_steps=100, warmup_steps=2, min_lr_ratio=0.2, cycle_steps=10
    )
    lo = 0.2
    assert s.lr_at(2) == pytest.approx(1.0)
    assert s.lr_at(7) == pytest.approx(lo + 0.8 * 0.5)  # mid-cycle
    assert s.lr_at(11) == pytest.approx(lo + 0.8 * 0.5 * (1 + math.cos(math.pi * 9 / 10)))  # the trough
    assert s.lr_at(12) == pytest.approx(1.0)  # restart
    assert s.lr_at(17) == pytest.approx(lo + 0.8 * 0.5)
    g = Schedule("cosine_restarts", peak=1.0, total_steps=100, cycle_steps=5, cycle_mult=2)
    assert [g.cycle_of(a) for a in (0, 4, 5, 14, 15, 34, 35)] == [
        (0, 5),
        (0, 5),
        (5, 10),
        (5, 10),
        (15, 20),
        (15, 20),
        (35, 40),
    ]
    assert g.lr_at(5) == pytest.approx(1.0) and g.lr_at(15) == pytest.approx(1.0)
    assert g.lr_at(10) == pytest.approx(0.5)  # the 2nd cycle is 10 long: its middle is at 5 + 5
    assert g.lr_at(14) == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 10)))
    # A non-integer multiplier: lengths round(5 * 1.5**i) = 5, 8 (7.5), 11 (11.25), 17 (16.875).
    h = Schedule("cosine_restarts", peak=1.0, total_steps=60, cycle_steps=5, cycle_mult=1.5)
    assert h.cycle_starts(60) == [0, 5, 13, 24, 41]


def test_cyclic_schedules_come_from_config_and_refuse_a_missing_cycle() -> None:
    t = TrainSection.model_validate(
        {"schedule": "cyclic", "cycle_steps": 6, "cycle_mode": "triangular2", "min_lr_ratio": 0.1}
    )
    s = from_config(t, 100)
    assert (s.kind, s.cycle_steps, s.cycle_mode) == ("cyclic", 6, "triangular2")
    r = from_config(
        TrainSection.model_validate({"schedule": "cosine_restarts", "cycle_steps": 4, "cycle_mult": 3}), 9
    )
    assert (r.cycle_steps, r.cycle_mult) == (4, 3.0)
    with pytest.raises(ValueError, match="cycle_steps"):
        Schedule("cyclic", peak=1.0, total_steps=10)


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule("cyclic", peak=1.0, total_steps=10_000, warmup_steps=30, min_lr_ratio=0.1, cycle_steps=200),
        Schedule("cyclic", peak=1.0, total_steps=1_001, cycle_steps=7, cycle_mode="triangular2"),
        Schedule("cosine_restarts", peak=1.0, total_steps=20_000, cycle_steps=50, cycle_mult=1.3),
    ],
    ids=["50 cycles", "odd cycles", "growing cycles"],
)
def test_the_plan_holds_every_cycles_peak_and_trough(schedule: Schedule) -> None:
    # With 200 evenly spaced points, 50 cycles of 200 steps alias to a flat line; the plan adds the turns.
    total = schedule.total_steps
    plan = dict(schedule.plan(total, 200))
    assert len(plan) <= 2000 and 0 in plan and total - 1 in plan
    starts = schedule.cycle_starts(total)
    assert len(starts) > 4
    for start in starts:
        _, length = schedule.cycle_of(start - schedule.warmup_steps)
        assert plan[start] == pytest.approx(schedule.lr_at(start))  # the peak
        cycle = range(start, min(total, start + length))
        trough = min(cycle, key=schedule.lr_at)
        assert trough in plan
    assert max(plan.values()) == pytest.approx(1.0)


def test_a_plan_of_thousands_of_cycles_is_capped_and_thinned_evenly() -> None:
    s = Schedule("cyclic", peak=1.0, total_steps=1_000_000, min_lr_ratio=0.1, cycle_steps=20)
    plan = s.plan(None, 200)
    assert 1000 < len(plan) <= 2000
    steps = dict(plan)
    # The cycles drawn whole: peak (a multiple of 20, LR 1.0) and trough (10 steps on, LR 0.1).
    kept = [p for p in steps if p % 20 == 0 and p + 10 in steps]
    assert all(steps[p] == pytest.approx(1.0) and steps[p + 10] == pytest.approx(0.1) for p in kept)
    assert len(kept) > 500
    gaps = {b - a for a, b in itertools.pairwise(kept)}
    assert max(gaps) - min(gaps) <= 20  # every k-th cycle: spread evenly over the run
    assert kept[0] == 0 and kept[-1] == 999_980
    assert s.plan(None, 200, max_points=250) == sorted(s.plan(None, 200, max_points=250))
    assert len(s.plan(None, 200, max_points=250)) <= 250


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
