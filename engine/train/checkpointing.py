"""The chief's checkpoints as a callback: periodic (in the background), best, on command, stop, final."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.model import dropout_generators
from engine.train import checkpoints as ck
from engine.train.callbacks import Callback, StepReport
from engine.train.config import TrainSection

if TYPE_CHECKING:
    from engine.train.loop import Trainer


def _snapshot(variables: list[Any]) -> list[Any]:
    """The variables' values now, cheaply: host copies of device variables, read tensors on the CPU.

    A CPU read is a tensor sharing the variable's buffer, and TensorFlow copies the buffer
    before an update writes to a buffer still read (tests/train/test_loop.py checks that a
    background checkpoint holds its step's weights), so the 270 MB host copy of a MiniLM
    checkpoint is made by the writer thread, not the training loop. Device (GPU) values are
    copied to the host here, so no second copy of the model waits in device memory.
    """
    return [v.read_value() if "CPU" in (v.device or "CPU") else v.numpy() for v in variables]


class Checkpointing(Callback):
    """Writes, prunes and sets aside the session's checkpoints; asks for a periodic one when it is due."""

    def __init__(self, root: Path, t: TrainSection) -> None:
        self.root, self.t = root, t
        self.writer = ck.BackgroundWriter()
        self._last_save = time.monotonic()

    def on_resume(self, trainer: Trainer, checkpoint: Path) -> None:
        """After resuming from an earlier checkpoint, move the abandoned run's later ones out of the way.

        Left in place they would be taken for this run's (same step numbers), outlive its
        new checkpoints in pruning and be what "latest" finds; moved, nothing is lost.
        """
        self.set_aside(trainer, f"resumed from {checkpoint.name}")

    def set_aside(self, trainer: Trainer, why: str) -> None:
        """Move the checkpoints after the trainer's step, damaged ones too, into an abandoned-<time>/."""
        folder = ck.set_aside(self.root, after_step=trainer.state.step)
        if folder is not None:
            names = ", ".join(p.name for p in sorted(folder.iterdir(), key=ck.step_of))
            trainer.log("warning", f"{why}: later checkpoints {names} moved to {folder}")

    def on_train_begin(self, trainer: Trainer) -> None:
        self._last_save = time.monotonic()
        # What a killed engine left: checkpoints half-pruned (.deleting-*), temp dirs of a write cut short.
        for path in ck.sweep(self.root):
            trainer.log("info", f"removed {path.name}, left by an engine that stopped mid-way")

    def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
        self.writer.check()  # a failed background write fails the job here
        every, minutes = self.t.checkpoint_every_steps, self.t.checkpoint_every_minutes
        if (every and report.step % every == 0) or (
            minutes and time.monotonic() - self._last_save >= minutes * 60
        ):
            trainer.control.should_save = "periodic"

    def on_close(self, trainer: Trainer) -> None:
        # After a stop or failure, a write in flight finishes (the final save waits for it
        # otherwise); the error to report is the first one, not the writer's.
        with contextlib.suppress(Exception):
            self.writer.wait()

    def save(self, trainer: Trainer, reason: str, *, background: bool = False) -> Path:
        """Checkpoint the state at this step; with background, the write overlaps the next steps.

        Periodic checkpoints are written in the background (a MiniLM checkpoint with its Adam
        moments is about 270 MB); every other reason (best, on command, stop, final) waits for
        its write, after the one in flight. Either way ``on_save`` is called once the
        checkpoint is complete on disk. The job's phase is checkpointing while the loop waits.
        """
        with trainer.ctx.phases.during("checkpointing", detail=reason):
            return self._save(trainer, reason, background)

    def _save(self, trainer: Trainer, reason: str, background: bool) -> Path:
        self.writer.wait()
        step = trainer.state.step
        existing = self.root / f"{ck.PREFIX}{step}"
        self._last_save = time.monotonic()
        if ck.is_complete(existing):
            # Saved at this step already (a best evaluation, then a periodic, stop or final save):
            # the same state, so one folder and one on_save, under its first reason.
            return existing
        metric = trainer.state.latest_metric(self.t.early_stopping.metric)
        state = trainer.state.model_dump(mode="json") | {
            "reason": reason,
            "time": time.time(),
            "metric": metric,
        }
        snapshot = {
            "weights": _snapshot(trainer.model.variables),
            "optimizer": _snapshot(trainer.stepper.optimizer_variables()),
            "rng": _snapshot([g.state for g in dropout_generators(trainer.model)]),
        }
        best = trainer.state.best_step
        keep_best = self.t.keep_best or self.t.early_stopping.restore_best
        keep = {best} if keep_best and best is not None else set()

        def write() -> Path:
            arrays = {name: [np.asarray(v) for v in values] for name, values in snapshot.items()}
            path = ck.save(self.root, step, state=state, **arrays)
            ck.prune(self.root, self.t.keep_last, keep)
            trainer.callbacks.on_save(trainer, step, path, reason, metric)
            return path

        if background:
            self.writer.submit(write)
            return existing
        return write()
