"""The trainer's hooks (Keras callbacks, HF's TrainerCallback): their base class, a list, a step report.

The loop calls every callback, in list order, at each of its points: a resume, train begin,
step end, an evaluation's progress and its end, a complete checkpoint, a log line, train end,
and close (always, after the end or a failure). A callback reads ``trainer.state``, may set
``trainer.control``'s flags, and handles one concern: events, state.json, TensorBoard,
checkpoints, early stopping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.train.loop import Trainer
    from engine.train.metrics import Figures


@dataclass(frozen=True)
class StepReport:
    """What one optimizer step did, for the callbacks at its end."""

    step: int
    epoch: float  # epochs done, with the fraction of the current one
    epoch_done: bool
    loss: float
    grad_norm: float
    learning_rate: float
    seconds: float
    batches: Sequence[Any]  # the step's micro-batches (engine.train.batches.Batch)

    @property
    def examples(self) -> int:
        return sum(b.size for b in self.batches)

    @property
    def tokens(self) -> int:
        return sum(b.tokens for b in self.batches)

    def rows(self) -> list[int]:
        """The step's row ids, in the order they were trained."""
        return [int(r) for b in self.batches for r in b.rows]


class Callback:
    """Does nothing at every point; a callback overrides the points its concern needs."""

    def on_resume(self, trainer: Trainer, checkpoint: Path) -> None:
        """The trainer's state and weights were just restored from ``checkpoint``."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first step of this run (resumed or not)."""

    def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
        """After an optimizer step; ``trainer.state`` is already past it."""

    def on_evaluate_batch(self, trainer: Trainer, split: str, done: int, total: int | None) -> None:
        """An evaluation of ``split`` has run ``done`` of its ``total`` batches (0: it starts)."""

    def on_evaluate(self, trainer: Trainer, split: str, figures: Figures) -> None:
        """After an evaluation of ``split`` at ``trainer.state.step``."""

    def on_save(self, trainer: Trainer, step: int, path: Path, reason: str, metric: float | None) -> None:
        """A checkpoint is complete on disk (called on the checkpoint writer's thread for periodic ones)."""

    def on_log(self, trainer: Trainer, level: str, text: str) -> None:
        """A line for the person watching: a notice or a warning."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Training ended normally: final checkpoint written, best weights restored, test evaluated."""

    def on_close(self, trainer: Trainer) -> None:
        """Always last, after the end or a failure: let go of files and threads."""


class CallbackList(Callback):
    """Calls each of its callbacks, in order, at every point."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_resume(self, trainer: Trainer, checkpoint: Path) -> None:
        for cb in self.callbacks:
            cb.on_resume(trainer, checkpoint)

    def on_train_begin(self, trainer: Trainer) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(trainer)

    def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
        for cb in self.callbacks:
            cb.on_step_end(trainer, report)

    def on_evaluate_batch(self, trainer: Trainer, split: str, done: int, total: int | None) -> None:
        for cb in self.callbacks:
            cb.on_evaluate_batch(trainer, split, done, total)

    def on_evaluate(self, trainer: Trainer, split: str, figures: Figures) -> None:
        for cb in self.callbacks:
            cb.on_evaluate(trainer, split, figures)

    def on_save(self, trainer: Trainer, step: int, path: Path, reason: str, metric: float | None) -> None:
        for cb in self.callbacks:
            cb.on_save(trainer, step, path, reason, metric)

    def on_log(self, trainer: Trainer, level: str, text: str) -> None:
        for cb in self.callbacks:
            cb.on_log(trainer, level, text)

    def on_train_end(self, trainer: Trainer) -> None:
        for cb in self.callbacks:
            cb.on_train_end(trainer)

    def on_close(self, trainer: Trainer) -> None:
        for cb in self.callbacks:
            cb.on_close(trainer)
