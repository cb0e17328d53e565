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


# ---------------------------------------------------------------- damage, naming, pruning, full disk

FIXTURE_CKPTS = Path(__file__).resolve().parents[1] / "fixtures" / "release-0.1.0" / "checkpoints"


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("harm", "said"),
    [
        (lambda p: _truncate(p / "weights.npz"), "weights.npz differs from the checksums in COMPLETE"),
        (lambda p: _flip(p / "optimizer.npz"), "optimizer.npz differs from the checksums in COMPLETE"),
        (lambda p: (p / "rng.npz").unlink(), "rng.npz missing"),
        (lambda p: (p / "state.json").write_text("{}"), "state.json differs"),
        (lambda p: (p / ck.MARKER).unlink(), "COMPLETE marker is missing or unreadable"),
        (lambda p: _truncate(p / ck.MARKER), "COMPLETE marker is missing or unreadable"),
    ],
    ids=["truncated", "flipped-byte", "missing-file", "replaced-state", "no-marker", "torn-marker"],
)
def test_a_damaged_checkpoint_is_found_before_loading_and_named(tmp_path: Path, harm, said: str) -> None:
    for step in (3, 6):
        _save(tmp_path, step)
    assert ck.damage(tmp_path / "ckpt-6") is None
    harm(tmp_path / "ckpt-6")
    problem = ck.damage(tmp_path / "ckpt-6")
    assert problem is not None and said in problem
    assert ck.intact_checkpoints(tmp_path) == [tmp_path / "ckpt-3"]
    with pytest.raises(ck.CheckpointError) as err:
        ck.verify_named(tmp_path, "ckpt-6")
    text = str(err.value)
    assert "\n" not in text and "checkpoint ckpt-6" in text and said in text and "intact ones: ckpt-3" in text
    assert ck.verify_named(tmp_path, "3") == ck.verify_named(tmp_path, "ckpt-3") == tmp_path / "ckpt-3"


def test_a_named_checkpoint_that_is_not_there_is_refused_listing_the_intact_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ck.CheckpointError, match=r"ckpt-9 .*no such checkpoint; .* holds no intact checkpoint"
    ):
        ck.verify_named(tmp_path / "checkpoints", "ckpt-9")
    for step in (2, 4):
        _save(tmp_path, step)
    with pytest.raises(
        ck.CheckpointError, match=r"ckpt-9 .*no such checkpoint; intact ones: ckpt-2, ckpt-4$"
    ):
        ck.verify_named(tmp_path, "ckpt-9")


def test_verify_named_imports_no_tensorflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from engine.train.checkpoints import verify_named, intact_checkpoints; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', "
        "'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_checkpoint_from_0_1_0_without_checksums_is_intact_until_a_file_is_cut(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    shutil.copytree(FIXTURE_CKPTS, root)
    assert "sha256" not in json.loads((root / "ckpt-12" / ck.MARKER).read_text())
    assert [p.name for p in ck.intact_checkpoints(root)] == ["ckpt-4", "ckpt-8", "ckpt-12"]
    _truncate(root / "ckpt-12" / "weights.npz", keep=0.9)
    _flip(root / "ckpt-8" / "optimizer.npz")  # within a member's data: its zip CRC catches it
    assert ck.damage(root / "ckpt-12") == "weights.npz damaged (truncated or altered)"
    assert ck.damage(root / "ckpt-8") == "optimizer.npz damaged (truncated or altered)"
    assert [p.name for p in ck.intact_checkpoints(root)] == ["ckpt-4"]


def test_set_aside_moves_damaged_later_checkpoints_too(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        _save(tmp_path, step)
    (tmp_path / "ckpt-3" / "weights.npz").unlink()
    aside = ck.set_aside(tmp_path, after_step=1)
    assert aside is not None and sorted(p.name for p in aside.iterdir()) == ["ckpt-2", "ckpt-3"]
    assert [p.name for p in ck.folders(tmp_path)] == ["ckpt-1"]


def _prune_in_a_process(root: Path, fault: str) -> int:
    """ck.prune(root, keep_last=1) in a child python killed by FTC_FAULT=fault; its exit status."""
    import os
    import subprocess
    import sys

    code = "import sys\nfrom engine.train import checkpoints as ck\nck.prune(ck.Path(sys.argv[1]), 1)"
    env = {**os.environ, "FTC_FAULT": fault}
    return subprocess.run([sys.executable, "-c", code, str(root)], env=env, check=False).returncode


@pytest.mark.parametrize("fault", ["prune_renamed@1", "prune_delete@1"])
def test_a_kill_during_pruning_leaves_a_leftover_no_scan_takes_for_a_checkpoint(
    tmp_path: Path, fault: str
) -> None:
    import signal

    for step in (1, 2, 3):
        _save(tmp_path, step)
    assert _prune_in_a_process(tmp_path, fault) == -signal.SIGKILL
    leftover = tmp_path / ".deleting-ckpt-1"
    assert leftover.is_dir() and not (tmp_path / "ckpt-1").exists()
    remaining = len(list(leftover.iterdir()))
    assert remaining == (5 if fault.startswith("prune_renamed") else 4), "killed where the fault says"
    assert [p.name for p in ck.folders(tmp_path)] == ["ckpt-2", "ckpt-3"]
    assert [p.name for p in ck.intact_checkpoints(tmp_path)] == ["ckpt-2", "ckpt-3"]
    assert ck.sweep(tmp_path) == [leftover]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-2", "ckpt-3"]
    # A later prune deletes whole folders, and another leftover under the same name is no obstacle.
    leftover.mkdir()
    (leftover / "weights.npz").write_bytes(b"x")
    assert ck.prune(tmp_path, keep_last=1) == [tmp_path / "ckpt-2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-3"]


def test_a_full_disk_during_a_checkpoint_leaves_no_partial_one_and_raises_with_its_path(
    tmp_path: Path,
) -> None:
    import errno
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], check=False
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        root = disk / "checkpoints"
        small = ck.save(root, 1, weights=[np.zeros(1000, np.float32)], optimizer=[], rng=[], state={})
        before = {p.name: p.read_bytes() for p in small.iterdir()}
        with pytest.raises(OSError) as err:
            ck.save(root, 2, weights=[np.ones(200_000, np.float32)], optimizer=[], rng=[], state={})
        assert err.value.errno == errno.ENOSPC and err.value.filename == str(root / "ckpt-2")
        assert sorted(p.name for p in root.iterdir()) == ["ckpt-1"], "no temp folder, no ckpt-2"
        assert {p.name: p.read_bytes() for p in small.iterdir()} == before
        assert ck.intact_checkpoints(root) == [small]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_cut_file_under_a_marker_without_checksums_is_refused_in_one_line_on_load(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    shutil.copytree(FIXTURE_CKPTS / "ckpt-4", root / "ckpt-4")
    _truncate(root / "ckpt-4" / "weights.npz", keep=0.5)
    with pytest.raises(
        ck.CheckpointError, match=r"ckpt-4/weights\.npz: cannot be read \(.+\); resume from another"
    ):
        ck.load_arrays(root / "ckpt-4", "weights.npz")
