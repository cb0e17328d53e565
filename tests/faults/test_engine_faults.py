"""Faults around the engine: a damaged state.json, a full disk, stop signals at awkward moments.

Each asserts a clear record (state.json, the journal's last whole line) and that the session
goes on: it resumes to its end. The selftest job covers the engine's own files quickly; one
real training run on a full tmpfs proves a resume ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import client, protocol
from engine.journal import read_all
from engine.launcher import create_session, start_engine
from engine.session import SessionError, SessionPaths, engine_lock_held, live_status, pid_alive, read_state
from tests.conftest import selftest_config, wait_for
from tests.robustness.harness import ftc
from tests.train.conftest import tiny_data, tiny_tf

__all__ = ["tiny_data", "tiny_tf"]  # the tiny model and data fixtures, shared with tests/train

DISK_FULL = re.compile(r"no space left on device writing (/\S+); free space, then ftc resume")


def _start(root: Path, name: str = "fault", **opts: object) -> SessionPaths:
    paths = create_session(root, selftest_config(**opts), name=name)
    start_engine(paths)
    return paths


def _end(paths: SessionPaths, timeout: float = 60) -> str:
    wait_for(
        lambda: live_status(read_state(paths)) not in ("starting", "running", "paused", "stopping"), timeout
    )
    status = str(read_state(paths)["status"])
    if status in ("finished", "failed", "stopped"):  # a clean end: state.json first, then the last events
        wait_for(lambda: b'"engine_stopped"' in paths.events.read_bytes(), timeout, what="engine_stopped")
    return status


def _journal_is_whole(paths: SessionPaths) -> list[protocol.Envelope]:
    """Every line of the journal is a whole event, and seq has no gap."""
    data = paths.events.read_bytes()
    assert data.endswith(b"\n"), "the journal ends with a half line"
    lines = data.splitlines()
    events = [protocol.decode(line, kinds=protocol.EVENTS) for line in lines]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    return events


def _kill_9(paths: SessionPaths) -> None:
    pid = read_state(paths)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="engine death")


# ------------------------------------------------------------------ state.json


def test_a_damaged_or_deleted_state_json_never_stops_a_running_job(sessions_root: Path) -> None:
    paths = _start(sessions_root, steps=150, step_s=0.02)
    wait_for(lambda: read_state(paths).get("step", 0) >= 5, what="some steps")
    paths.state.write_text('{"status": "runn')  # torn, as a crashed editor or a full disk leaves it
    view = read_state(paths)  # a reader meanwhile: rebuilt from the journal, nothing written
    assert view["status"] in ("running", "paused") and view["endpoints"], view
    assert client.request(paths, protocol.Ping()).status == "running"
    wait_for(lambda: paths.state.read_text().endswith("}\n"), what="state.json rewritten")
    assert json.loads(paths.state.read_text())["step"] > 5
    paths.state.unlink()
    wait_for(paths.state.exists, what="state.json written again")
    assert _end(paths) == "finished", paths.log.read_text()[-2000:]
    events = _journal_is_whole(paths)
    assert [e.type for e in events][-2:] == ["job_finished", "engine_stopped"]
    assert not [e for e in events if e.type == "job_failed"]


def test_a_damaged_state_json_after_a_crash_is_rebuilt_by_ls_stop_attach_and_resume(
    sessions_root: Path,
) -> None:
    paths = _start(sessions_root, steps=60, step_s=0.02, checkpoint_every=10)
    wait_for(lambda: read_state(paths).get("step", 0) >= 23, what="steps past two checkpoints")
    _kill_9(paths)
    last_step = max(e.body.step for e in read_all(paths.events) if e.type == "step_ended")  # type: ignore[union-attr]
    damaged = b'{"status": "running", "st\x00\x00'

    def damage() -> None:
        paths.state.write_bytes(damaged)

    damage()
    listing = ftc("ls", "--json")
    assert listing.code == 0, listing.err
    row = json.loads(listing.out)[0]
    assert (row["status"], row["step"]) == ("crashed", last_step), row
    assert "rebuilt from the journal" in row["message"]
    state = json.loads(paths.state.read_text())
    saved = max(int(p.parent.name[5:]) for p in paths.checkpoints.glob("ckpt-*/COMPLETE"))
    assert (
        state["status"] == "crashed" and state["last_checkpoint_step"] == saved and state["job"] == "selftest"
    )
    kept = list(paths.root.glob("state.json.damaged-*"))
    assert [p.read_bytes() for p in kept] == [damaged], "the damaged file is kept as it was"

    damage()
    out = ftc("stop", paths.id)
    assert out.code == 2 and "status: crashed" in out.err and f"ftc resume {paths.id}" in out.err, out.err
    assert read_state(paths)["status"] == "crashed"

    damage()
    out = ftc("attach", paths.id)  # without a terminal: the journal as plain lines, then what to do
    assert out.code == 1 and "engine is gone (status: crashed)" in out.out, (out.out[-500:], out.err)

    damage()
    start_engine(paths, resume=True)
    assert _end(paths) == "finished", paths.log.read_text()[-2000:]
    starts = [e.body.step for e in read_all(paths.events) if e.type == "job_started"]  # type: ignore[union-attr]
    assert starts == [0, saved]
    _journal_is_whole(paths)


# ------------------------------------------------------------------ a full disk


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at folder (root only; the test is skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of folder up (but for about ``leave`` bytes); returns the filler to delete."""
    filler = folder / "filler.bin"
    with open(filler, "wb") as fh:
        block = b"\xff" * 65536
        with contextlib.suppress(OSError):
            while True:
                free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
                if free <= leave:
                    break
                fh.write(block[: max(4096, min(len(block), free - leave))])
                fh.flush()
    return filler


def _assert_disk_full_record(paths: SessionPaths) -> list[protocol.Envelope]:
    state = read_state(paths)
    assert state["status"] == "failed", state
    found = DISK_FULL.search(state["message"])
    assert found and found.group(1).startswith(str(paths.root)), state["message"]
    assert state["message"].endswith(f"ftc resume {paths.id}")
    events = _journal_is_whole(paths)
    failed = [e.body for e in events if e.type == "job_failed"]
    assert len(failed) == 1 and failed[0].error_name == "NoSpace", failed  # type: ignore[union-attr]
    assert DISK_FULL.search(failed[0].error_text)  # type: ignore[union-attr]
    assert events[-1].type == "engine_stopped" and events[-1].body.status == "failed"  # type: ignore[union-attr]
    assert not (paths.root / ".space-reserve").exists(), "the reserve goes with the engine"
    return events


def test_disk_full_ends_the_job_with_one_clear_record_and_resume_finishes(
    tmp_path: Path, monkeypatch
) -> None:
    with small_disk(tmp_path / "small", "2m") as disk:
        root = disk / "sessions"
        monkeypatch.setenv("FTC_SESSIONS_DIR", str(root))
        paths = _start(root, steps=400, step_s=0.005, checkpoint_every=20)
        wait_for(lambda: read_state(paths).get("step", 0) >= 45, what="steps past two checkpoints")
        filler = fill(disk)
        try:
            assert _end(paths) == "failed", paths.log.read_text()[-2000:]
            events = _assert_disk_full_record(paths)
            listing = ftc("ls", "--json")
            assert json.loads(listing.out)[0]["status"] == "failed"
            failed_at = max(e.body.step for e in events if e.type == "step_ended")  # type: ignore[union-attr]
            with pytest.raises(SessionError, match="no space left on device"):  # no room even to start
                start_engine(paths, resume=True)
            assert read_state(paths)["status"] == "failed"
        finally:
            filler.unlink()
        start_engine(paths, resume=True)
        assert _end(paths) == "finished", paths.log.read_text()[-2000:]
        events = _journal_is_whole(paths)
        steps = [e.body.step for e in events if e.type == "step_ended"]  # type: ignore[union-attr]
        assert set(steps) == set(range(1, 401)) and failed_at < 400
        assert read_state(paths)["step"] == 400


def test_disk_full_writing_the_state_of_a_paused_job_ends_it_clearly(tmp_path: Path, monkeypatch) -> None:
    """Paused, only the heartbeat writes (state.json): its full disk still ends the job with the record."""
    with small_disk(tmp_path / "small", "2m") as disk:
        root = disk / "sessions"
        monkeypatch.setenv("FTC_SESSIONS_DIR", str(root))
        paths = _start(root, steps=400, step_s=0.005, checkpoint_every=20)
        wait_for(lambda: read_state(paths).get("step", 0) >= 25, what="steps past a checkpoint")
        client.request(paths, protocol.Pause())
        wait_for(lambda: read_state(paths).get("status") == "paused", what="paused")
        filler = fill(disk)
        try:
            assert _end(paths) == "failed", paths.log.read_text()[-2000:]
            _assert_disk_full_record(paths)
            assert DISK_FULL.search(read_state(paths)["message"]).group(1) == str(paths.state)  # type: ignore[union-attr]
        finally:
            filler.unlink()
        start_engine(paths, resume=True)
        assert _end(paths) == "finished", paths.log.read_text()[-2000:]
        _journal_is_whole(paths)


# ------------------------------------------------------------------ stop signals


def test_sigterm_during_start_up_stops_within_seconds(sessions_root: Path, monkeypatch) -> None:
    monkeypatch.setenv("FTC_SELFTEST_START_S", "120")  # a start-up as slow as a cold TensorFlow import
    paths = _start(sessions_root, steps=10)
    pid = read_state(paths)["pid"]
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), timeout=10, what="the engine to stop during its start-up")
    state = read_state(paths)
    assert state["status"] == "stopped" and "start-up" in state["message"], state
    events = _journal_is_whole(paths)
    assert [e.type for e in events][-2:] == ["job_stopped", "engine_stopped"]
    assert not [e for e in events if e.type == "step_ended"]


def test_ftc_stop_during_start_up_stops_within_seconds(sessions_root: Path, monkeypatch) -> None:
    monkeypatch.setenv("FTC_SELFTEST_START_S", "120")
    paths = _start(sessions_root, steps=10)
    pid = read_state(paths)["pid"]
    out = ftc("stop", paths.id)
    assert out.code == 0, out.err
    wait_for(lambda: not pid_alive(pid), timeout=10, what="the engine to stop during its start-up")
    state = read_state(paths)
    assert state["status"] == "stopped" and state["message"] == "stop command during start-up", state
    events = _journal_is_whole(paths)
    assert [e.type for e in events][-2:] == ["job_stopped", "engine_stopped"]


def test_a_second_sigterm_ends_the_engine_at_once(sessions_root: Path) -> None:
    paths = _start(sessions_root, steps=3, step_s=300)  # the first step takes minutes: a stop waits for it
    wait_for(lambda: any(e.type == "job_started" for e in read_all(paths.events)), what="job started")
    pid = read_state(paths)["pid"]
    wait_for(lambda: client.request(paths, protocol.Ping()).status == "running", what="serving")
    os.kill(pid, signal.SIGTERM)
    notes = lambda: [e.body.text for e in read_all(paths.events) if e.type == "log_recorded"]  # noqa: E731
    wait_for(lambda: any("a second SIGTERM ends" in n for n in notes()), what="the first signal noted")
    assert pid_alive(pid) and read_state(paths)["status"] == "stopping"
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), timeout=5, what="the engine to end at once")
    state = read_state(paths)
    assert state["status"] == "stopped" and "again" in state["message"], state
    events = _journal_is_whole(paths)
    assert events[-1].type == "engine_stopped" and events[-1].body.status == "stopped"  # type: ignore[union-attr]
    assert live_status(read_state(paths)) == "stopped"


def test_disk_full_reasons_name_a_path() -> None:
    """The record names the file being written, whatever shape the error came in."""
    from engine.server import no_space

    assert no_space(OSError(errno.ENOSPC, "No space left on device", "/s/events.jsonl")) == "/s/events.jsonl"
    wrapped = RuntimeError("saving failed")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded", "/s/ckpt-3/weights.npz")
    assert no_space(wrapped) == "/s/ckpt-3/weights.npz"
    tf_like = Exception("/s/tensorboard/events.out; No space left on device [Op:WriteSummary]")
    assert no_space(tf_like) == "/s/tensorboard/events.out"
    assert no_space(OSError(errno.EACCES, "Permission denied", "/s/x")) is None


# ------------------------------------------------------------------ the real training engine

# One epoch of 10 steps of a tiny BERT, a checkpoint every 2 steps (as test_checkpoint_faults.py).
TRAIN_RUN = {"epochs": 1, "batch_size": 16, "checkpoint_every_steps": 2, "keep_last": 2}
TRAIN_TOTAL = 10


def _train(root: Path, model: Path, data: Path) -> SessionPaths:
    from tests.train.conftest import train_config

    paths = create_session(root, train_config(model, data, **TRAIN_RUN), name="train-fault")
    start_engine(paths)
    return paths


def _final_weights(paths: SessionPaths) -> list[Any]:
    from engine.train import checkpoints as ck

    return ck.load_arrays(paths.checkpoints / f"ckpt-{TRAIN_TOTAL}", "weights.npz")


def _assert_same_weights(paths: SessionPaths, reference: list[Any]) -> None:
    import numpy as np

    for got, want in zip(_final_weights(paths), reference, strict=True):
        np.testing.assert_array_equal(got, want)  # bit-identical, not merely close


@pytest.fixture(scope="module")
def reference(tiny_tf: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    paths = _train(tmp_path_factory.mktemp("ref") / "sessions", tiny_tf, tiny_data)
    assert _end(paths, 300) == "finished", paths.log.read_text()[-3000:]
    return _final_weights(paths)


def test_training_on_a_full_disk_fails_clearly_and_resumes_to_the_same_weights(
    reference: list[Any], tiny_tf: Path, tiny_data: Path, tmp_path: Path, monkeypatch
) -> None:
    """Disk full during training (a damaged state.json too, while it runs and after): resume ends exactly."""
    with small_disk(tmp_path / "small", "64m") as disk:
        root = disk / "sessions"
        monkeypatch.setenv("FTC_SESSIONS_DIR", str(root))
        paths = _train(root, tiny_tf, tiny_data)
        wait_for(lambda: read_state(paths).get("step", 0) >= 1, 300, "the first step")
        paths.state.write_text("{")  # damaged while training: the engine rewrites it, training goes on
        client.request(paths, protocol.Pause())
        wait_for(lambda: read_state(paths).get("status") == "paused", 60, "paused")
        paused_at = read_state(paths)["step"]
        assert paused_at < TRAIN_TOTAL - 2, "the pause must land before the last checkpoints"
        filler = fill(disk, leave=48 * 1024)  # room for a few journal lines and states, not a checkpoint
        try:
            client.request(paths, protocol.Unpause())
            assert _end(paths, 120) == "failed", paths.log.read_text()[-3000:]
            events = _assert_disk_full_record(paths)
            steps = [e.body.step for e in events if e.type == "step_ended"]  # type: ignore[union-attr]
            assert max(steps) < TRAIN_TOTAL
            wait_for(lambda: not engine_lock_held(paths), what="the engine's exit")
            paths.state.write_bytes(b"\x00" * 100)  # and damaged after the crash: rebuilt from the journal
            out = ftc("ls", "--json")
            row = json.loads(out.out)[0]
            assert row["status"] == "failed" and "rebuilt" in row["message"], row
        finally:
            filler.unlink()
        start_engine(paths, resume=True)
        assert _end(paths, 300) == "finished", paths.log.read_text()[-3000:]
        _journal_is_whole(paths)
        _assert_same_weights(paths, reference)


def test_sigterm_while_training_starts_stops_within_seconds_and_resumes_exactly(
    reference: list[Any], tiny_tf: Path, tiny_data: Path, sessions_root: Path
) -> None:
    paths = _train(sessions_root, tiny_tf, tiny_data)  # returns once the sockets serve: TF is loading
    pid = read_state(paths)["pid"]
    signalled = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), timeout=15, what="the engine to stop while starting")
    print(f"stopped {time.monotonic() - signalled:.1f}s after SIGTERM during start-up")
    state = read_state(paths)
    assert state["status"] == "stopped", state
    events = _journal_is_whole(paths)
    assert events[-1].type == "engine_stopped" and events[-1].body.status == "stopped"  # type: ignore[union-attr]
    start_engine(paths, resume=True)
    assert _end(paths, 300) == "finished", paths.log.read_text()[-3000:]
    _assert_same_weights(paths, reference)
