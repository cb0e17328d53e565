"""The engine process: serves one session's command socket and event stream and hosts its job.

Run as ``python -m engine SESSION_DIR [--resume]`` (the launcher does this, detached).
Threads: the main thread runs the job; one I/O thread owns both ZeroMQ sockets (they are
not thread-safe), answers commands, publishes events and beats the heartbeat. Commands
only set flags on ``Control``; the job acts on them between steps.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import zmq

from engine import jobs, protocol
from engine.config import ConfigError, job_kind, load_toml
from engine.errors import ExitCode
from engine.jobs.base import Control, JobContext, StopRequested
from engine.journal import Journal
from engine.session import (
    SessionPaths,
    acquire_engine_lock,
    ensure_private_dir,
    process_identity,
    read_state,
    write_state,
)

HEARTBEAT_S = 1.0


class StateStore:
    """The engine's view of state.json; every write is atomic and serialised."""

    def __init__(self, paths: SessionPaths) -> None:
        self.paths = paths
        self._lock = threading.Lock()
        self.state: dict[str, Any] = read_state(paths)

    def update(self, **changes: Any) -> dict[str, Any]:
        with self._lock:
            self.state.update(changes, heartbeat=time.time())
            write_state(self.paths, **self.state)
            return dict(self.state)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.state)


class Engine:
    def __init__(self, paths: SessionPaths, resume: bool, resume_from: str | None = None) -> None:
        self.paths = paths
        self.resume = resume or resume_from is not None
        self.resume_from = resume_from
        self.config = load_toml(paths.config)
        self.kind = job_kind(self.config)
        self.control = Control()
        self.store = StateStore(paths)
        self.journal = Journal(paths.events, paths.id)
        self._outbox: queue.Queue[protocol.Envelope] = queue.Queue()
        self._io_done = threading.Event()
        self._zmq = zmq.Context()
        sock_dir = ensure_private_dir(paths.socket_dir())
        self.cmd_path = sock_dir / "cmd.sock"
        self.pub_path = sock_dir / "events.sock"
        for stale in (self.cmd_path, self.pub_path):
            stale.unlink(missing_ok=True)
        self.router = self._zmq.socket(zmq.ROUTER)
        self.router.bind(f"ipc://{self.cmd_path}")
        self.pub = self._zmq.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 100_000)
        self.pub.bind(f"ipc://{self.pub_path}")
        for path in (self.cmd_path, self.pub_path):
            os.chmod(path, 0o600)
        self._io = threading.Thread(target=self._serve, name="engine-io", daemon=True)

    # -------------------------------------------------------------- events

    def emit(self, body: protocol._Body, parent: str | None = None) -> protocol.Envelope:
        env = self.journal.append(body, parent=parent or self.control.cause)
        self._outbox.put(env)
        return env

    # -------------------------------------------------------------- I/O thread

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        next_beat = 0.0
        while True:
            self._flush_outbox()
            if self._io_done.is_set() and self._outbox.empty():
                return
            now = time.monotonic()
            if now >= next_beat:
                self.store.update()
                next_beat = now + HEARTBEAT_S
            for sock, _ in poller.poll(timeout=50):
                if sock is self.router:
                    self._answer(*self.router.recv_multipart())

    def _flush_outbox(self) -> None:
        while True:
            try:
                env = self._outbox.get_nowait()
            except queue.Empty:
                return
            self.pub.send(protocol.encode(env))

    def _answer(self, ident: bytes, *frames: bytes) -> None:
        raw = frames[-1] if frames else b""
        cmd: protocol.Envelope | None = None
        try:
            cmd = protocol.decode(raw, kinds=protocol.COMMANDS)
            if cmd.session != self.paths.id:
                raise protocol.ProtocolError(
                    "WrongSession", f"this engine serves session {self.paths.id}, not {cmd.session}", cmd.id
                )
            reply = protocol.Reply(status="ok", result=self._execute(cmd))
            parent: str | None = cmd.id
        except protocol.ProtocolError as exc:
            reply = protocol.Reply(status="error", error_name=exc.name, error_text=exc.text)
            parent = exc.parent
        except Exception as exc:  # a bug in a handler must not take the engine down
            reply = protocol.Reply(status="error", error_name=type(exc).__name__, error_text=str(exc))
            parent = cmd.id if cmd is not None else None
        env = protocol.make(reply, self.paths.id, parent=parent)
        self.router.send_multipart([ident, protocol.encode(env)])

    def _execute(self, cmd: protocol.Envelope) -> protocol.CommandResult:
        c = self.control
        if cmd.type == "pause":
            changed = c.pause(cmd.id)
        elif cmd.type == "unpause":
            changed = c.unpause(cmd.id)
        elif cmd.type == "checkpoint_now":
            c.request_checkpoint(cmd.id)
            changed = True
        elif cmd.type == "stop":
            changed = c.stop_reason is None
            c.request_stop("stop command", cmd.id)
        else:  # ping, status
            changed = False
        state = protocol.EngineState.model_validate(self.store.snapshot())
        return protocol.CommandResult(changed=changed, status=state.status, step=state.step, state=state)

    # -------------------------------------------------------------- lifecycle

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.control.request_stop(f"signal {signal.Signals(signum).name}")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped SSH session must not end training
        ident = process_identity(os.getpid())
        self.store.update(
            status="running",
            job=self.kind,
            endpoints={"commands": f"ipc://{self.cmd_path}", "events": f"ipc://{self.pub_path}"},
            started=time.time(),
            message="",
            **ident,
        )
        self._io.start()
        self.emit(
            protocol.EngineStarted(
                pid=ident["pid"], hostname=ident["hostname"], job=self.kind, resumed=self.resume
            )
        )
        ctx = JobContext(
            paths=self.paths,
            config=self.config,
            resume=self.resume,
            control=self.control,
            emit=self.emit,
            update_state=self.store.update,
            resume_from=self.resume_from,
        )
        step = int(self.store.snapshot().get("step", 0))
        code = 0
        try:
            summary = jobs.load(self.kind)(ctx)
            step = int(self.store.snapshot().get("step", step))
            self.emit(
                protocol.JobFinished(step=step, summary=protocol.JobSummary.model_validate(summary or {}))
            )
            status, reason = "finished", "job finished"
        except StopRequested as stop:
            step = int(self.store.snapshot().get("step", step))
            self.emit(protocol.JobStopped(step=step, reason=stop.reason), parent=self.control.stop_id)
            status, reason = "stopped", stop.reason
        except BaseException as exc:  # report every failure in the journal, then exit non-zero
            traceback.print_exc()
            step = int(self.store.snapshot().get("step", step))
            text = str(exc) or type(exc).__name__
            self.emit(protocol.JobFailed(step=step, error_name=type(exc).__name__, error_text=text))
            status, reason, code = "failed", f"{type(exc).__name__}: {text}", 1
        self.emit(protocol.EngineStopped(status=status, reason=reason))  # type: ignore[arg-type]
        self.store.update(status=status, message=reason, ended=time.time())
        self.shutdown()
        return code

    def shutdown(self) -> None:
        self._io_done.set()
        self._io.join(timeout=10)
        self.journal.close()
        # Give subscribers a moment to receive the final events before the sockets close.
        self.router.close(linger=0)
        self.pub.close(linger=500)
        self._zmq.term()
        for path in (self.cmd_path, self.pub_path):
            path.unlink(missing_ok=True)
        if self.paths.socket_dir_is_shared():
            with contextlib.suppress(OSError):
                self.cmd_path.parent.rmdir()


def _lock_session(paths: SessionPaths, grace_s: float = 1.0) -> bool:
    """Take the session's engine lock, kept (its descriptor open) until the process exits.

    A launcher checking whether an engine runs holds the lock for an instant: retry briefly
    so that check never turns a starting engine away; a serving engine holds it for good.
    """
    deadline = time.monotonic() + grace_s
    while acquire_engine_lock(paths) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Run one ftc session's engine.")
    parser.add_argument("session_dir", type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    parser.add_argument("--checkpoint", metavar="NAME", help="resume from this checkpoint (e.g. ckpt-1200)")
    args = parser.parse_args(argv)
    paths = SessionPaths(args.session_dir.resolve())
    if not _lock_session(paths):
        print(f"ftc engine: session {paths.id} is already served by another engine", file=sys.stderr)
        return ExitCode.BUSY
    try:
        engine = Engine(paths, args.resume, args.checkpoint)
    except (ConfigError, zmq.ZMQError, OSError) as exc:
        print(f"ftc engine: cannot start session {paths.id}: {exc}", file=sys.stderr)
        write_state(paths, status="failed", message=f"engine could not start: {exc}", ended=time.time())
        return ExitCode.BAD_INPUT
    return engine.run()
