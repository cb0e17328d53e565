"""The learning-rate range test on the tiny model: rising rates, a suggestion, early stop, nothing saved."""

from __future__ import annotations

import hashlib
import itertools
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine import jobs
from engine.errors import ConfigError
from engine.train import lrfind
from tests.conftest import REPO
from tests.train.conftest import make_ctx, train_config


def _config(model: Path, data: Path, **sweep: Any) -> dict[str, Any]:
    config = train_config(model, data, jit_optimizer=False)  # no XLA compile: a faster start
    config["job"] = {"kind": "lr_find"}
    config["lr_find"] = sweep
    return config


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_sweep_rises_suggests_inside_the_range_and_saves_nothing(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    before = _hashes(tiny_data)
    # 12 steps of 16 rows: more than the 8 batches of the 128 training rows, so a second epoch is read.
    ctx, rec = make_ctx(
        tmp_path / "s", config=_config(tiny_tf, tiny_data, start_lr=1e-5, end_lr=1e-2, steps=12)
    )
    summary = lrfind.run(ctx)

    steps = rec.of("StepEnded")
    assert [s.step for s in steps] == list(range(1, 13))
    rates = [s.learning_rate for s in steps]
    assert rates == pytest.approx(lrfind.sweep_rates(1e-5, 1e-2, 12))
    assert all(b > a for a, b in itertools.pairwise(rates))
    assert rates[0] == pytest.approx(1e-5) and rates[-1] == pytest.approx(1e-2)
    assert all(s.loss is not None and math.isfinite(s.loss) for s in steps)
    assert rec.of("JobStarted")[0].job == "lr_find"
    assert summary["steps"] == 12 and summary["stopped_early"] is False
    suggested = summary["suggested_learning_rate"]
    assert suggested is not None and 1e-6 <= suggested <= 1e-2  # min / 10 may go a decade below the start
    assert suggested == pytest.approx(lrfind.suggest(rates, [s.loss for s in steps]))
    # No checkpoint, model, TensorBoard or anything else: the session folder is as make_ctx made it.
    assert not any(ctx.paths.checkpoints.iterdir())
    assert not any(ctx.paths.model.iterdir()) if ctx.paths.model.exists() else True
    assert [p for p in ctx.paths.root.rglob("*") if p.is_file()] == []
    assert _hashes(tiny_data) == before  # the prepared data is only read


def test_a_divergent_sweep_stops_early(tiny_tf: Path, tiny_data: Path, tmp_path: Path) -> None:
    ctx, rec = make_ctx(
        tmp_path / "s", config=_config(tiny_tf, tiny_data, start_lr=1e-3, end_lr=1e4, steps=40)
    )
    summary = lrfind.run(ctx)
    steps = rec.of("StepEnded")
    assert summary["stopped_early"] is True
    assert summary["steps"] == len(steps) < 40
    logs = [e.text for e in rec.of("LogRecorded")]
    assert any("diverged" in text for text in logs), logs
    finite = [s.loss for s in steps[:-1] if s.loss is not None]
    last = steps[-1].loss
    assert last is None or last > 4 * min(finite)
    assert summary["suggested_learning_rate"] is not None
    assert summary["suggested_learning_rate"] < steps[-1].learning_rate


def test_suggestion_is_the_steepest_descent_before_the_minimum() -> None:
    rates = lrfind.sweep_rates(1e-6, 1.0, 61)
    # Flat, a descent steepest at 1e-3, a minimum at 1e-2, then up again (steeper than the descent).
    losses = [
        1.0 - 0.5 * math.tanh(2 * (math.log10(r) + 3)) if r <= 1e-2 else 0.5 + 5 * (r - 1e-2) for r in rates
    ]
    assert lrfind.suggest(rates, losses) == pytest.approx(1e-3, rel=0.3)
    # A plunge straight into the minimum: the point the plunge starts from, not the minimum itself.
    assert lrfind.suggest([1e-5, 1e-4, 1e-3, 1e-2, 1e-1], [5, 4.9, 4.8, 1, 1.1]) == pytest.approx(1e-3)
    # A minimum at the first points: no descent to measure, so the minimum / 10.
    assert lrfind.suggest([1e-4, 1e-3, 1e-2], [0.5, 0.9, 2.0]) == pytest.approx(1e-5)
    assert lrfind.suggest([1e-4], [math.nan]) is None


def test_smoothing_and_divergence_rule() -> None:
    smoother = lrfind.Smoother(0.98)
    assert smoother.add(2.0) == pytest.approx(2.0)  # bias-corrected: the first value is itself
    assert lrfind.diverged(4.1, 1.0, 4.0) and not lrfind.diverged(3.9, 1.0, 4.0)
    assert lrfind.diverged(math.inf, 1.0, 4.0) and lrfind.diverged(math.nan, 1.0, 4.0)


def test_config_is_checked_as_ftc_train_checks_it(tiny_tf: Path, tiny_data: Path) -> None:
    good = _config(tiny_tf, tiny_data, steps=50)
    jobs.validate("lr_find", good)
    with pytest.raises(ConfigError, match=r"\[lr_find\] end_lr: .*not above start_lr"):
        jobs.validate("lr_find", _config(tiny_tf, tiny_data, start_lr=1e-2, end_lr=1e-3))
    with pytest.raises(ConfigError, match=r"\[lr_find\] stepz: Extra inputs"):
        jobs.validate("lr_find", _config(tiny_tf, tiny_data, stepz=3))
    bad_train = _config(tiny_tf, tiny_data)
    bad_train["train"]["batch_size"] = 0
    with pytest.raises(ConfigError, match=r"\[train\] batch_size"):
        jobs.validate("lr_find", bad_train)
    with pytest.raises(ValueError, match=r"\[lr_find\]: unknown section"):
        jobs.validate("train", _config(tiny_tf, tiny_data))


def _ftc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", "--sessions-dir", str(root), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def _toml(tmp_path: Path, model: Path, data: Path, extra: str = "") -> Path:
    path = tmp_path / "run.toml"
    path.write_text(
        f'[model]\nsource = "{model}"\n[data]\ndir = "{data}"\n'
        f"[train]\nbatch_size = 16\nmax_length = 32\njit_optimizer = false\n{extra}",
        encoding="utf-8",
    )
    return path


def test_ftc_lr_find_refuses_a_bad_config_before_any_session(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    root = tmp_path / "sessions"
    out = _ftc(root, "lr-find", str(_toml(tmp_path, tiny_tf, tiny_data, "[lr_find]\nend_lr = 1e-9\n")))
    assert out.returncode != 0 and out.stderr.count("\n") == 1, out.stderr
    assert "[lr_find] end_lr: 1e-09 is not above start_lr 1e-07" in out.stderr
    predict = tmp_path / "predict.toml"
    predict.write_text('[job]\nkind = "predict"\n', encoding="utf-8")
    out = _ftc(root, "lr-find", str(predict))
    assert out.returncode != 0 and "ftc lr-find takes a training run's config" in out.stderr, out.stderr
    assert not root.exists() or not any(root.iterdir())


@pytest.mark.slow  # an engine with TensorFlow: ~30 s on 2 busy cores
def test_ftc_lr_find_plain_prints_the_steps_and_the_suggestion(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    root = tmp_path / "sessions"
    out = _ftc(root, "lr-find", str(_toml(tmp_path, tiny_tf, tiny_data, "[lr_find]\nsteps = 10\n")))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "step 10/10" in out.stdout
    assert lines[-1].startswith("suggested learning rate: ") and "set [train] learning_rate = " in lines[-1]
    (session,) = root.iterdir()
    assert "lr-find" in session.name and not any((session / "checkpoints").iterdir())
