"""The session journal, ``events.jsonl``: every event appended once, in ``seq`` order.

The engine writes an event to the journal before publishing it, so a reader that saw
``seq`` n live can always find 1..n-1 in the file. Readers read incrementally from a
byte offset and only ever take complete lines (a crash may leave a half-written last
line, which is skipped).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from engine import protocol
from engine.protocol import Envelope

# The journal is fsynced at most this often (and on events that matter, see Journal.append).
FSYNC_EVERY_S = 1.0
_DURABLE = frozenset({"checkpoint_saved", "job_finished", "job_failed", "job_stopped", "engine_stopped"})


def last_seq(path: Path) -> int:
    """The highest seq in an existing journal (0 for none), so a resumed engine continues it."""
    seq = 0
    for env in JournalReader(path).read_new():
        seq = env.seq or seq
    return seq


# How deep this thread is in Journal.append. A stop during start-up is raised into the main thread
# wherever it is (engine.server SignalWatcher); raised inside append, after the line is written and
# before its seq is counted, it made the next event reuse that seq. The watcher defers it while
# this says the main thread is appending.
_appending = threading.local()


def appending() -> bool:
    """Whether this thread is inside Journal.append (an exception raised into it now could cut it)."""
    return bool(getattr(_appending, "depth", 0))


class Journal:
    """Append-only writer; assigns seq. Thread-safe.

    A line is written whole or not at all: an append that fails (a full disk) cuts the file
    back to where the line began and raises OSError naming the journal, and the seq is not used.
    """

    def __init__(self, path: Path, session: str) -> None:
        self.path = path
        self.session = session
        self._lock = threading.Lock()
        self._seq = last_seq(path) if path.exists() else 0
        self._truncate_partial_line()
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._last_sync = 0.0

    def _truncate_partial_line(self) -> None:
        """Cut a half-written last line left by a crash, so new lines start clean."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)

    @property
    def seq(self) -> int:
        return self._seq

    def append(self, body: protocol._Body, parent: str | None = None, *, timeout: float = -1) -> Envelope:
        """Number the event, write it as one line, and return the envelope to publish.

        With a timeout (seconds), raise TimeoutError instead of waiting longer for another writer.
        """
        depth = getattr(_appending, "depth", 0)
        try:
            _appending.depth = depth + 1
            if not self._lock.acquire(timeout=timeout):
                raise TimeoutError(f"{self.path}: another writer holds the journal")
            try:
                if self._fd is None:
                    raise OSError(f"{self.path}: the journal is closed")
                env = protocol.make(body, self.session, parent=parent, seq=self._seq + 1)
                self._write_line(protocol.encode(env) + b"\n", durable=env.type in _DURABLE)
                self._seq += 1
                return env
            finally:
                self._lock.release()
        finally:
            _appending.depth = depth

    def _write_line(self, line: bytes, durable: bool) -> None:
        assert self._fd is not None
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            now = time.monotonic()
            if durable or now - self._last_sync >= FSYNC_EVERY_S:
                os.fsync(self._fd)
                self._last_sync = now
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)  # never leave half a line behind
            errno_ = exc.errno if exc.errno is not None else 0
            raise OSError(errno_, exc.strerror or str(exc), str(self.path)) from exc

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None


class JournalReader:
    """Reads the events appended since the last call; keeps its byte offset.

    Nothing is dropped without a word: a line that is not a valid event, an event type from
    a newer ftc, or fields a newer ftc added, each leave a notice (once per kind of problem)
    in ``notices`` for the console or the plain follower to show.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.line = 0
        self.skipped = 0  # lines that were not valid events (reported, not fatal)
        self.notices = Notices()

    def pending(self) -> bool:
        """Whether the journal holds bytes this reader has not read yet (a stat)."""
        try:
            return os.stat(self.path).st_size > self.offset
        except FileNotFoundError:
            return False

    def read_new(self, max_bytes: int | None = None) -> Iterator[Envelope]:
        """The complete lines appended since the last call; with ``max_bytes``, about that much at most
        (always at least one line), the rest at the next call: a long history in pages."""
        try:
            if os.stat(self.path).st_size <= self.offset:
                return  # nothing appended: a stat, not an open and a read (followers call this often)
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(max_bytes if max_bytes else -1)
                while max_bytes and b"\n" not in data:  # a line longer than a page: read on to its end
                    more = fh.read(max_bytes)
                    if not more:
                        break
                    data += more
        except FileNotFoundError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in data[: end + 1].splitlines():
            self.line += 1
            if not line.strip():
                continue
            try:
                env = protocol.decode(line, kinds=protocol.EVENTS)
            except protocol.ProtocolError as exc:
                self.skipped += 1
                self.notices.rejected(exc, f"{self.path.name} line {self.line}")
                continue
            self.notices.accepted(env)
            yield env


class Notices:
    """What a reader of events left out, said once per kind: 'ignored field body.x of step_ended'."""

    def __init__(self) -> None:
        self._said: set[str] = set()
        self._new: list[str] = []

    def _add(self, key: str, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self._new.append(text)

    def accepted(self, env: Envelope) -> None:
        """Note the fields a newer minor version added to this event (ignored here)."""
        for name in env.ignored:
            self._add(
                f"field {env.type}.{name}",
                f"{env.type} events carry {name!r}, which this ftc ({protocol.PROTOCOL_VERSION}) "
                f"does not know (written by ftc protocol {env.v}); ignored",
            )

    def rejected(self, exc: protocol.ProtocolError, where: str) -> None:
        """Note an event this reader could not use (a newer type is skipped, damage is named)."""
        if exc.ignorable:
            self._add(f"type {exc.text}", f"{where}: {exc.text.split(';')[0]}; skipped")
        else:
            self._add(f"{exc.name}", f"{where}: {exc.text}; skipped (later lines like it are skipped too)")

    def take(self) -> list[str]:
        """The notices not yet taken."""
        new, self._new = self._new, []
        return new


def read_all(path: Path) -> list[Envelope]:
    return list(JournalReader(path).read_new())


def tail(path: Path, n: int = 20) -> list[Envelope]:
    """The last n events of a journal, cheaply (read from the end); lines that are not events are left out."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024 * max(1, n // 50)))
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return []
    out: list[Envelope] = []
    for line in lines[-n - 1 :]:
        try:
            out.append(protocol.decode(line, kinds=protocol.EVENTS))
        except protocol.ProtocolError:
            continue  # the first line may be cut by the seek; a reader of the whole journal names damage
    return out[-n:]
