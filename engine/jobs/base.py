"""What a job sees of its engine: the session, its config, an event emitter and the control flags.

Modelled on Hugging Face's TrainerControl: the command thread only sets flags; the job
acts on them at its next step boundary (``ctx.boundary``), so a pause, checkpoint or
stop never lands in the middle of a step. ``Phases`` says what the job is doing meanwhile.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
Emit = Callable[[protocol._Body], Any]

# Progress within one phase (rows, batches) is published at most this often.
PROGRESS_EVERY_S = 0.5
# What a pause or stop asked for in each phase waits for (it lands at the job's next boundary).
WAITS_FOR = {
    "loading_model": "at the first step",
    "preparing_data": "after this chunk of data",
    "testing_data": "after this chunk of data",
    "compiling": "after the first step",
    "training": "after this step",
    "evaluating": "after the evaluation",
    "checkpointing": "after the checkpoint",
    "predicting": "after this batch",
}
PAUSED = "paused"  # the job waits at a boundary; said by the Paused event, not a PhaseChanged


class Phases:
    """What the job is doing now, as PhaseChanged events, and how long each phase took.

    The job enters its phases (``enter``, or ``during`` for one it returns from) and reports
    progress in one (``progress``: at most every PROGRESS_EVERY_S). The command thread adds a
    notice (``notice``): a pause or stop asked for while the job is busy, said at once with what
    it waits for ("after the evaluation"). While a notice is pending the job's own phases are not
    published, so the console keeps saying "stopping", except a checkpoint, said as the notice's
    detail. Each change carries the seconds the previous phase took, so the journal shows where
    the time before the first step went. The lock is held only to publish, never while the job works.
    """

    def __init__(self, emit: Emit | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self.clock = clock
        self._lock = threading.RLock()
        self.phase: str | None = None
        self.since = clock()
        self.step = 0
        self.pending: str | None = None  # "pausing" or "stopping" while a notice waits for the boundary
        self._last = -math.inf
        self._away = 0.0  # seconds spent in phases other than training, before the current one
        self._before_pause: str | None = None

    def bind(self, emit: Emit) -> None:
        if self._emit is None:
            self._emit = emit

    def _publish(self, body: protocol.PhaseChanged, emit: Emit | None = None) -> None:
        self._last = self.clock()
        send = emit or self._emit
        if send is not None:
            send(body)

    def enter(
        self,
        phase: str,
        *,
        step: int | None = None,
        done: int | None = None,
        total: int | None = None,
        unit: str = "",
        detail: str = "",
        publish: bool = True,
    ) -> None:
        """The job starts ``phase`` (the same phase again: progress in it, throttled)."""
        with self._lock:
            if step is not None:
                self.step = step
            if phase == self.phase:
                if publish and done is not None:
                    self.progress(done, total, unit=unit, detail=detail)
                return
            now = self.clock()
            seconds = None if self.phase is None else round(now - self.since, 3)
            if self.phase is not None and self.phase != "training":
                self._away += now - self.since
            self.phase, self.since = phase, now
            if not publish:
                return
            if self.pending is not None:
                if phase == "checkpointing":  # the stop's (or pause's) wait, said as it changes
                    self._publish(
                        protocol.PhaseChanged(
                            phase=self.pending, step=self.step, detail="saving a checkpoint", seconds=seconds
                        )
                    )
                return
            self._publish(
                protocol.PhaseChanged(
                    phase=phase,
                    step=self.step,
                    done=done,
                    total=total,
                    unit=unit,
                    detail=detail,
                    seconds=seconds,
                )
            )

    def progress(self, done: int, total: int | None = None, *, unit: str = "", detail: str = "") -> None:
        """``done`` of ``total`` in the current phase; published at most every PROGRESS_EVERY_S."""
        with self._lock:
            if self.phase is None or self.pending is not None or self.phase == PAUSED:
                return
            if self.clock() - self._last < PROGRESS_EVERY_S:
                return
            self._publish(
                protocol.PhaseChanged(
                    phase=self.phase, step=self.step, done=done, total=total, unit=unit, detail=detail
                )
            )

    @contextlib.contextmanager
    def during(self, phase: str, **kw: Any) -> Iterator[None]:
        """``phase`` for the block, then back to the phase before it (not after an exception)."""
        before = self.phase
        self.enter(phase, **kw)
        yield
        if before is not None:
            self.enter(before)

    def notice(self, kind: str, emit: Emit | None = None, detail: str | None = None) -> None:
        """A pause or stop was asked for: say so now, with what it waits for (from any thread)."""
        with self._lock:
            if self.pending == "stopping":  # a stop outranks a pause
                return
            self.pending = kind
            if detail is None:
                # A compile past step 0 (a resumed run's first step, the optimizer update's) ends
                # with its step.
                phase = "training" if self.phase == "compiling" and self.step > 0 else self.phase
                detail = WAITS_FOR.get(phase or "", "")
            self._publish(protocol.PhaseChanged(phase=kind, step=self.step, detail=detail), emit)

    def withdraw(self, emit: Emit | None = None) -> None:
        """A pause taken back before it landed: say the job's phase again."""
        with self._lock:
            if self.pending != "pausing":
                return
            self.pending = None
            if self.phase is not None and self.phase != PAUSED:
                self._publish(protocol.PhaseChanged(phase=self.phase, step=self.step), emit)

    def paused(self) -> None:
        """The job waits at a boundary (the Paused event says so): a pending pause is done."""
        with self._lock:
            if self.pending == "pausing":
                self.pending = None
            self._before_pause = self.phase
            self.enter(PAUSED, publish=False)

    def unpaused(self) -> None:
        """The job goes on: its phase before the pause, said again."""
        with self._lock:
            if self._before_pause is not None:
                self.enter(self._before_pause)

    def away_s(self) -> float:
        """Seconds spent outside training so far (loading, evaluating, checkpointing, paused...)."""
        with self._lock:
            running = self.clock() - self.since if self.phase not in (None, "training") else 0.0
            return self._away + running


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
    # What the job is doing (PhaseChanged events); bound to ``emit`` unless the engine gives its own.
    phases: Phases = field(default_factory=Phases)
    # What the job computes on, for the resource samples: "device" ("CPU", "GPU:0"), "precision".
    hardware: dict[str, str] = field(default_factory=dict)
    # A training group this engine is the chief of (engine.train.cluster.ClusterSpec); None: one process.
    cluster: Any = None

    def __post_init__(self) -> None:
        self.phases.bind(self.emit)

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
            self.phases.paused()
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
                    self.phases.unpaused()
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
