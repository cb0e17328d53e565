"""Creating sessions and starting their engine as a detached process.

The engine gets its own process session (``start_new_session``), stdin from /dev/null and
its output appended to the session's engine.log, so neither the launcher's death, SIGHUP
nor a dropped SSH connection reaches it.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.config import ConfigError, dump_toml, job_kind
from engine.jobs import validate
from engine.session import (
    LIVE_STATUSES,
    SessionError,
    SessionPaths,
    engine_lock_held,
    ensure_sessions_root,
    live_status,
    new_session_id,
    read_state,
    write_state,
)

START_TIMEOUT_S = 60.0


def create_session(
    root: Path,
    config: dict[str, Any],
    name: str | None = None,
    *,
    workers: int = 1,
    hosts: Sequence[str] | None = None,
) -> SessionPaths:
    """Make a new session folder with its config.toml and an initial state.json.

    A training group is said in state.json: ``workers`` (N local processes, the engine their
    chief) or ``hosts`` (every worker's host:port over several hosts, this host's first).
    """
    kind = job_kind(config)
    try:
        validate(kind, config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    ensure_sessions_root(root)
    while True:
        paths = SessionPaths(root / new_session_id(name or kind))
        if not paths.root.exists():
            break
    paths.create()
    paths.config.write_text(dump_toml(config), encoding="utf-8")
    os.chmod(paths.config, 0o600)
    group: dict[str, Any] = {}
    if hosts is not None and len(hosts) > 1:
        group = {"workers": len(hosts), "hosts": list(hosts)}
    elif workers > 1:
        group = {"workers": workers}
    if group and kind != "train":
        raise ConfigError(f"[job] kind is {kind!r}: only training runs on several workers")
    write_state(paths, status="new", job=kind, created=time.time(), step=0, name=name or kind, **group)
    return paths


def _engine_env() -> dict[str, str]:
    env = dict(os.environ)
    # The engine must import this checkout's packages even when started from elsewhere.
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_engine(
    paths: SessionPaths,
    *,
    resume: bool = False,
    checkpoint: str | None = None,
    force: bool = False,
    wait: bool = True,
    workers: int | None = None,
) -> int:
    """Start the session's engine detached; with wait, return once it serves its sockets.

    A resume of a finished session is refused (nothing is written) unless ``force``: then it runs
    again from its last (or the named) checkpoint. Raises SessionError with the engine log's last
    line if it dies while starting.
    """
    state = read_state(paths)
    if live_status(state) in LIVE_STATUSES or _lock_outlives(paths):
        raise SessionError(f"session {paths.id} already has a running engine (pid {state.get('pid')})")
    if (resume or checkpoint) and state.get("status") == "finished" and not force:
        raise SessionError(
            f"session {paths.id} finished at step {state.get('step', 0)}; nothing to resume "
            "(--force to run it again from its last checkpoint)"
        )
    if checkpoint:
        _check_checkpoint(paths, state, checkpoint)
    group = _group_change(paths, state, workers)
    try:
        write_state(paths, status="starting", pid=None, message="", **group)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise SessionError(
            f"no space left on device writing {paths.state}; free space, then ftc resume {paths.id}"
        ) from None
    with open(paths.log, "ab") as log:
        os.chmod(paths.log, 0o600)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine",
                str(paths.root),
                *(["--resume"] if resume or checkpoint else []),
                *(["--checkpoint", checkpoint] if checkpoint else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=_engine_env(),
            cwd=paths.root,
        )
    if not wait:
        return proc.pid
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = read_state(paths)
        if state.get("pid") == proc.pid and state.get("endpoints"):
            return proc.pid
        if proc.poll() is not None:
            state = read_state(paths)
            if state.get("pid") == proc.pid:  # it ran (and already ended): not a start failure
                return proc.pid
            raise SessionError(f"engine for {paths.id} exited while starting: {last_log_line(paths)}")
        time.sleep(0.05)
    raise SessionError(
        f"engine for {paths.id} did not come up within {START_TIMEOUT_S:.0f}s; see {paths.log}"
    )


def _group_change(paths: SessionPaths, state: dict[str, Any], workers: int | None) -> dict[str, Any]:
    """A resume's other number of local workers (the global batch stays: the data position is global)."""
    if workers is None or workers == int(state.get("workers") or 1):
        return {}
    if state.get("job") != "train":
        raise SessionError(
            f"session {paths.id} is a {state.get('job')} job; only training runs on several workers"
        )
    if state.get("hosts"):
        raise SessionError(
            f"session {paths.id} runs on {len(state['hosts'])} hosts; resume it without --workers "
            "and start the other hosts' workers again"
        )
    if workers < 1:
        raise SessionError(f"--workers {workers}: give 1 or more worker processes")
    return {"workers": workers}


def _check_checkpoint(paths: SessionPaths, state: dict[str, Any], name: str) -> None:
    """Refuse, before anything is written, a --checkpoint that names no intact checkpoint of this session."""
    job = state.get("job")
    if job not in ("train", "selftest"):
        raise SessionError(
            f"session {paths.id} is a {job} job and has no checkpoints; resume it without --checkpoint"
        )
    from engine.train import checkpoints as ck  # numpy, no TensorFlow: only when a checkpoint is named

    ck.verify_named(paths.checkpoints, name)


def _lock_outlives(paths: SessionPaths, grace_s: float = 5.0) -> bool:
    """True if an engine still holds the session's lock after a grace period.

    A killed engine's process shows as dead a moment before the kernel has closed all its
    threads' files (and so released the lock): give it that moment.
    """
    deadline = time.monotonic() + grace_s
    while engine_lock_held(paths):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)
    return False


def last_log_line(paths: SessionPaths) -> str:
    try:
        lines = [ln for ln in paths.log.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "no engine.log"
    return lines[-1] if lines else "engine.log is empty"
