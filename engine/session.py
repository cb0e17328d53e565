"""The session folder: its layout, atomic state writes, ids, listing and live status.

A session is a folder under the sessions directory (``./sessions`` by default,
``--sessions-dir`` or ``FTC_SESSIONS_DIR``). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import FtcError, SessionError
from engine.fsio import atomic_write_bytes, atomic_write_json

# A heartbeat older than this, from an engine on another host, counts as crashed.
STALE_AFTER_S = 30.0
# The statuses an engine can still be in; a dead pid in one of these means "crashed".
LIVE_STATUSES = frozenset({"starting", "running", "paused", "stopping"})
ENDED_STATUSES = frozenset({"finished", "failed", "stopped"})
# Unix socket paths are limited to ~107 bytes (sun_path); leave room for "ipc://".
IPC_PATH_MAX = 100


def sessions_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the sessions directory: explicit value, then FTC_SESSIONS_DIR, then ./sessions."""
    value = explicit or os.environ.get("FTC_SESSIONS_DIR") or "sessions"
    return Path(value).expanduser().resolve()


def ensure_private_dir(path: Path) -> Path:
    """Create a directory readable only by its owner (0700), tightening an existing one.

    Only for folders ftc owns (a session and its subfolders, the socket folder); the sessions
    folder itself may be the user's: see ``ensure_sessions_root``.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def ensure_sessions_root(root: Path) -> Path:
    """The sessions folder: created private (0700) when missing; an existing one keeps its permissions."""
    try:
        root.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        if not root.is_dir():
            raise SessionError(f"{root}: sessions folder is a file; give --sessions-dir a folder") from None
    return root


def private_runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/ftc-<uid>`` (else in the temp dir), 0700 and verified to be this user's own.

    The temp dir is shared: another user could create the folder first, or a symlink in its
    place, to read or hijack the sockets. Refuse anything not a real directory owned by us.
    """
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"ftc-{os.getuid()}"
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise SessionError(
            f"{base}: not a directory owned by you; remove it or set XDG_RUNTIME_DIR to a private folder"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(base, 0o700)
    return base


def acquire_engine_lock(paths: SessionPaths) -> int | None:
    """Take the session's engine lock (held until the process exits); None if an engine holds it.

    A lock, not the pid in state.json, decides who serves a session: two 'ftc resume' at once
    would otherwise start two engines that share one journal.
    """
    fd = os.open(paths.root / "engine.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def engine_lock_held(paths: SessionPaths) -> bool:
    """True while some engine process holds the session's lock."""
    if not (paths.root / "engine.lock").exists():
        return False
    fd = acquire_engine_lock(paths)
    if fd is None:
        return True
    os.close(fd)  # closing releases it
    return False


def new_session_id(name: str | None = None) -> str:
    """A sortable, readable, unique id: ``20261123-104600-my-run-3f2a``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9]+", "-", (name or "run").lower()).strip("-")[:32] or "run"
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class SessionPaths:
    """Where everything of one session lives."""

    root: Path

    @property
    def id(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "engine.log"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    def socket_dir(self) -> Path:
        """A 0700 directory for the ipc sockets, short enough for the sun_path limit."""
        local = self.root / "run"
        if len(f"{local}/cmd.sock") <= IPC_PATH_MAX:
            return local
        # The session path is too long for an ipc:// socket: use a private runtime folder, one
        # subfolder per session keyed on its full path (ids alone may repeat across sessions folders).
        base = private_runtime_dir()
        return base / hashlib.sha256(str(self.root).encode()).hexdigest()[:20]

    def socket_dir_is_shared(self) -> bool:
        """True when the sockets live outside the session folder (and so must be removed at exit)."""
        return self.socket_dir().parent != self.root

    def create(self) -> None:
        ensure_private_dir(self.root)
        for sub in (self.data, self.checkpoints, self.model, self.predictions, self.tensorboard):
            ensure_private_dir(sub)


def _load_state(paths: SessionPaths) -> tuple[dict[str, Any] | None, str]:
    """state.json as a dict, or (None, what is wrong with it); ({}, "") for a session never written."""
    try:
        state = json.loads(paths.state.read_bytes())
    except FileNotFoundError:
        # A session whose engine never started has no journal either: nothing to rebuild.
        return ({}, "") if not paths.events.exists() else (None, "is missing")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"is not valid JSON ({str(exc)[:80]})"
    except OSError as exc:
        raise SessionError(
            f"{paths.state}: cannot be read ({exc.strerror}); check its owner and permissions"
        ) from None
    if not isinstance(state, dict):
        return None, "is not a JSON object"
    return state, ""


def read_state(paths: SessionPaths) -> dict[str, Any]:
    """The session's state.json, or an empty dict if it has none yet.

    A damaged or missing state.json is rebuilt from the journal and the checkpoints (see
    ``recover_state``); one that cannot be rebuilt raises SessionError saying what to delete.
    """
    state, problem = _load_state(paths)
    if state is not None:
        return state
    return recover_state(paths, problem)


def recover_state(paths: SessionPaths, problem: str) -> dict[str, Any]:
    """Rebuild a damaged state.json from events.jsonl and checkpoints/, and write it back atomically.

    The damaged file is kept beside it (``state.json.damaged-<time>``). While an engine serves the
    session (it holds the lock and rewrites state.json from memory within a second) nothing is
    written: the rebuilt state is only returned. The status of a session whose engine is not alive
    is never a live one: an engine that started and left no end is ``crashed``.
    """
    lock = _lock_or_repaired(paths) if paths.root.is_dir() else None
    if isinstance(lock, dict):
        return lock  # the engine rewrote state.json meanwhile
    try:
        if lock is not None:
            again, problem_now = _load_state(paths)  # another reader may have rebuilt it meanwhile
            if again is not None:
                return again
            problem = problem_now or problem
        # Whoever holds the lock (an engine, or another reader rebuilding) owns the file: only look.
        state = rebuild_state(paths, problem, live=lock is None)
        if lock is not None:
            state["message"] = f"state.json {problem}; rebuilt from the journal and checkpoints"
            try:
                _write_rebuilt(paths, state)
            except OSError as exc:  # a full or read-only disk: the rebuilt view still serves this reader
                state["message"] += f" (not written back: {exc.strerror or exc})"
        return state
    finally:
        if lock is not None:
            os.close(lock)


def _lock_or_repaired(paths: SessionPaths, grace_s: float = 2.0) -> int | dict[str, Any] | None:
    """The session's lock, or the state an engine wrote meanwhile, or None (a live engine holds the lock).

    A serving engine rewrites state.json within a heartbeat; an engine that just ended keeps its
    lock a moment longer while its threads wind down: both are worth a short wait.
    """
    deadline = time.monotonic() + grace_s
    while True:
        fd = acquire_engine_lock(paths)
        if fd is not None:
            return fd
        state, _ = _load_state(paths)
        if state is not None:
            return state
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _write_rebuilt(paths: SessionPaths, state: dict[str, Any]) -> None:
    """Keep the damaged file beside (``state.json.damaged-<time>``), then write the rebuilt one atomically."""
    if paths.state.exists():
        kept = paths.root / f"state.json.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        n = 1
        while kept.exists():
            n += 1
            kept = kept.with_name(f"{kept.name.split('~')[0]}~{n}")
        atomic_write_bytes(kept, paths.state.read_bytes())
        state["message"] += f" (the damaged file is kept as {kept.name})"
    atomic_write_json(paths.state, state)


def _checkpoint_steps(paths: SessionPaths) -> list[int]:
    """Steps of the complete checkpoints (a COMPLETE marker), oldest first; no TensorFlow, no numpy."""
    if not paths.checkpoints.is_dir():
        return []
    steps = []
    for p in paths.checkpoints.iterdir():
        number = p.name[5:]
        if p.name.startswith("ckpt-") and number.isdigit() and (p / "COMPLETE").is_file():
            steps.append(int(number))
    return sorted(steps)


def rebuild_state(paths: SessionPaths, problem: str = "is damaged", *, live: bool = False) -> dict[str, Any]:
    """What state.json said, as far as the journal, config.toml and checkpoints tell (nothing is written).

    Raises SessionError naming what to delete when there is too little left to tell.
    """
    from engine import protocol
    from engine.config import job_kind, load_toml
    from engine.journal import JournalReader

    events = list(JournalReader(paths.events).read_new())
    steps = _checkpoint_steps(paths)
    journal_size = paths.events.stat().st_size if paths.events.exists() else 0
    if not events and journal_size and not steps:
        raise SessionError(
            f"session {paths.id}: state.json {problem} and events.jsonl holds no readable event, so the "
            f"state cannot be rebuilt; delete the folder {paths.root} (nothing in it can be resumed)"
        )
    state: dict[str, Any] = {"status": "new" if not events else "crashed", "step": 0}
    try:
        state["job"] = job_kind(load_toml(paths.config))
    except (FtcError, OSError):
        state["job"] = None
    try:
        state["created"] = paths.config.stat().st_mtime
    except OSError:
        state["created"] = events[0].ts if events else None
    parts = paths.id.split("-", 2)
    state["name"] = parts[2].rsplit("-", 1)[0] if len(parts) == 3 and "-" in parts[2] else paths.id
    ended = False
    for env in events:
        body = env.body
        state["heartbeat"] = env.ts
        step = getattr(body, "step", None)
        if isinstance(step, int) and not isinstance(body, protocol.CheckpointSaved):
            state["step"] = step
        total = getattr(body, "total_steps", None)
        if isinstance(total, int):
            state["total_steps"] = total
        if isinstance(body, protocol.EngineStarted):
            ended = False
            state.update(status="running", pid=body.pid, hostname=body.hostname, started=env.ts, ended=None)
            state["job"] = state["job"] or body.job
        elif isinstance(body, protocol.Paused):
            state["status"] = "paused"
        elif isinstance(body, protocol.Unpaused):
            state["status"] = "running"
        elif isinstance(body, protocol.CheckpointSaved):
            state.update(last_checkpoint=body.path, last_checkpoint_step=body.step)
        elif isinstance(body, protocol.JobFinished):
            state.update(status="finished", message="job finished")
            if body.summary.best_metric is not None:
                state.update(
                    best_metric=body.summary.best_metric, best_metric_name=body.summary.best_metric_name
                )
        elif isinstance(body, protocol.JobFailed):
            state.update(status="failed", message=f"{body.error_name}: {body.error_text}")
        elif isinstance(body, protocol.JobStopped):
            state.update(status="stopped", message=body.reason)
        elif isinstance(body, protocol.EngineStopped):
            ended = True
            state.update(status=body.status, message=body.reason, ended=env.ts)
    if state["job"] is None:
        raise SessionError(
            f"session {paths.id}: state.json {problem} and neither config.toml nor the journal names the "
            f"job, so the state cannot be rebuilt; delete the folder {paths.root}"
        )
    if steps:
        last = paths.checkpoints / f"ckpt-{steps[-1]}"
        state.update(last_checkpoint=str(last), last_checkpoint_step=steps[-1])
        if not events:  # the journal is gone but the checkpoints are not: a stopped session that resumes
            state.update(status="stopped", step=steps[-1])
    pid = state.get("pid")
    live = live and not ended and pid_alive(pid) and state.get("hostname") in (None, socket.gethostname())
    if live:
        state.update(pid_start=_proc_start_time(pid) if pid else None, heartbeat=time.time())
        sock = paths.socket_dir()
        state["endpoints"] = {"commands": f"ipc://{sock}/cmd.sock", "events": f"ipc://{sock}/events.sock"}
        if state["status"] not in LIVE_STATUSES:
            state["status"] = "running"
    elif state["status"] in LIVE_STATUSES:
        state["status"] = "crashed"  # an engine that left no end and is not alive: never "running"
        state["pid"] = None
    return state


def write_state(paths: SessionPaths, **updates: Any) -> dict[str, Any]:
    """Merge updates into state.json atomically and return the new state."""
    state = read_state(paths)
    state.update(updates)
    atomic_write_json(paths.state, state)
    return state


def _proc_start_time(pid: int) -> str | None:
    """The process start time from /proc (guards against pid reuse); None where unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int | None, start_time: str | None = None) -> bool:
    """Whether this pid is a live (not zombie) process, and the same process if start_time is given."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the kill probe is all we have
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return False
    return start_time is None or fields[19] == start_time


def process_identity(pid: int) -> dict[str, Any]:
    return {"pid": pid, "pid_start": _proc_start_time(pid), "hostname": socket.gethostname()}


def live_status(state: dict[str, Any], now: float | None = None) -> str:
    """The status to show: the recorded one, or ``crashed`` if its engine is gone without a clean end."""
    status = state.get("status", "new")
    if status not in LIVE_STATUSES:
        return status
    now = time.time() if now is None else now
    if state.get("hostname") not in (None, socket.gethostname()):
        stale = now - float(state.get("heartbeat", 0)) > STALE_AFTER_S
        return "crashed" if stale else status
    if pid_alive(state.get("pid"), state.get("pid_start")):
        return status
    return "crashed"


@dataclass(frozen=True)
class SessionInfo:
    """One row of ``ftc ls`` and the sessions screen."""

    id: str
    path: Path
    status: str
    job: str
    step: int
    total_steps: int | None
    best_metric: float | None
    best_metric_name: str | None
    heartbeat: float | None
    created: float | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "status": self.status,
            "job": self.job,
            "step": self.step,
            "total_steps": self.total_steps,
            "best_metric": self.best_metric,
            "best_metric_name": self.best_metric_name,
            "heartbeat": self.heartbeat,
            "created": self.created,
            "message": self.message,
        }


def session_info(paths: SessionPaths) -> SessionInfo:
    try:
        state = read_state(paths)
        status = live_status(state)
    except SessionError as exc:
        state, status = {"message": str(exc)}, "damaged"
    return SessionInfo(
        id=paths.id,
        path=paths.root,
        status=status,
        job=str(state.get("job", "?")),
        step=int(state.get("step", 0)),
        total_steps=state.get("total_steps"),
        best_metric=state.get("best_metric"),
        best_metric_name=state.get("best_metric_name"),
        heartbeat=state.get("heartbeat"),
        created=state.get("created"),
        message=str(state.get("message", "")),
    )


def list_sessions(root: Path) -> list[SessionInfo]:
    """Every session under root, newest first."""
    if not root.is_dir():
        return []
    found = [
        session_info(SessionPaths(p))
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "config.toml").exists()
    ]
    return sorted(found, key=lambda s: s.id, reverse=True)


def resolve(root: Path, ref: str) -> SessionPaths:
    """Find a session by id, unique id prefix or path; raise SessionError with what to do otherwise."""
    if not ref.strip() or ref.strip() in (".", ".."):
        raise SessionError(f"no session given ({ref!r}); give a session id or a unique prefix from 'ftc ls'")
    as_path = Path(ref).expanduser()
    if as_path.is_dir() and (as_path / "config.toml").exists():
        return SessionPaths(as_path.resolve())
    exact = root / ref
    if exact.is_dir() and (exact / "config.toml").exists():
        return SessionPaths(exact)
    for folder in (exact, as_path):
        if folder.is_dir() and ((folder / "state.json").exists() or (folder / "events.jsonl").exists()):
            raise SessionError(
                f"{folder}: has no config.toml, so it cannot be used as a session; restore config.toml "
                "from a copy, or delete the folder"
            )
    matches = [s for s in list_sessions(root) if s.id.startswith(ref) or s.id.endswith(ref)]
    if len(matches) == 1:
        return SessionPaths(matches[0].path)
    if not matches:
        raise SessionError(f"no session {ref!r} in {root}; run 'ftc ls' to see the sessions there")
    names = ", ".join(m.id for m in matches[:5])
    raise SessionError(f"session {ref!r} is ambiguous in {root} ({names}); give more of its id")
