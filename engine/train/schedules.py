"""Learning-rate schedules as plain functions of the step, so the UI can draw the plan ahead."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.train.config import TrainSection


@dataclass(frozen=True)
class Schedule:
    """LR for the optimizer update at 0-based ``step`` (the update that makes step+1 done)."""

    kind: str
    peak: float
    total_steps: int
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    decay_rate: float = 0.5
    decay_steps: int = 1000

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            # (step+1): the first update already moves, instead of wasting one at LR 0.
            return self.peak * (step + 1) / self.warmup_steps
        after = step - self.warmup_steps
        if self.kind == "constant":
            return self.peak
        if self.kind == "exponential":
            return self.peak * self.decay_rate ** (after / self.decay_steps)
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, after / span)
        floor = self.min_lr_ratio
        if self.kind == "linear":
            return self.peak * (1.0 - (1.0 - floor) * progress)
        if self.kind == "cosine":
            return self.peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))
        raise ValueError(f"unknown schedule {self.kind!r}; expected constant, linear, cosine or exponential")

    def plan(self, total_steps: int | None = None, n_points: int = 200) -> list[tuple[int, float]]:
        """(step, lr) points over the whole run, evenly spaced, first and last step included."""
        total = max(1, total_steps or self.total_steps)
        n = max(2, min(n_points, total))
        steps = sorted({round(i * (total - 1) / (n - 1)) for i in range(n)})
        return [(s, self.lr_at(s)) for s in steps]


def from_config(train: TrainSection, total_steps: int) -> Schedule:
    """The schedule a [train] section describes, for a run of total_steps updates."""
    warmup = train.warmup_steps
    ratio = train.warmup_ratio
    if warmup is None:
        warmup = math.ceil((ratio or 0.0) * total_steps)
    return Schedule(
        kind=train.schedule,
        peak=train.learning_rate,
        total_steps=total_steps,
        warmup_steps=int(warmup),
        min_lr_ratio=train.min_lr_ratio,
        decay_rate=train.decay_rate,
        decay_steps=train.decay_steps,
    )
