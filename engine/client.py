"""The TUI's and CLI's side of the queue: send commands, and follow a session's events.

``EventFollower`` gives every event of a session exactly once and in ``seq`` order: it
subscribes to the live stream first, replays the journal, then follows live events; any
gap in the live stream (a slow subscriber, a reconnect) is filled from the journal, which
the engine always writes before it publishes. Nothing here imports TensorFlow or Textual.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zmq

from engine import protocol
from engine.journal import JournalReader
from engine.session import (
    ENDED_STATUSES,
    LIVE_STATUSES,
    SessionError,
    SessionPaths,
    live_status,
    pid_alive,
    read_state,
)

REPLY_TIMEOUT_S = 5.0
# How long a command waits for a deleted socket to be bound again (the engine checks every second).
SOCKET_BACK_S = 3.0


class EngineUnavailable(SessionError):
    """The session has no live engine to talk to."""


class CommandFailed(SessionError):
    """The engine answered a command with an error."""


def _endpoints(paths: SessionPaths) -> dict[str, str]:
    state = read_state(paths)
    status = live_status(state)
    if status not in LIVE_STATUSES or not state.get("endpoints"):
        hint = (
            f"resume it with 'ftc resume {paths.id}'"
            if status in ("crashed", "stopped")
            else "nothing to control"
        )
        raise EngineUnavailable(f"session {paths.id} has no running engine (status: {status}); {hint}")
    endpoints: dict[str, str] = state["endpoints"]
    return endpoints


def request(
    paths: SessionPaths, body: protocol._Body, timeout: float = REPLY_TIMEOUT_S
) -> protocol.CommandResult:
    """Send one command and wait for its reply; return the reply's result.

    Raises EngineUnavailable if nothing answers in time, CommandFailed on an error reply.
    """
    endpoint = _endpoints(paths)["commands"]
    _wait_for_socket(paths, endpoint)
    env = protocol.make(body, paths.id)
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(protocol.encode(env))
        if not sock.poll(int(timeout * 1000)):
            raise EngineUnavailable(
                f"session {paths.id}: the engine did not answer within {timeout:.0f}s; "
                f"it may be busy or hung, see {paths.log}"
            )
        reply = protocol.decode(sock.recv(), kinds={"reply": protocol.Reply})
    except zmq.ZMQError as exc:
        raise EngineUnavailable(
            f"session {paths.id}: cannot reach the engine at {endpoint} ({exc})"
        ) from None
    except protocol.ProtocolError as exc:
        raise CommandFailed(
            f"session {paths.id}: the engine's reply is not understood ({exc.text})"
        ) from None
    finally:
        sock.close()
    body_ = reply.body
    assert isinstance(body_, protocol.Reply)
    if reply.parent != env.id:
        raise CommandFailed(f"session {paths.id}: reply does not answer this command")
    if body_.status == "error":
        raise CommandFailed(f"session {paths.id}: {body_.error_name}: {body_.error_text}")
    return body_.result


def _wait_for_socket(paths: SessionPaths, endpoint: str, timeout: float = SOCKET_BACK_S) -> None:
    """Wait for a deleted command socket to be bound again (within a heartbeat); else say how to go on."""
    path = Path(endpoint.removeprefix("ipc://"))
    if not endpoint.startswith("ipc://"):
        return
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pid = read_state(paths).get("pid")
            raise EngineUnavailable(
                f"session {paths.id}: the engine's command socket {path} is gone and was not recreated; "
                f"end the engine with 'kill {pid}' (it stops cleanly), then 'ftc resume {paths.id}'"
            )
        time.sleep(0.05)


def send_raw(endpoint: str, raw: bytes, timeout: float = REPLY_TIMEOUT_S) -> protocol.Envelope:
    """Send raw bytes to a command socket and decode the reply (tests of bad input use it)."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(raw)
        if not sock.poll(int(timeout * 1000)):
            raise EngineUnavailable(f"no reply from {endpoint} within {timeout:.0f}s")
        return protocol.decode(sock.recv(), kinds={"reply": protocol.Reply})
    finally:
        sock.close()


class EventFollower:
    """Every event of one session, once each, in seq order: journal first, then live.

    ``poll`` sleeps in the kernel until a live event, a ``wake()`` or its timeout, and reads
    state.json and the journal only when a ``stat`` says they changed: an idle follower costs
    next to nothing, however long it waits.
    """

    def __init__(self, paths: SessionPaths, page_bytes: int | None = None) -> None:
        self.paths = paths
        self.page_bytes = page_bytes  # a long journal is read this much per poll (None: all at once)
        self.last_seq = 0
        self._reader = JournalReader(paths.events)
        self._sub: zmq.Socket[bytes] | None = None
        self._endpoint: tuple[str, int | None] | None = None
        self.ended = False  # the engine published its last event
        self._state: dict[str, Any] = {}
        self._state_key: tuple[int, int, int] | None = None
        self._wake_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def state(self) -> dict[str, Any]:
        """The session's state.json, parsed again only when the file changed (else one stat)."""
        try:
            st = os.stat(self.paths.state)
            key: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None  # none yet (or unreadable): read_state says what there is
        if key is None or key != self._state_key:
            self._state = read_state(self.paths)
            self._state_key = key
        return self._state

    def skip_to(self, offset: int, line: int, seq: int, ended: bool) -> None:
        """Go on after a journal prefix the caller read itself (the console's summarised replay):
        from byte ``offset`` (line ``line``), after event ``seq``; ``ended``: its last engine stopped."""
        self._reader.offset, self._reader.line = offset, line
        self.last_seq, self.ended = seq, ended

    def wake(self) -> None:
        """End a ``poll`` that is waiting, from any thread (a screen closing, a command answered)."""
        with self._wake_lock:
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):  # full: a wake is already pending
                    os.write(self._wake_w, b"w")

    def _wait(self, timeout: float) -> None:
        """Sleep until a live event arrives, ``wake()`` is called, or ``timeout`` seconds pass."""
        poller = zmq.Poller()
        if self._wake_r >= 0:
            poller.register(self._wake_r, zmq.POLLIN)
        if self._sub is not None:
            poller.register(self._sub, zmq.POLLIN)
        poller.poll(int(timeout * 1000))
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _connect(self) -> None:
        """Subscribe to the live stream if an engine is running (and reconnect after a restart)."""
        state = self.state()
        endpoint = (state.get("endpoints") or {}).get("events")
        if live_status(state) not in LIVE_STATUSES or not endpoint:
            return
        # A resumed engine binds the same path: key the connection on the engine's pid too.
        if self._sub is not None and (endpoint, state.get("pid")) == self._endpoint:
            return
        self._unsubscribe()
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(endpoint)
        self._sub, self._endpoint = sock, (endpoint, state.get("pid"))

    def _from_journal(self, max_bytes: int | None = None) -> Iterator[protocol.Envelope]:
        for env in self._reader.read_new(max_bytes):
            if env.seq is not None and env.seq > self.last_seq:
                yield from self._accept(env)

    def _accept(self, env: protocol.Envelope) -> Iterator[protocol.Envelope]:
        assert env.seq is not None
        self.last_seq = env.seq
        if env.type == "engine_stopped":
            self.ended = True
        elif env.type == "engine_started":
            self.ended = False
        yield env

    def poll(self, timeout: float = 0.2) -> list[protocol.Envelope]:
        """The events that arrived since the last call (waits up to timeout for live ones, or a wake)."""
        self._connect()
        out = list(self._from_journal(self.page_bytes))
        if not self.ended:
            out.extend(self._until_last_event())
        if not out and timeout > 0:
            self._wait(timeout)  # no engine to wait on: don't spin the caller's loop
        if self._sub is None:
            return out
        while True:
            try:
                raw = self._sub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                env = protocol.decode(raw, kinds=protocol.EVENTS)
            except protocol.ProtocolError as exc:
                # The journal has the same line: its reader names it (once), so nothing is said twice here.
                if not exc.ignorable:
                    self._reader.notices.rejected(exc, "live event")
                continue
            self._reader.notices.accepted(env)
            if env.seq is None or env.seq <= self.last_seq:
                continue  # already delivered from the journal
            if env.seq > self.last_seq + 1:
                out.extend(self._from_journal())  # fill the gap; the journal is written first
            if env.seq == self.last_seq + 1:
                out.extend(self._accept(env))
        return out

    def _until_last_event(self, timeout: float = 5.0) -> list[protocol.Envelope]:
        """The engine writes its final state just before its last events: when the state says it ended
        and the engine still lives, wait (briefly) for them, so nobody takes a clean end for a crash."""
        state = self.state()
        if state.get("status") not in ENDED_STATUSES or self._reader.pending():
            return []  # running, or history still to page through before the end can be awaited
        out: list[protocol.Envelope] = []
        deadline = time.monotonic() + timeout
        while not self.ended and time.monotonic() < deadline:
            if not pid_alive(state.get("pid"), state.get("pid_start")):
                out.extend(self._from_journal())
                break
            time.sleep(0.02)
            out.extend(self._from_journal())
        return out

    def notices(self) -> list[str]:
        """What was left out of the events given so far (newer fields or types, damaged lines), once each."""
        return self._reader.notices.take()

    def _unsubscribe(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sub.close()
        self._sub = None
        self._endpoint = None

    def close(self) -> None:
        """Drop the subscription and the wake pipe (``wake`` is then a no-op)."""
        self._unsubscribe()
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
