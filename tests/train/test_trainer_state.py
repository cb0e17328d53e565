"""TrainerState reads checkpoints of ftc 0.1.0 and of later minor versions, and refuses a new major one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.train import checkpoints as ck
from engine.train.state import STATE_VERSION, TrainerState

OLD_CHECKPOINT = Path(__file__).parents[1] / "fixtures" / "release-0.1.0" / "checkpoints" / "ckpt-12"


def _checkpoint_with(tmp_path: Path, state: dict[str, object]) -> Path:
    folder = tmp_path / "ckpt-12"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps(state))
    return folder


def test_a_checkpoint_of_release_0_1_0_loads_where_it_stood() -> None:
    state = TrainerState.load(OLD_CHECKPOINT)
    assert (state.step, state.epoch, state.batch_index, state.total_steps) == (12, 0, 12, 24)
    assert (state.best, state.best_step, state.bad_evals, state.stopped_early) == (
        pytest.approx(1 / 6),
        4,
        2,
        False,
    )
    assert [e.step for e in state.history] == [4, 8, 12]
    assert state.history[-1].metrics["roc_auc"] == pytest.approx(0.73083333)
    assert state.fingerprints["config"] == "955e46dff11e1fc1"
    assert state.version == STATE_VERSION  # 0.1.0 wrote no version: it is 1.0


def test_saved_again_it_keeps_every_key_release_0_1_0_wrote() -> None:
    """A checkpoint this release writes is one 0.1.0 can resume: its keys, with the same values, are there."""
    old = ck.read_state(OLD_CHECKPOINT)
    saved = TrainerState.load(OLD_CHECKPOINT).model_dump(mode="json")
    assert {key: saved.get(key) for key in old} == old


def test_unknown_keys_are_ignored_and_missing_ones_defaulted(tmp_path: Path) -> None:
    folder = _checkpoint_with(
        tmp_path, {"version": "1.7", "step": 12, "epoch": 1, "batch_index": 3, "from_a_later_minor": [1, 2]}
    )
    state = TrainerState.load(folder)
    assert (state.step, state.epoch, state.batch_index) == (12, 1, 3)
    assert state.history == [] and state.best is None and state.bad_evals == 0 and not state.stopped_early
    assert "from_a_later_minor" not in state.model_dump()


def test_a_new_major_version_is_refused_naming_both(tmp_path: Path) -> None:
    folder = _checkpoint_with(tmp_path, {"version": "2.0", "step": 12, "epoch": 0, "batch_index": 12})
    with pytest.raises(ck.CheckpointError, match=r"ckpt-12: .*version 2\.0 .*reads 1\.x"):
        TrainerState.load(folder)


def test_a_damaged_state_is_refused_with_the_checkpoint_named(tmp_path: Path) -> None:
    shutil.copytree(OLD_CHECKPOINT, tmp_path / "ckpt-12")
    (tmp_path / "ckpt-12" / "state.json").write_text('{"step": "twelve"}')
    with pytest.raises(ck.CheckpointError, match=r"ckpt-12: state\.json cannot be read"):
        TrainerState.load(tmp_path / "ckpt-12")
