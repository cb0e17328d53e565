"""The engine process: serves one session's command socket and event stream and hosts its job.

Run as ``python -m engine SESSION_DIR [--resume]`` (the launcher does this, detached).
Threads: the main thread runs the job; one I/O thread owns both ZeroMQ sockets (they are
not thread-safe), answers commands, publishes events and beats the heartbeat; one thread
waits for SIGTERM/SIGINT. Commands only set flags on ``Control``; the job acts on them
between steps.

What a person can rely on:

- state.json is the engine's own: it is held in memory and rewritten whole, so a damaged or
  deleted file is simply written again at the next heartbeat.
- Every command gets exactly one reply: ``ok``, an error naming the field, or ``Busy`` (retry)
  when a client sends faster than it reads. Errors never echo a huge field nor an exception
  class; the details go to engine.log.
- A deleted socket folder is recreated (the sockets are bound again) within a heartbeat.
- A full disk ends the job with one clear record (journal and state): a reserve file, made
  at start and released on that failure, leaves room for it.
- state.json says the final status before the last events are published.
- A stop signal before the job's first step interrupts its start-up; a second one ends the
  engine at once, state ``stopped``.
- A training group (state.json ``workers`` > 1, or ``hosts``): this engine is its chief and
  starts the other local workers (engine.train.workers). A lost worker ends the job with state
  ``crashed``, naming it; ``ftc resume`` restarts the group.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import os
import queue
import re
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from engine import jobs, protocol
from engine.config import job_kind, load_toml
from engine.errors import ExitCode, FtcError, full_disk
from engine.fsio import atomic_write_json
from engine.jobs.base import Control, JobContext, Phases, StartupInterrupted, StopRequested
from engine.journal import Journal
from engine.journal import appending as journal_appending
from engine.resources import Sampler
from engine.session import (
    ENDED_STATUSES,
    SessionPaths,
    acquire_engine_lock,
    ensure_private_dir,
    process_identity,
    read_state,
)
from engine.train.cluster import WorkerLost, session_group

HEARTBEAT_S = 1.0


def resume_step(resume_from: str | None, state: dict[str, Any]) -> int | None:
    """The step a resume starts from, before its job loads the checkpoint: the one named, or the last."""
    if resume_from:
        named = re.fullmatch(r"ckpt-(\d+)", Path(resume_from).name)
        return int(named.group(1)) if named else None
    step = state.get("last_checkpoint_step")
    return step if isinstance(step, int) else None


# Room kept on the session's disk for the final record (journal lines and state.json) after a full disk.
RESERVE_BYTES = 256 * 1024
# A command is a few hundred bytes: anything far larger is refused unread.
MAX_COMMAND_BYTES = 64 * 1024
# Replies queued in ZeroMQ for one client before the engine keeps them itself (the tests lower both).
REPLY_HWM = int(os.environ.get("FTC_ENGINE_REPLY_HWM", "20000"))
# Replies the engine keeps for a client that does not read them; past this, its commands are answered Busy.
PENDING_REPLIES_MAX = int(os.environ.get("FTC_ENGINE_PENDING_REPLIES", "10000"))
# Commands answered per I/O loop turn, so events and heartbeats go on during a burst.
COMMANDS_PER_TURN = 500
ERROR_TEXT_MAX = 300


def no_space(exc: BaseException) -> str | None:
    """The path a full disk (or quota) stopped a write to, '' if unknown; None if exc is not that."""
    full = full_disk(exc)
    return None if full is None else str(full.filename or "")


def log(text: str) -> None:
    """A line for engine.log; a full disk there must not turn into a second failure."""
    with contextlib.suppress(OSError, ValueError):
        print(f"ftc engine: {text}", file=sys.stderr, flush=True)


def log_traceback() -> None:
    with contextlib.suppress(OSError, ValueError):
        traceback.print_exc()


def disk_full_text(path: str, session: SessionPaths) -> str:
    return f"no space left on device writing {path or session.root}; free space, then ftc resume {session.id}"


class SpaceReserve:
    """A file of RESERVE_BYTES in the session folder, released when the disk is full to write the end."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def hold(self) -> None:
        """Make (or keep) the reserve; OSError (ENOSPC) if the disk has not even that much room."""
        if self.path.exists() and self.path.stat().st_size >= RESERVE_BYTES:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                block = b"\0" * RESERVE_BYTES
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.release()
            raise OSError(exc.errno or 0, exc.strerror or str(exc), str(self.path)) from None

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


class StateStore:
    """The engine's state.json: held in memory and rewritten whole (atomically) on every change.

    The file is never read back, so one damaged or deleted on disk is rewritten at the next
    update (a heartbeat, within a second) and the job never sees it. After ``close`` (the final
    status is written) later updates only change the heartbeat in memory.
    """

    def __init__(self, paths: SessionPaths) -> None:
        self.paths = paths
        self._lock = threading.RLock()  # re-entrant: a signal's hurried end may come in on any thread
        try:
            self.state: dict[str, Any] = read_state(paths)
        except FtcError as exc:  # cannot be rebuilt: start over, saying so
            log(f"warning: {exc}")
            self.state = {"message": str(exc)}
        self.closed = False

    def update(self, **changes: Any) -> dict[str, Any]:
        with self._lock:
            if self.closed:
                return dict(self.state)
            self.state.update(changes, heartbeat=time.time())
            self._write()
            return dict(self.state)

    def _write(self) -> None:
        try:
            atomic_write_json(self.paths.state, self.state)
        except OSError as exc:
            raise OSError(exc.errno or 0, exc.strerror or str(exc), str(self.paths.state)) from exc

    def final(self, **changes: Any) -> bool:
        """Write the final status once (False if it was already written), then hold the file."""
        with self._lock:
            if self.closed:
                return False
            self.state.update(changes, heartbeat=time.time())
            try:
                self._write()
            finally:
                self.closed = True
            return True

    def hurried(self, status: str, message: str, timeout: float = 2.0) -> None:
        """The final state from another thread than the job's: waits a little for a write in flight."""
        got = self._lock.acquire(timeout=timeout)
        try:
            if self.closed or self.state.get("status") in ENDED_STATUSES:
                return
            self.state.update(status=status, message=message, ended=time.time(), heartbeat=time.time())
            with contextlib.suppress(OSError):
                self._write()
            self.closed = True
        finally:
            if got:
                self._lock.release()

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
        self.reserve = SpaceReserve(paths.root / ".space-reserve")
        self.reserve.hold()
        self.store = StateStore(paths)
        # The training group this engine is the chief of (None: one process); ports are picked now.
        self.cluster = session_group(self.store.snapshot()) if self.kind == "train" else None
        self.journal = Journal(paths.events, paths.id)
        self.phases = Phases(self.emit)  # what the job does; a pause or stop is said here at once
        self.hardware: dict[str, str] = {}  # the job's device and precision, once it knows them
        self.sampler = Sampler(
            self.emit,
            log,
            describe=lambda: {"device": "CPU", **self.hardware},
            skip=lambda: self.control.stop_reason is not None,
        )
        self._outbox: queue.Queue[protocol.Envelope] = queue.Queue()
        self._io_done = threading.Event()
        self._zmq = zmq.Context()
        # Replies a client has not read yet (its pipe is full), per client, in order.
        self._pending: dict[bytes, deque[bytes]] = {}
        self.sock_dir = paths.socket_dir()
        self.cmd_path = self.sock_dir / "cmd.sock"
        self.pub_path = self.sock_dir / "events.sock"
        self.router = self._zmq.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full pipe says so instead of dropping a reply
        self.router.setsockopt(zmq.SNDHWM, REPLY_HWM)
        self.router.setsockopt(zmq.LINGER, 0)
        self.pub = self._zmq.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 100_000)
        self._bound = False
        self._bind()
        self._io = threading.Thread(target=self._serve, name="engine-io", daemon=True)
        self.finished = threading.Event()  # the final state and events are written
        self.in_job = False  # the job's function is running (a first stop signal may interrupt its start-up)
        self.interrupt: Callable[[str], None] | None = None  # stops the job's start-up (SignalWatcher)

    def _bind(self) -> None:
        """Bind both sockets in a private folder (at start, and again where one was deleted).

        Binding again adds a listener on the same path and keeps the clients already connected
        (an unbind would drop them, and the replies they wait for).
        """
        ensure_private_dir(self.sock_dir)
        for sock, path in ((self.router, self.cmd_path), (self.pub, self.pub_path)):
            if path.exists() and self._bound:
                continue
            path.unlink(missing_ok=True)
            sock.bind(f"ipc://{path}")
            os.chmod(path, 0o600)
        self._bound = True

    def _sockets_gone(self) -> bool:
        return not (self.cmd_path.exists() and self.pub_path.exists())

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
            try:
                self._flush_outbox()
                self._flush_replies()
                if self._io_done.is_set() and self._outbox.empty():
                    return
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + HEARTBEAT_S
                    self._beat()
                wait = 5 if self._pending else 50
                if dict(poller.poll(timeout=wait)).get(self.router):
                    self._read_commands()
            except Exception:  # the I/O thread must outlive any bug: log it and go on
                log_traceback()
                time.sleep(0.05)

    def _beat(self) -> None:
        try:
            self.store.update()
        except OSError as exc:
            if no_space(exc) is not None:
                self.control.fail(exc)  # the job ends with the full disk's record at its next boundary
            else:
                log_traceback()
        if self._sockets_gone():
            try:
                self._bind()
            except (OSError, zmq.ZMQError) as exc:
                log(f"cannot recreate the sockets in {self.sock_dir}: {exc}")
                return
            text = f"the socket folder {self.sock_dir} was deleted; recreated it (control works again)"
            log(f"warning: {text}")
            with contextlib.suppress(OSError):
                self.emit(protocol.LogRecorded(level="warning", text=text))

    def _flush_outbox(self) -> None:
        while True:
            try:
                env = self._outbox.get_nowait()
            except queue.Empty:
                return
            self.pub.send(protocol.encode(env))

    def _read_commands(self) -> None:
        for _ in range(COMMANDS_PER_TURN):
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            ident, raw = frames[0], frames[-1] if len(frames) > 1 else b""
            self._send(ident, self._answer(ident, raw))

    def _send(self, ident: bytes, data: bytes) -> None:
        """Send a reply, or keep it (in order) for a client whose pipe is full; a gone client's is dropped."""
        waiting = self._pending.get(ident)
        if waiting:
            waiting.append(data)
            return
        try:
            self.router.send_multipart([ident, data], zmq.NOBLOCK)
        except zmq.Again:
            self._pending.setdefault(ident, deque()).append(data)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:  # the client went away: nobody to answer
                raise

    def _flush_replies(self) -> None:
        for ident in list(self._pending):
            waiting = self._pending[ident]
            while waiting:
                try:
                    self.router.send_multipart([ident, waiting[0]], zmq.NOBLOCK)
                except zmq.Again:
                    break
                except zmq.ZMQError as exc:
                    if exc.errno != zmq.EHOSTUNREACH:
                        raise
                    waiting.clear()
                    break
                waiting.popleft()
            if not waiting:
                del self._pending[ident]

    def _answer(self, ident: bytes, raw: bytes) -> bytes:
        """The one reply to one command: ok, a protocol error naming the field, Busy or InternalError."""
        cmd: protocol.Envelope | None = None
        parent: str | None = None
        try:
            if len(raw) > MAX_COMMAND_BYTES:
                raise protocol.ProtocolError(
                    "MessageTooLarge", f"a command of {len(raw)} bytes; the limit is {MAX_COMMAND_BYTES}"
                )
            cmd = protocol.decode(raw, kinds=protocol.COMMANDS)
            if len(cmd.id) > 64:
                raise protocol.ProtocolError(
                    "InvalidMessage", f"field 'id': {len(cmd.id)} characters; at most 64"
                )
            parent = cmd.id
            if cmd.session != self.paths.id:
                raise protocol.ProtocolError(
                    "WrongSession",
                    f"field 'session': this engine serves session {self.paths.id}, "
                    f"not {protocol.clip(cmd.session)}",
                    cmd.id,
                )
            if len(self._pending.get(ident, ())) >= PENDING_REPLIES_MAX:
                raise protocol.ProtocolError(
                    "Busy",
                    f"{len(self._pending[ident])} replies wait for this client to read them; "
                    f"{cmd.type} was not done: read the replies, then retry",
                    cmd.id,
                )
            reply = protocol.Reply(status="ok", result=self._execute(cmd))
        except protocol.ProtocolError as exc:
            reply = protocol.Reply(status="error", error_name=exc.name, error_text=_short(exc.text))
            parent = exc.parent
        except Exception:  # a bug in a handler must not take the engine down, nor show its insides
            log_traceback()
            reply = protocol.Reply(
                status="error",
                error_name="InternalError",
                error_text=f"the engine could not carry out this command; see {self.paths.log}",
            )
        return protocol.encode(protocol.make(reply, self.paths.id, parent=parent))

    def _execute(self, cmd: protocol.Envelope) -> protocol.CommandResult:
        c = self.control

        def answer(body: protocol._Body) -> protocol.Envelope:
            return self.emit(body, parent=cmd.id)

        if cmd.type == "pause":
            changed = c.pause(cmd.id)
            if changed and self.in_job:
                self.phases.notice("pausing", answer)  # said now; the pause lands at the next boundary
        elif cmd.type == "unpause":
            changed = c.unpause(cmd.id)
            if changed:
                self.phases.withdraw(answer)  # a pause that had not landed yet
        elif cmd.type == "checkpoint_now":
            c.request_checkpoint(cmd.id)
            changed = True
        elif cmd.type == "stop":
            changed = c.stop_reason is None
            c.request_stop("stop command", cmd.id)
            # Still starting up (no step yet): nothing to checkpoint, the start-up is stopped now.
            interrupt = self.interrupt if self.in_job and not c.stepping else None
            if changed and self.in_job:
                self.store.update(status="stopping")
                self.phases.notice("stopping", answer, "now" if interrupt is not None else None)
            if changed and interrupt is not None:
                interrupt("stop command")
        else:  # ping, status
            changed = False
        state = protocol.EngineState.model_validate(_known(self.store.snapshot()))
        return protocol.CommandResult(changed=changed, status=state.status, step=state.step, state=state)

    # -------------------------------------------------------------- lifecycle

    def stop_noted(self, signal_name: str) -> None:
        """Say that a stop signal was taken (state 'stopping', a journal note), and what a second one does."""
        if self.finished.is_set() or self.store.closed:
            return
        text = (
            f"signal {signal_name}: stopping at the next step boundary after a checkpoint; "
            f"a second {signal_name} ends the engine at once"
        )
        log(text)
        with contextlib.suppress(OSError):
            self.store.update(status="stopping")
            self.emit(protocol.LogRecorded(level="warning", text=text))
            if self.in_job:
                self.phases.notice("stopping")

    def hurry(self, reason: str) -> None:
        """A second stop signal: record the stop (state, then journal) and end the process at once."""
        message = f"{reason} again: ended at once, without a checkpoint; ftc resume continues it"
        if self.store.closed:  # the final record is being written: let it finish
            self.finished.wait(timeout=2.0)
        else:
            self.store.hurried("stopped", message)
            with contextlib.suppress(Exception):
                self.journal.append(protocol.EngineStopped(status="stopped", reason=message), timeout=1.0)
        self.reserve.release()
        os._exit(ExitCode.INTERRUPTED)

    def run(self) -> int:
        ident = process_identity(os.getpid())
        self._io.start()
        ctx = JobContext(
            paths=self.paths,
            config=self.config,
            resume=self.resume,
            control=self.control,
            emit=self.emit,
            update_state=self.store.update,
            resume_from=self.resume_from,
            phases=self.phases,
            hardware=self.hardware,
            cluster=self.cluster,
        )
        code = 0
        ending: protocol._Body
        parent: str | None = None
        try:
            self.store.update(
                status="running",
                job=self.kind,
                endpoints={"commands": f"ipc://{self.cmd_path}", "events": f"ipc://{self.pub_path}"},
                started=time.time(),
                ended=None,
                message="",
                workers=self.cluster.size if self.cluster is not None else 1,
                **ident,
            )
            self.emit(
                protocol.EngineStarted(
                    pid=ident["pid"],
                    hostname=ident["hostname"],
                    job=self.kind,
                    resumed=self.resume,
                    step=resume_step(self.resume_from, self.store.snapshot()) if self.resume else None,
                    workers=self.cluster.size if self.cluster is not None else 1,
                )
            )
            self.sampler.start()
            self.in_job = True
            try:
                summary = jobs.load(self.kind)(ctx)
            finally:
                self.in_job = False
            step = self._step()
            ending = protocol.JobFinished(
                step=step, summary=protocol.JobSummary.model_validate(summary or {})
            )
            status, reason = "finished", "job finished"
        except (StopRequested, StartupInterrupted) as stop:
            ending = protocol.JobStopped(step=self._step(), reason=stop.reason)
            status, reason, parent = "stopped", stop.reason, self.control.stop_id
        except WorkerLost as exc:  # the group cannot go on: crashed, as if the engine had died there
            text = f"{exc}; ftc resume {self.paths.id} restarts the group from its last checkpoint"
            log(text)
            ending = protocol.JobFailed(step=self._step(), error_name="WorkerLost", error_text=text)
            status, reason, code = "crashed", text, 1
        except BaseException as exc:  # report every failure in the journal, then exit non-zero
            where = no_space(exc)
            if where is not None:
                self.reserve.release()  # room for the record below
                name, text = "NoSpace", disk_full_text(where, self.paths)
                log(text)
            else:
                log_traceback()
                name, text = type(exc).__name__, str(exc) or type(exc).__name__
            ending = protocol.JobFailed(step=self._step(), error_name=name, error_text=text)
            status, reason, code = "failed", text if where is not None else f"{name}: {text}", 1
        self._end(status, reason, ending, parent)
        self.shutdown()
        return code

    def _step(self) -> int:
        return int(self.store.snapshot().get("step", 0) or 0)

    def _end(self, status: str, reason: str, ending: protocol._Body, parent: str | None) -> None:
        """The final record: state.json first, then the job's last event and engine_stopped.

        Whoever sees those events finds state.json already final. Each part is tried even if
        another fails (a disk still full): the state, at least, must not say running.
        """
        self.sampler.stop()  # no sample after the job's last event
        try:
            self.store.final(status=status, message=reason, ended=time.time())
        except OSError as exc:
            log(f"cannot write the final state: {exc}")
        # A crashed group's journal says failed: older readers know no other end (state.json: crashed).
        said = "failed" if status == "crashed" else status
        last = protocol.EngineStopped(status=said, reason=reason)  # type: ignore[arg-type]
        for body, cause in ((ending, parent), (last, None)):
            try:
                self.emit(body, parent=cause)
            except OSError as exc:
                log(f"cannot write the journal's last event: {exc}")
                break
        self.finished.set()

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
        self.reserve.release()


def _known(state: dict[str, Any]) -> dict[str, Any]:
    """The fields of state.json that EngineState declares (a newer ftc's extra keys stay on disk)."""
    return {k: v for k, v in state.items() if k in protocol.EngineState.model_fields}


def _short(text: str) -> str:
    return text if len(text) <= ERROR_TEXT_MAX else text[: ERROR_TEXT_MAX - 1] + "…"


RETRY_INTERRUPT_S = 0.005  # a start-up interrupt that came during a journal append waits this long


class SignalWatcher:
    """Waits for SIGTERM/SIGINT on its own thread, so a stop never waits on what the job is doing.

    The first signal asks the job to stop at its next step boundary (it checkpoints there); before
    the job's first step it interrupts the start-up instead (importing TensorFlow, loading a model),
    where there is nothing to keep. A second signal ends the process at once (``Engine.hurry``).
    The signals are blocked in every thread before any is started: only this one receives them.
    """

    SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.paths: SessionPaths | None = None
        self.reason: str | None = None
        self.count = 0
        self._lock = threading.Lock()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a dropped SSH session must not end training
        signal.signal(signal.SIGINT, self._interrupt_main)  # run in the main thread by interrupt_main
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        threading.Thread(target=self._wait, name="engine-signals", daemon=True).start()

    def _interrupt_main(self, _signum: int, _frame: object) -> None:
        if journal_appending():  # never inside a journal append: again just after it (a few ms)
            threading.Timer(RETRY_INTERRUPT_S, _thread.interrupt_main, args=(signal.SIGINT,)).start()
            return
        raise StartupInterrupted(f"{self.reason or 'signal'} during start-up")

    def interrupt(self, reason: str) -> None:
        """Stop the main thread where it is (StartupInterrupted), for a stop before the job's first step."""
        with self._lock:
            self.reason = self.reason or reason
        _thread.interrupt_main(signal.SIGINT)

    def _wait(self) -> None:
        while True:
            signum = signal.sigwait(self.SIGNALS)
            self.on_signal(signal.Signals(signum).name)

    def attach(self, engine: Engine) -> None:
        with self._lock:
            self.engine = engine
            engine.interrupt = self.interrupt
            if self.reason is not None:  # a signal came while the engine was being made
                engine.control.request_stop(f"signal {self.reason}")

    def on_signal(self, name: str) -> None:
        with self._lock:
            self.count += 1
            engine = self.engine
            first = self.count == 1
            if first:
                self.reason = f"signal {name}"
        if not first:
            if engine is not None:
                engine.hurry(f"signal {name}")
            _record_start_failure(self.paths, f"stopped by signal {name} twice while starting", "stopped")
            os._exit(ExitCode.INTERRUPTED)
        if engine is not None:
            engine.control.request_stop(f"signal {name}")
            if engine.control.stepping or not engine.in_job:
                engine.stop_noted(name)  # the job stops (and checkpoints) at its next boundary
                return
        _thread.interrupt_main(signal.SIGINT)  # start-up: nothing to keep, stop what it is doing


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


def _record_start_failure(paths: SessionPaths | None, message: str, status: str = "failed") -> None:
    """state.json says why the engine never ran (failed, stopped) over the launcher's 'starting'."""
    if paths is None:
        return
    with contextlib.suppress(FtcError, OSError):
        state = read_state(paths)
        state.update(status=status, pid=None, message=message, ended=time.time())
        atomic_write_json(paths.state, state)


def main(argv: list[str] | None = None) -> int:
    watcher = SignalWatcher()  # first: before zmq or TensorFlow start threads that could take a signal
    parser = argparse.ArgumentParser(prog="python -m engine", description="Run one ftc session's engine.")
    parser.add_argument("session_dir", type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    parser.add_argument("--checkpoint", metavar="NAME", help="resume from this checkpoint (e.g. ckpt-1200)")
    args = parser.parse_args(argv)
    paths = SessionPaths(args.session_dir.resolve())
    if not _lock_session(paths):
        print(f"ftc engine: session {paths.id} is already served by another engine", file=sys.stderr)
        return ExitCode.BUSY
    watcher.paths = paths
    try:
        return _main(paths, args, watcher)
    except StartupInterrupted as stop:
        log(f"{stop.reason}; nothing was started")
        _record_start_failure(paths, f"stopped by {stop.reason}; nothing was started", "stopped")
        return ExitCode.INTERRUPTED


def _main(paths: SessionPaths, args: argparse.Namespace, watcher: SignalWatcher) -> int:
    try:
        engine = Engine(paths, args.resume, args.checkpoint)
    except (FtcError, zmq.ZMQError, OSError) as exc:
        where = no_space(exc)
        text = disk_full_text(where, paths) if where is not None else f"engine could not start: {exc}"
        log(f"cannot start session {paths.id}: {text}")
        _record_start_failure(paths, text)
        return ExitCode.BAD_INPUT
    try:
        watcher.attach(engine)
        return engine.run()
    except StartupInterrupted as stop:  # landed after run's own handlers (rare): still a clean stop
        engine._end(
            "stopped", stop.reason, protocol.JobStopped(step=engine._step(), reason=stop.reason), None
        )
        engine.shutdown()
        return ExitCode.INTERRUPTED
