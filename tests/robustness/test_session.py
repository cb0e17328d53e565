"""Corpus: sessions that cannot be resumed, attached, stopped or paused as asked.

Each case builds a sessions folder (no engine is started), runs one ``ftc`` command in-process
and asserts a clear refusal: exit 2, one line naming the session, file or checkpoint, no
traceback, and every file byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import protocol
from engine.launcher import create_session
from engine.session import SessionPaths, write_state
from tests.conftest import selftest_config
from tests.robustness.harness import Files, ftc, refused


def _session(root: Path, name: str = "run", **state: object) -> SessionPaths:
    paths = create_session(root, selftest_config(steps=20), name=name)
    if state:
        write_state(paths, **state)
    return paths


def _checkpoint(paths: SessionPaths, step: int, complete: bool = True) -> None:
    folder = paths.checkpoints / f"ckpt-{step}"
    folder.mkdir(parents=True)
    data = json.dumps({"step": step}).encode()
    (folder / "selftest.json").write_bytes(data)
    if complete:
        sums = {"selftest.json": hashlib.sha256(data).hexdigest()}
        marker = {"step": step, "files": ["selftest.json"], "sha256": sums}
        (folder / "COMPLETE").write_text(json.dumps(marker))


def _journal(paths: SessionPaths, *bodies: protocol._Body) -> None:
    with open(paths.events, "wb") as fh:
        for seq, body in enumerate(bodies, 1):
            fh.write(protocol.encode(protocol.make(body, paths.id, seq=seq)) + b"\n")


# Each builder makes the folder and returns (argv after 'ftc', fragments the one line must name).
Case = Callable[[Path], tuple[list[str], list[str]]]


def unknown_for_resume(root: Path) -> tuple[list[str], list[str]]:
    _session(root)
    return ["resume", "no-such-run"], ["no-such-run", "ftc ls"]


def unknown_for_attach(root: Path) -> tuple[list[str], list[str]]:
    _session(root)
    return ["attach", "nope"], ["nope", "ftc ls"]


def unknown_for_stop(root: Path) -> tuple[list[str], list[str]]:
    return ["stop", "20991231-000000-ghost-0000"], ["20991231-000000-ghost-0000"]


def ambiguous_prefix_for_pause(root: Path) -> tuple[list[str], list[str]]:
    a = _session(root, "first")
    _session(root, "second")
    prefix = a.id[:8]  # the date both ids start with
    return ["pause", prefix], [prefix, "ambiguous"]


def empty_session_id(root: Path) -> tuple[list[str], list[str]]:
    _session(root)  # with one session, an empty prefix would otherwise match it
    return ["stop", ""], ["no session given"]


def finished_without_force(root: Path) -> tuple[list[str], list[str]]:
    paths = _session(root, status="finished", step=20, total_steps=20)
    _checkpoint(paths, 20)
    return ["resume", paths.id], [paths.id, "finished at step 20", "--force"]


def damaged_state_and_journal(root: Path) -> tuple[list[str], list[str]]:
    paths = _session(root)
    paths.state.write_bytes(b'{"status": "runn')  # cut short
    paths.events.write_bytes(b"\x00\x00garbage that is no event\n")
    return ["resume", paths.id], ["state.json", "events.jsonl", "delete the folder"]


def damaged_state_for_stop(root: Path) -> tuple[list[str], list[str]]:
    paths = _session(root)
    paths.state.write_text("[1, 2, 3]\n")  # JSON, but not a state
    paths.events.write_text("not json\n")
    return ["stop", paths.id], ["state.json", "delete the folder"]


def folder_without_config(root: Path) -> tuple[list[str], list[str]]:
    paths = _session(root, status="stopped", step=5)
    paths.config.unlink()
    return ["resume", str(paths.root)], [paths.root.name, "config.toml"]


def id_of_folder_without_config(root: Path) -> tuple[list[str], list[str]]:
    paths = _session(root, status="stopped", step=5)
    paths.config.unlink()
    return ["attach", paths.id], [paths.id, "config.toml"]


def missing_checkpoint(root: Path) -> tuple[list[str], list[str]]:
    paths = _session(root, status="stopped", step=6)
    _checkpoint(paths, 3)
    _checkpoint(paths, 6)
    return ["resume", paths.id, "--checkpoint", "ckpt-99"], ["ckpt-99", "ckpt-3"]


def incomplete_checkpoint(root: Path) -> tuple[list[str], list[str]]:
    paths = _session(root, status="stopped", step=6)
    _checkpoint(paths, 3)
    _checkpoint(paths, 6, complete=False)  # cut short before its marker
    return ["resume", paths.id, "--checkpoint", "ckpt-6"], ["ckpt-6", "COMPLETE"]


def checkpoint_of_a_prediction(root: Path) -> tuple[list[str], list[str]]:
    paths = _session(root, status="stopped", step=6, job="predict")
    return ["resume", paths.id, "--checkpoint", "ckpt-1"], [paths.id, "no checkpoints"]


def pause_a_stopped_session(root: Path) -> tuple[list[str], list[str]]:
    paths = _session(root, status="stopped", step=6)
    return ["pause", paths.id], [paths.id, "no running engine", "ftc resume"]


def unpause_a_crashed_session(root: Path) -> tuple[list[str], list[str]]:
    # An engine that died without a clean end: its pid names no process (pid_start never matches).
    paths = _session(root, status="running", step=6, pid=os.getpid(), pid_start="0")
    return ["unpause", paths.id], [paths.id, "crashed", "ftc resume"]


def resume_a_running_session(root: Path) -> tuple[list[str], list[str]]:
    # A sleeping process plays the engine: alive, on this host (the fixture's cleanup kills it).
    from engine.session import process_identity

    stand_in = subprocess.Popen(["sleep", "60"])
    paths = _session(root, status="running", step=6, **process_identity(stand_in.pid))
    return ["resume", paths.id], [paths.id, "already has a running engine"]


def checkpoint_command_on_a_finished_session(root: Path) -> tuple[list[str], list[str]]:
    paths = _session(root, status="finished", step=20)
    _journal(paths, protocol.EngineStopped(status="finished", reason="job finished"))
    return ["checkpoint", paths.id], [paths.id, "status: finished"]


CASES: list[Case] = [
    unknown_for_resume,
    unknown_for_attach,
    unknown_for_stop,
    ambiguous_prefix_for_pause,
    empty_session_id,
    finished_without_force,
    damaged_state_and_journal,
    damaged_state_for_stop,
    folder_without_config,
    id_of_folder_without_config,
    missing_checkpoint,
    incomplete_checkpoint,
    checkpoint_of_a_prediction,
    pause_a_stopped_session,
    unpause_a_crashed_session,
    resume_a_running_session,
    checkpoint_command_on_a_finished_session,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_session_command_is_refused_clearly_and_changes_nothing(case: Case, sessions_root: Path) -> None:
    argv, names = case(sessions_root)
    before = Files(sessions_root)
    out = ftc(*argv)
    refused(out, *names)
    before.assert_unchanged()
