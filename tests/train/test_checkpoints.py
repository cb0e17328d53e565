"""Checkpoint files: atomic, half-written ones ignored, pruning keeps the best, fingerprints verified."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.train import checkpoints as ck


def _save(root: Path, step: int, **state) -> Path:
    w = [np.full((2, 2), step, np.float32)]
    return ck.save(
        root, step, weights=w, optimizer=[np.arange(3)], rng=[], state={"fingerprints": {}, **state}
    )


def test_round_trip_and_latest(tmp_path: Path) -> None:
    for step in (10, 20, 30):
        _save(tmp_path, step, epoch=1)
    latest = ck.latest_complete(tmp_path)
    assert latest is not None and latest.name == "ckpt-30"
    assert ck.read_state(latest)["step"] == 30
    np.testing.assert_array_equal(ck.load_arrays(latest, "weights.npz")[0], np.full((2, 2), 30))
    assert ck.load_arrays(latest, "rng.npz") == []


def test_half_written_checkpoint_is_never_picked(tmp_path: Path) -> None:
    _save(tmp_path, 10)
    broken = _save(tmp_path, 20)
    (broken / ck.MARKER).unlink()  # as if killed just before the marker
    partial = _save(tmp_path, 30)
    (partial / "optimizer.npz").unlink()  # marker present but a file gone
    shutil.copytree(tmp_path / "ckpt-10", tmp_path / ".tmp-ckpt-40-1")  # a dead writer's temp dir
    latest = ck.latest_complete(tmp_path)
    assert latest is not None and latest.name == "ckpt-10"
    # Saving step 20 again replaces the half-written folder.
    assert ck.is_complete(_save(tmp_path, 20))
    ck.prune(tmp_path, keep_last=5)
    assert not (tmp_path / ".tmp-ckpt-40-1").exists()


def test_prune_keeps_last_k_and_the_best(tmp_path: Path) -> None:
    for step in range(1, 8):
        _save(tmp_path, step)
    ck.prune(tmp_path, keep_last=2, keep={3})
    assert [p.name for p in ck.complete(tmp_path)] == ["ckpt-3", "ckpt-6", "ckpt-7"]


def test_fingerprint_mismatch_says_what_changed(tmp_path: Path) -> None:
    fp = {
        "config": "a",
        "config_semantic": {"train": {"learning_rate": 1e-4}},
        "tokenizer": "t",
        "data": "d1",
    }
    path = ck.save(tmp_path, 5, weights=[], optimizer=[], rng=[], state={"fingerprints": fp})
    ck.check_fingerprints(path, fp)
    changed = {
        "config": "b",
        "config_semantic": {"train": {"learning_rate": 2e-4}},
        "tokenizer": "t",
        "data": "d2",
    }
    with pytest.raises(ck.CheckpointError) as err:
        ck.check_fingerprints(path, changed)
    text = str(err.value)
    assert "train.learning_rate 0.0001 -> 0.0002" in text and "data changed" in text
    assert "tokenizer" not in text


def _fingerprints(**train: object) -> dict:
    from engine.train.config import parse_config

    cfg = parse_config({"model": {"source": "m"}, "train": train})
    return {"config": cfg.fingerprint(), "config_semantic": cfg.semantic(), "tokenizer": "t", "data": "d"}


def test_a_checkpoint_from_before_a_new_setting_resumes_unless_the_setting_is_changed(tmp_path: Path) -> None:
    saved = _fingerprints(learning_rate=1e-3)
    del saved["config_semantic"]["train"]["bucket_window"]  # a setting its release did not have
    path = ck.save(tmp_path, 5, weights=[], optimizer=[], rng=[], state={"fingerprints": saved})
    ck.check_fingerprints(path, _fingerprints(learning_rate=1e-3))  # at the default: resumes
    ck.check_fingerprints(path, _fingerprints(learning_rate=1e-3, keep_last=9))  # cadence only
    with pytest.raises(ck.CheckpointError) as err:
        ck.check_fingerprints(path, _fingerprints(learning_rate=2e-3, bucket_window=7))
    text = str(err.value)
    assert "train.bucket_window (not in the checkpoint: default 50) -> 7" in text
    assert "train.learning_rate 0.001 -> 0.002" in text and "data" not in text


def test_damaged_checkpoint_file_is_refused_on_load_and_an_old_marker_is_accepted(tmp_path: Path) -> None:
    path = _save(tmp_path, 10)
    marker = json.loads((path / ck.MARKER).read_text())
    assert set(marker["sha256"]) == {"weights.npz", "optimizer.npz", "rng.npz", "state.json"}
    weights = (path / "weights.npz").read_bytes()
    (path / "weights.npz").write_bytes(weights[:-1] + bytes([weights[-1] ^ 1]))
    with pytest.raises(ck.CheckpointError, match=r"weights\.npz: its content differs from the checksum"):
        ck.load_arrays(path, "weights.npz")
    (path / "weights.npz").write_bytes(weights)
    np.testing.assert_array_equal(ck.load_arrays(path, "weights.npz")[0], np.full((2, 2), 10))
    # A marker as ftc 0.1.0 wrote it (files, no checksums) still loads.
    del marker["sha256"]
    (path / ck.MARKER).write_text(json.dumps(marker))
    assert ck.is_complete(path) and ck.latest_complete(tmp_path) == path
    np.testing.assert_array_equal(ck.load_arrays(path, "optimizer.npz")[0], np.arange(3))


def test_tokenizer_mismatch_names_the_changed_file(tmp_path: Path) -> None:
    files = {"vocab.txt": "v1", "tokenizer_config.json": "c1"}
    fp = {"config": "a", "tokenizer": "t1", "tokenizer_files": files, "data": "d"}
    path = ck.save(tmp_path, 5, weights=[], optimizer=[], rng=[], state={"fingerprints": fp})
    changed = {**fp, "tokenizer": "t2", "tokenizer_files": {**files, "vocab.txt": "v2"}}
    with pytest.raises(ck.CheckpointError, match=r"tokenizer files changed \(vocab\.txt\)"):
        ck.check_fingerprints(path, changed)


def test_set_aside_moves_later_checkpoints_out_of_reach(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4):
        _save(tmp_path, step)
    aside = ck.set_aside(tmp_path, after_step=2)
    assert aside is not None and aside.parent == tmp_path and aside.name.startswith("abandoned-")
    assert sorted(p.name for p in aside.iterdir()) == ["ckpt-3", "ckpt-4"]
    assert [p.name for p in ck.complete(tmp_path)] == ["ckpt-1", "ckpt-2"]
    assert ck.set_aside(tmp_path, after_step=2) is None  # nothing later: no empty folder
    _save(tmp_path, 3)
    second = ck.set_aside(tmp_path, after_step=1)  # within the same second: a folder of its own
    assert second is not None and second != aside
    assert sorted(p.name for p in second.iterdir()) == ["ckpt-2", "ckpt-3"]


def test_background_writer_runs_one_write_at_a_time_and_reports_failures() -> None:
    import threading
    import time

    done: list[int] = []
    release = threading.Event()
    writer = ck.BackgroundWriter()
    writer.submit(lambda: (release.wait(5), done.append(1)))
    assert writer.busy
    writer.check()  # in flight: no waiting, nothing to report
    assert done == []
    release.set()
    writer.submit(lambda: done.append(2))  # waits for the first
    writer.wait()
    assert done == [1, 2] and not writer.busy

    def fail() -> None:
        time.sleep(0.05)
        raise OSError("No space left on device")

    writer.submit(fail)
    with pytest.raises(OSError, match="No space"):
        writer.wait()
    writer.wait()  # reported once
