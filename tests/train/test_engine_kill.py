"""Training in the real engine process, killed with SIGKILL and resumed: nothing is lost, nothing differs."""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.journal import read_all
from engine.launcher import create_session, start_engine
from engine.session import SessionPaths, live_status, pid_alive, read_state
from engine.train import checkpoints as ck
from tests.conftest import wait_for
from tests.train.conftest import train_config

# 2 epochs of 9 steps (shards of 50/50/28 rows, batches of 8, 2 micro-batches a step), checkpoints
# every 3 steps, evaluations every 3: the kill lands among evaluations, checkpoints and accumulation.
RUN = {
    "batch_size": 8,
    "grad_accum_steps": 2,
    "eval_every_steps": 3,
    "epochs": 3,
    "checkpoint_every_steps": 3,
}
TOTAL = 27


def _finish(paths: SessionPaths, timeout: float = 240) -> None:
    wait_for(lambda: live_status(read_state(paths)) in ("finished", "failed", "crashed"), timeout, "end")
    assert read_state(paths)["status"] == "finished", paths.log.read_text()[-3000:]


def _losses(paths: SessionPaths) -> dict[int, float]:
    """Each step's loss as last reported (a resumed run re-reports the steps after its checkpoint)."""
    return {e.body.step: e.body.loss for e in read_all(paths.events) if e.type == "step_ended"}


def _batches(paths: SessionPaths) -> dict[int, list[int]]:
    """Each step's row ids as last recorded (FTC_BATCH_AUDIT): a resumed run re-records its steps."""
    lines = (paths.root / "batches.jsonl").read_text().splitlines()
    return {rec["step"]: rec["rows"] for rec in map(json.loads, lines)}


def _final_weights(paths: SessionPaths) -> list[np.ndarray]:
    return ck.load_arrays(paths.checkpoints / f"ckpt-{TOTAL}", "weights.npz")


def _start(root: Path, model: Path, data: Path) -> SessionPaths:
    paths = create_session(root, train_config(model, data, **RUN), name="kill")
    start_engine(paths)
    return paths


@pytest.fixture(autouse=True)
def _audit_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTC_BATCH_AUDIT", "1")  # engines started here record each step's rows


@pytest.fixture(scope="module")
def reference(tiny_tf: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FTC_BATCH_AUDIT", "1")
        paths = _start(tmp_path_factory.mktemp("ref") / "sessions", tiny_tf, tiny_data)
    _finish(paths)
    return {"losses": _losses(paths), "weights": _final_weights(paths), "batches": _batches(paths)}


def _assert_same_run(paths: SessionPaths, reference: dict[str, Any]) -> None:
    losses = _losses(paths)
    assert sorted(losses) == list(range(1, TOTAL + 1)), "every step reported"
    for step, loss in reference["losses"].items():
        assert losses[step] == pytest.approx(loss, abs=1e-5), f"step {step}: a different batch or state"
    batches = _batches(paths)
    assert sorted(batches) == list(range(1, TOTAL + 1))
    assert batches == reference["batches"], "the same rows in the same steps as the uninterrupted run"
    first_epoch = [row for step in range(1, TOTAL // 3 + 1) for row in batches[step]]
    assert len(set(first_epoch)) == len(first_epoch), "no row twice within an epoch"
    for got, want in zip(_final_weights(paths), reference["weights"], strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_kill_9_at_a_random_step_then_resume_matches_an_uninterrupted_run(
    reference: dict[str, Any], tiny_tf: Path, tiny_data: Path, sessions_root: Path
) -> None:
    kill_after = random.Random().randint(4, TOTAL - 4)
    paths = _start(sessions_root, tiny_tf, tiny_data)
    pid = read_state(paths)["pid"]
    wait_for(lambda: max(_losses(paths), default=0) >= kill_after, 240, f"step {kill_after}")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="engine death")
    assert live_status(read_state(paths)) == "crashed"
    killed_at = max(_losses(paths))
    assert killed_at < TOTAL, "the kill must land before the end"
    restart_from = ck.step_of(ck.latest_complete(paths.checkpoints))
    start_engine(paths, resume=True)
    _finish(paths)
    starts = [e.body.step for e in read_all(paths.events) if e.type == "job_started"]
    assert starts == [0, restart_from], f"killed after step {killed_at}"
    _assert_same_run(paths, reference)


def test_kill_during_a_checkpoint_write_keeps_the_previous_one_usable(
    reference: dict[str, Any], tiny_tf: Path, tiny_data: Path, sessions_root: Path, monkeypatch
) -> None:
    monkeypatch.setenv("FTC_FAULT", "checkpoint_write@6")  # dies after writing weights.npz of ckpt-6
    paths = _start(sessions_root, tiny_tf, tiny_data)
    pid = read_state(paths)["pid"]
    wait_for(lambda: not pid_alive(pid), 240, "the engine to die in the checkpoint write")
    half = [p.name for p in paths.checkpoints.iterdir() if "ckpt-6" in p.name]
    assert half and all(p.startswith(".tmp-") for p in half), half
    assert ck.step_of(ck.latest_complete(paths.checkpoints)) == 3
    monkeypatch.delenv("FTC_FAULT")
    start_engine(paths, resume=True)
    _finish(paths)
    starts = [e.body.step for e in read_all(paths.events) if e.type == "job_started"]
    assert starts == [0, 3]
    _assert_same_run(paths, reference)
