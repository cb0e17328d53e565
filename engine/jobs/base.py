"""What a job sees of its engine: the session, its config, an event emitter and the control flags.

Modelled on Hugging Face's TrainerControl: the command thread only sets flags; the job
acts on them at its next step boundary (``ctx.boundary``), so a pause, checkpoint or
stop never lands in the middle of a step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine import protocol
from engine.session import SessionPaths


class StopRequested(Exception):
    """Raised by ``boundary`` after the stop checkpoint was written; the engine ends cleanly."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Control:
    """Flags the command thread and signal handlers set and the job reads. Thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.paused = False
        self.checkpoint_requested = False
        self.stop_reason: str | None = None

    def pause(self) -> bool:
        """Ask for a pause; returns False if already paused (idempotent)."""
        with self._cond:
            was = self.paused
            self.paused = True
            self._cond.notify_all()
            return not was

    def unpause(self) -> bool:
        with self._cond:
            was = self.paused
            self.paused = False
            self._cond.notify_all()
            return was

    def request_checkpoint(self) -> None:
        with self._cond:
            self.checkpoint_requested = True
            self._cond.notify_all()

    def request_stop(self, reason: str) -> None:
        with self._cond:
            if self.stop_reason is None:
                self.stop_reason = reason
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait(timeout)


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
    extra: dict[str, Any] = field(default_factory=dict)

    def boundary(self, step: int, save: SaveFn | None = None) -> None:
        """Call between steps: honours checkpoint, pause and stop requests in that order.

        ``save(reason)`` writes a checkpoint; jobs without checkpoints pass None.
        Raises StopRequested (after saving) when a stop was asked for.
        """
        c = self.control
        if c.checkpoint_requested:
            c.checkpoint_requested = False
            if save is not None:
                save("on_command")
        if c.paused and c.stop_reason is None:
            self.update_state(status="paused", step=step)
            self.emit(protocol.Paused(step=step))
            while c.paused and c.stop_reason is None:
                c.wait(0.2)
                if c.checkpoint_requested:
                    c.checkpoint_requested = False
                    if save is not None:
                        save("on_command")
            if c.stop_reason is None:
                self.update_state(status="running", step=step)
                self.emit(protocol.Unpaused(step=step))
        if c.stop_reason is not None:
            self.update_state(status="stopping", step=step)
            if save is not None:
                save("stop")
            raise StopRequested(c.stop_reason)
