"""Checkpoint faults in the real engine: a damaged latest checkpoint, an explicit one, a kill while pruning.

Each run is killed (kill -9 at a fault point, FTC_FAULT) or damaged, then resumed; each test
checks the record a person sees (a warning or a failure naming the checkpoint) and that the
resumed run ends with exactly the weights of an uninterrupted one. One epoch of 10 steps of a
tiny BERT, a checkpoint every 2 steps and 2 kept: each engine run takes seconds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.journal import read_all
from engine.launcher import create_session, start_engine
from engine.session import SessionPaths, live_status, pid_alive, read_state
from engine.train import checkpoints as ck
from tests.conftest import REPO, wait_for
from tests.train.conftest import tiny_data, tiny_tf, train_config

__all__ = ["tiny_data", "tiny_tf"]  # the tiny model and data fixtures, shared with tests/train

RUN = {"epochs": 1, "batch_size": 16, "checkpoint_every_steps": 2, "keep_last": 2}
TOTAL = 10  # steps in the epoch (shards of 50/50/28 rows in length-bucketed batches of up to 16)


def _start(root: Path, model: Path, data: Path, **start: object) -> SessionPaths:
    paths = create_session(root, train_config(model, data, **RUN), name="ckpt")
    start_engine(paths, **start)  # type: ignore[arg-type]
    return paths


def _end(paths: SessionPaths, timeout: float = 240) -> str:
    wait_for(lambda: live_status(read_state(paths)) in ("finished", "failed", "crashed"), timeout, "the end")
    return str(live_status(read_state(paths)))


def _finish(paths: SessionPaths, **start: object) -> None:
    start_engine(paths, resume=True, **start)  # type: ignore[arg-type]
    assert _end(paths) == "finished", paths.log.read_text()[-3000:]


def _crash(root: Path, model: Path, data: Path, fault: str, monkeypatch: pytest.MonkeyPatch) -> SessionPaths:
    """A session whose engine was killed (SIGKILL) at the fault point."""
    monkeypatch.setenv("FTC_FAULT", fault)
    paths = _start(root, model, data)
    pid = read_state(paths)["pid"]
    wait_for(lambda: not pid_alive(pid), 240, f"the engine to die at {fault}")
    monkeypatch.delenv("FTC_FAULT")
    assert live_status(read_state(paths)) == "crashed"
    return paths


def _final_weights(paths: SessionPaths) -> list[np.ndarray]:
    return ck.load_arrays(paths.checkpoints / f"ckpt-{TOTAL}", "weights.npz")


def _starts(paths: SessionPaths) -> list[int]:
    return [e.body.step for e in read_all(paths.events) if e.type == "job_started"]


def _warnings(paths: SessionPaths) -> list[str]:
    return [
        e.body.text for e in read_all(paths.events) if e.type == "log_recorded" and e.body.level == "warning"
    ]


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _assert_same_weights(paths: SessionPaths, reference: list[np.ndarray]) -> None:
    for got, want in zip(_final_weights(paths), reference, strict=True):
        np.testing.assert_array_equal(got, want)  # bit-identical, not merely close


@pytest.fixture(scope="module")
def reference(tiny_tf: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    paths = _start(tmp_path_factory.mktemp("ref") / "sessions", tiny_tf, tiny_data)
    assert _end(paths) == "finished", paths.log.read_text()[-3000:]
    assert ck.step_of(ck.latest_complete(paths.checkpoints)) == TOTAL
    return _final_weights(paths)


def test_a_truncated_latest_checkpoint_is_skipped_with_a_warning_and_resume_falls_back(
    reference: list[np.ndarray], tiny_tf: Path, tiny_data: Path, sessions_root: Path, monkeypatch
) -> None:
    paths = _crash(sessions_root, tiny_tf, tiny_data, "checkpoint_write@6", monkeypatch)
    assert [p.name for p in ck.complete(paths.checkpoints)] == ["ckpt-2", "ckpt-4"]
    weights = paths.checkpoints / "ckpt-4" / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:1000])  # a copy cut short, a disk that lost the tail
    damaged = _hashes(paths.checkpoints / "ckpt-4")
    _finish(paths)
    assert _starts(paths) == [0, 2], "resumed from the newest intact checkpoint"
    said = [w for w in _warnings(paths) if "ckpt-4" in w]
    assert said and "damaged" in said[0] and "weights.npz" in said[0], _warnings(paths)
    assert "warning: checkpoint ckpt-4 is damaged" in paths.log.read_text(), "engine.log says it too"
    # The damaged checkpoint is kept, out of the way, not overwritten by the new run's ckpt-4.
    (aside,) = [p for p in paths.checkpoints.glob("abandoned-*/ckpt-4")]
    assert _hashes(aside) == damaged
    assert [p.name for p in ck.folders(paths.checkpoints)] == ["ckpt-8", "ckpt-10"]  # the new run's
    assert ck.intact_checkpoints(paths.checkpoints) == ck.folders(paths.checkpoints)
    _assert_same_weights(paths, reference)


def test_resume_from_a_named_checkpoint_and_a_missing_name_is_refused_naming_the_intact_ones(
    reference: list[np.ndarray], tiny_tf: Path, tiny_data: Path, sessions_root: Path, monkeypatch
) -> None:
    paths = _crash(sessions_root, tiny_tf, tiny_data, "checkpoint_write@8", monkeypatch)
    assert [p.name for p in ck.complete(paths.checkpoints)] == ["ckpt-4", "ckpt-6"]
    before = _hashes(paths.checkpoints)
    refusal = r"checkpoint ckpt-5 .*: no such checkpoint; intact ones: ckpt-4, ckpt-6$"
    with pytest.raises(ck.CheckpointError, match=refusal):  # `ftc resume --checkpoint`: before any start
        start_engine(paths, resume=True, checkpoint="ckpt-5")
    assert live_status(read_state(paths)) == "crashed", "nothing started, nothing written"
    # The engine refuses it by itself too (a caller that did not check first): a one-line failure.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(paths.log, "ab") as log:
        cmd = [sys.executable, "-m", "engine", str(paths.root), "--resume", "--checkpoint", "ckpt-5"]
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=paths.root, timeout=240)
    assert done.returncode != 0 and read_state(paths)["status"] == "failed"
    (failed,) = [e.body for e in read_all(paths.events) if e.type == "job_failed"]
    assert "ckpt-5" in failed.error_text and "intact ones: ckpt-4, ckpt-6" in failed.error_text
    assert "\n" not in failed.error_text
    assert _hashes(paths.checkpoints) == before, "a refused resume changes no checkpoint"
    _finish(paths, checkpoint="ckpt-4")  # the older one, although ckpt-6 is intact
    assert _starts(paths) == [0, 4]
    assert [p.name for p in paths.checkpoints.glob("abandoned-*/*")] == ["ckpt-6"], "set aside, not lost"
    _assert_same_weights(paths, reference)


def test_a_kill_during_pruning_leaves_no_half_deleted_checkpoint_and_resumes_exactly(
    reference: list[np.ndarray], tiny_tf: Path, tiny_data: Path, sessions_root: Path, monkeypatch
) -> None:
    # The first pruning, after ckpt-6, deletes ckpt-2: killed after its first file is gone.
    paths = _crash(sessions_root, tiny_tf, tiny_data, "prune_delete@1", monkeypatch)
    names = sorted(p.name for p in paths.checkpoints.iterdir())
    assert names == [".deleting-ckpt-2", "ckpt-4", "ckpt-6"], names
    assert len(list((paths.checkpoints / ".deleting-ckpt-2").iterdir())) == 4, "killed mid-delete"
    assert [p.name for p in ck.intact_checkpoints(paths.checkpoints)] == ["ckpt-4", "ckpt-6"]
    _finish(paths)
    assert _starts(paths) == [0, 6]
    assert not list(paths.checkpoints.glob(f"{ck.DELETING}*")), "the leftover was swept"
    assert not list(paths.checkpoints.glob("abandoned-*")), "nothing to set aside"
    _assert_same_weights(paths, reference)
