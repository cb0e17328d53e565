"""What a job sees of its engine: the session, its config, an event emitter and the control flags.

Modelled on Hugging Face's TrainerControl: the command thread only sets flags; the job
acts on them at its next step boundary (``ctx.boundary``), so a pause, checkpoint or
stop never lands in the middle of a step.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from engine import protocol
from engine.session import SessionPaths


class StopRequested(Exception):
    """Raised by ``boundary`` after the stop checkpoint was written; the engine ends cleanly."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StartupInterrupted(BaseException):
    """Raised in the job's thread by a stop signal that came before the job's first step.

    A BaseException, so that no ``except Exception`` in a job's setup (model loading, imports)
    takes it for a failure of its own: nothing was done yet that a checkpoint could keep.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Control:
    """Flags the command thread and signal handlers set and the job reads. Thread-safe.

    Each flag remembers the id of the command that set it, and ``cause`` names the command
    being acted on at a step boundary, so the events it leads to (``paused``,
    ``checkpoint_saved``, ``job_stopped``) carry that command's id as their parent.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.paused = False
        self.checkpoint_requested = False
        self.stop_reason: str | None = None
        # Set at the job's first step boundary: from then on a stop waits for the next boundary.
        self.stepping = False
        # An error another thread met (a full disk writing the heartbeat): the job raises it next boundary.
        self.failure: BaseException | None = None
        self._acting = threading.local()  # per thread: only the job thread's events answer a command
        self.pause_id: str | None = None
        self.unpause_id: str | None = None
        self.checkpoint_id: str | None = None
        self.stop_id: str | None = None

    def pause(self, cmd_id: str | None = None) -> bool:
        """Ask for a pause; returns False if already paused (idempotent)."""
        with self._cond:
            was = self.paused
            self.paused = True
            if not was:
                self.pause_id = cmd_id
            self._cond.notify_all()
            return not was

    def unpause(self, cmd_id: str | None = None) -> bool:
        with self._cond:
            was = self.paused
            self.paused = False
            if was:
                self.unpause_id = cmd_id
            self._cond.notify_all()
            return was

    def request_checkpoint(self, cmd_id: str | None = None) -> None:
        with self._cond:
            self.checkpoint_requested = True
            self.checkpoint_id = cmd_id
            self._cond.notify_all()

    def request_stop(self, reason: str, cmd_id: str | None = None) -> None:
        with self._cond:
            if self.stop_reason is None:
                self.stop_reason = reason
                self.stop_id = cmd_id
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        """Make the job raise ``error`` at its next step boundary (the first failure wins)."""
        with self._cond:
            if self.failure is None:
                self.failure = error
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait(timeout)

    @property
    def cause(self) -> str | None:
        """The command this thread is acting on, if any."""
        cause: str | None = getattr(self._acting, "cmd_id", None)
        return cause

    @contextlib.contextmanager
    def acting_on(self, cmd_id: str | None) -> Iterator[None]:
        """Events this thread emits inside are answers to the command ``cmd_id``."""
        self._acting.cmd_id = cmd_id
        try:
            yield
        finally:
            self._acting.cmd_id = None


SaveFn = Callable[[str], None]


@dataclass
class JobContext:
    """Everything a job needs from the engine hosting it."""

    paths: SessionPaths
    config: dict[str, Any]
    resume: bool
    control: Control
    emit: Callable[[protocol._Body], protocol.Envelope]
    update_state: Callable[..., Any]
    # With resume: the checkpoint folder name to start from (None: the latest complete one).
    resume_from: str | None = None

    def boundary(self, step: int, save: SaveFn | None = None) -> None:
        """Call between steps: honours checkpoint, pause and stop requests in that order.

        ``save(reason)`` writes a checkpoint; jobs without checkpoints pass None.
        Raises StopRequested (after saving) when a stop was asked for.
        """
        c = self.control
        c.stepping = True
        if c.failure is not None:
            raise c.failure
        if c.checkpoint_requested:
            self._checkpoint_on_command(save)
        if c.paused and c.stop_reason is None:
            with c.acting_on(c.pause_id):
                self.update_state(status="paused", step=step)
                self.emit(protocol.Paused(step=step))
            while c.paused and c.stop_reason is None and c.failure is None:
                c.wait(0.2)
                if c.checkpoint_requested:
                    self._checkpoint_on_command(save)
            if c.failure is not None:
                raise c.failure
            if c.stop_reason is None:
                with c.acting_on(c.unpause_id):
                    self.update_state(status="running", step=step)
                    self.emit(protocol.Unpaused(step=step))
        if c.stop_reason is not None:
            self.update_state(status="stopping", step=step)
            if save is not None:
                with c.acting_on(c.stop_id):
                    save("stop")
            raise StopRequested(c.stop_reason)

    def _checkpoint_on_command(self, save: SaveFn | None) -> None:
        c = self.control
        c.checkpoint_requested = False
        if save is not None:
            with c.acting_on(c.checkpoint_id):
                save("on_command")
