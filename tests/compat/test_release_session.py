"""A session written by ftc 0.1.0 lists, replays and resumes under this release, to the same weights."""

from __future__ import annotations

import copy
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.journal import JournalReader
from engine.launcher import create_session, start_engine
from engine.session import SessionPaths, list_sessions, live_status, read_state
from engine.train import checkpoints as ck
from tests.compat.conftest import PREDICT_FIXTURE, TRAIN_FIXTURE, TRAIN_ID, as_newer_minor
from tests.conftest import wait_for
from tests.fixtures.make_release_fixture import CONFIG

TOTAL = 24  # [train] max_steps of the fixture


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _finish(paths: SessionPaths, timeout: float = 300) -> None:
    wait_for(lambda: live_status(read_state(paths)) in ("finished", "failed", "crashed"), timeout, "end")
    assert read_state(paths)["status"] == "finished", paths.log.read_text()[-3000:]


def test_old_journals_read_whole() -> None:
    """Every line 0.1.0 wrote is an event this release understands: nothing skipped, seq 1..n."""
    for fixture in (TRAIN_FIXTURE, PREDICT_FIXTURE):
        reader = JournalReader(fixture / "events.jsonl")
        events = list(reader.read_new())
        lines = (fixture / "events.jsonl").read_text().splitlines()
        assert reader.skipped == 0
        assert [e.seq for e in events] == list(range(1, len(lines) + 1))
    kinds = [e.type for e in JournalReader(TRAIN_FIXTURE / "events.jsonl").read_new()]
    assert kinds.count("step_ended") == 12
    assert kinds.count("evaluation_ended") == 3
    assert kinds.count("checkpoint_saved") == 3


def test_old_session_lists(old_session: Path, sessions_root: Path) -> None:
    (info,) = list_sessions(sessions_root)
    seen = (info.id, info.status, info.job, info.step, info.total_steps)
    assert seen == (TRAIN_ID, "stopped", "train", 12, 24)
    assert info.best_metric_name == "macro_f1"


def test_old_session_resumes_to_the_weights_of_an_uninterrupted_run(
    old_session: Path, sessions_root: Path
) -> None:
    """Resumed from 0.1.0's ckpt-12 by this release, the run ends where one uninterrupted run of it ends."""
    before = _tree_hashes(TRAIN_FIXTURE)
    paths = SessionPaths(old_session)
    start_engine(paths, resume=True)
    _finish(paths)
    assert read_state(paths)["step"] == TOTAL

    # The same configuration, from scratch, in one go under this release.
    # 0.1.0 took these paths relative to the session; this release takes them from the current
    # directory at 'ftc train' time (and checks them then), so the fresh run names them in full.
    config = copy.deepcopy(CONFIG)
    config["model"]["source"] = str(TRAIN_FIXTURE / "model-src")
    config["data"]["source"] = str(TRAIN_FIXTURE / "raw.csv")
    fresh = create_session(sessions_root, config, name="fresh")
    start_engine(fresh)
    _finish(fresh)

    manifests = [(p / "data" / "manifest.json").read_text() for p in (paths.root, fresh.root)]
    assert '"data_fingerprint"' in manifests[0]
    old_w = ck.load_arrays(paths.checkpoints / f"ckpt-{TOTAL}", "weights.npz")
    new_w = ck.load_arrays(fresh.checkpoints / f"ckpt-{TOTAL}", "weights.npz")
    assert len(old_w) == len(new_w)
    for a, b in zip(old_w, new_w, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert (paths.model / "config.json").is_file()
    assert _tree_hashes(TRAIN_FIXTURE) == before  # the committed fixture itself is untouched


@pytest.mark.parametrize("changed", ["keep_last", "checkpoint_every_steps"])
def test_bookkeeping_changes_do_not_refuse_a_resume(old_session: Path, changed: str) -> None:
    """How often checkpoints are written or kept does not change the trajectory: such a resume goes on."""
    paths = SessionPaths(old_session)
    text = paths.config.read_text()
    old_value, new_value = {
        "keep_last": ("keep_last = 2", "keep_last = 5"),
        "checkpoint_every_steps": ("checkpoint_every_steps = 4", "checkpoint_every_steps = 6"),
    }[changed]
    assert old_value in text
    paths.config.write_text(text.replace(old_value, new_value))
    start_engine(paths, resume=True)
    _finish(paths)
    assert read_state(paths)["step"] == TOTAL


def test_plain_attach_to_a_newer_minors_journal_shows_what_it_knows_and_says_what_it_skips(
    sessions_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal a newer ftc wrote (an added field, an added event type): every known event, one note each."""
    from tui.commands.follow import follow_plain

    target = sessions_root / TRAIN_ID
    shutil.copytree(TRAIN_FIXTURE, target)
    as_newer_minor(target, {"step_ended": {"gpu_util": 0.5}})
    assert follow_plain(SessionPaths(target)) == 0  # the fixture ended "stopped"
    out, err = capsys.readouterr()
    assert [ln.split("] ")[1].split("/")[0] for ln in out.splitlines() if "] step " in ln] == [
        f"step {n}" for n in range(1, 13)
    ]
    assert len([ln for ln in out.splitlines() if "] eval@" in ln]) == 3
    assert len([ln for ln in out.splitlines() if "] checkpoint at step" in ln]) == 3
    notes = [ln for ln in err.splitlines() if ln.startswith("note: ")]
    assert len(notes) == 2, err
    assert any("gpu_util" in n for n in notes) and any("confusion_computed" in n for n in notes)
