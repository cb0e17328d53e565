"""Learning-rate schedules as plain functions of the step, so the UI can draw the plan ahead."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.train.config import TrainSection

CYCLIC = ("cyclic", "cosine_restarts")


@dataclass(frozen=True)
class Schedule:
    """LR for the optimizer update at 0-based ``step`` (the update that makes step+1 done).

    After ``warmup_steps`` (a linear rise to ``peak``), by ``kind``:

    - ``constant``, ``linear`` and ``cosine`` (to ``peak * min_lr_ratio`` at ``total_steps``),
      ``exponential`` (times ``decay_rate`` every ``decay_steps``);
    - ``cyclic``: Smith's triangular cyclical LR between lo = ``peak * min_lr_ratio`` and the
      peak, ``cycle_steps`` per cycle. A cycle STARTS AT THE PEAK, where warmup ends: it falls
      linearly to lo at mid-cycle, then rises. ``triangular2`` halves the amplitude
      (peak - lo) with each cycle: cycle c starts at lo + (peak - lo) / 2**c, and its rise
      climbs to cycle c+1's start, so the curve never jumps. This is Smith's schedule shifted
      by half a cycle (his starts at lo and rises first);
    - ``cosine_restarts``: SGDR (Loshchilov & Hutter). Cycle i lasts
      ``floor(cycle_steps * cycle_mult**i + 0.5)`` steps (at least 1): cosine from the peak
      at its first step towards lo, then a restart at the peak. ``cycle_mult = 1``: every
      cycle is ``cycle_steps`` long.
    """

    kind: str
    peak: float
    total_steps: int
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    decay_rate: float = 0.5
    decay_steps: int = 1000
    cycle_steps: int | None = None
    cycle_mode: str = "triangular"
    cycle_mult: float = 1.0
    # cosine_restarts: each cycle's first step after warmup, filled on demand.
    _starts: list[int] = field(default_factory=lambda: [0], init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind in CYCLIC and (self.cycle_steps is None or self.cycle_steps < 1):
            raise ValueError(f"schedule {self.kind!r} needs cycle_steps >= 1, got {self.cycle_steps}")

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            # (step+1): the first update already moves, instead of wasting one at LR 0.
            return self.peak * (step + 1) / self.warmup_steps
        after = step - self.warmup_steps
        if self.kind == "constant":
            return self.peak
        if self.kind == "exponential":
            return self.peak * self.decay_rate ** (after / self.decay_steps)
        floor = self.min_lr_ratio
        if self.kind == "cyclic":
            return self._cyclic(after)
        if self.kind == "cosine_restarts":
            start, length = self.cycle_of(after)
            lo = self.peak * floor
            return lo + (self.peak - lo) * 0.5 * (1.0 + math.cos(math.pi * (after - start) / length))
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, after / span)
        if self.kind == "linear":
            return self.peak * (1.0 - (1.0 - floor) * progress)
        if self.kind == "cosine":
            return self.peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))
        raise ValueError(
            f"unknown schedule {self.kind!r}; expected constant, linear, cosine, exponential, cyclic "
            "or cosine_restarts"
        )

    # ------------------------------------------------------------ cycles

    def _amplitude(self, cycle: int) -> float:
        full = self.peak * (1.0 - self.min_lr_ratio)
        return full / 2**cycle if self.cycle_mode == "triangular2" else full

    def _cyclic(self, after: int) -> float:
        length = int(self.cycle_steps or 1)
        cycle, pos = divmod(after, length)
        half = length / 2
        lo = self.peak * self.min_lr_ratio
        if pos < half:  # falling from this cycle's top
            return lo + self._amplitude(cycle) * (1.0 - pos / half)
        return lo + self._amplitude(cycle + 1) * (pos - half) / half  # rising to the next one's

    def cycle_length(self, index: int) -> int:
        """cosine_restarts: steps of cycle ``index`` (0-based); cyclic: cycle_steps."""
        base = int(self.cycle_steps or 1)
        if self.kind != "cosine_restarts" or self.cycle_mult == 1.0:
            return base
        return max(1, math.floor(base * self.cycle_mult**index + 0.5))

    def cycle_of(self, after: int) -> tuple[int, int]:
        """(first step, length) of the cycle holding step ``after`` (counted from warmup's end)."""
        if self.kind != "cosine_restarts" or self.cycle_mult == 1.0:
            length = self.cycle_length(0)
            return after - after % length, length
        starts = self._starts
        while starts[-1] <= after:
            starts.append(starts[-1] + self.cycle_length(len(starts) - 1))
        i = bisect.bisect_right(starts, after) - 1
        return starts[i], starts[i + 1] - starts[i]

    def cycle_starts(self, total: int) -> list[int]:
        """The first step of every cycle that begins before step ``total`` (warmup included)."""
        if self.kind not in CYCLIC:
            return []
        span = total - self.warmup_steps
        if span <= 0:
            return []
        if self.kind == "cyclic" or self.cycle_mult == 1.0:
            return list(range(self.warmup_steps, total, self.cycle_length(0)))
        self.cycle_of(span - 1)  # fills the starts up to the cycle holding the last step
        return [self.warmup_steps + s for s in self._starts if s < span]

    def turning_points(self, start: int, total: int) -> list[int]:
        """The steps that shape the cycle beginning at ``start``: its peak, trough(s), cosine's middle."""
        _, length = self.cycle_of(start - self.warmup_steps)
        # cyclic: the trough at mid-cycle (both steps around it when odd); cosine_restarts: the
        # cosine's middle and the lowest step, before the restart.
        odd = -(-length // 2) if self.kind == "cyclic" else length - 1
        inner = {length // 2, odd}
        return [start + p for p in sorted({0, *inner}) if p < length and start + p < total]

    # ------------------------------------------------------------ the plan

    def plan(
        self, total_steps: int | None = None, n_points: int = 200, max_points: int = 2000
    ) -> list[tuple[int, float]]:
        """(step, lr) points over the whole run, first and last step included, sorted by step.

        ``n_points`` evenly spaced steps; a cyclic schedule adds warmup's last step and each
        cycle's turning points (peak, trough), so a run of many cycles is drawn with its true
        shape instead of aliasing. At most ``max_points`` points in all: past that, whole cycles
        are thinned evenly (every k-th cycle's turning points kept).
        """
        total = max(1, total_steps or self.total_steps)
        n = max(2, min(n_points, total))
        steps = {round(i * (total - 1) / (n - 1)) for i in range(n)}
        starts = self.cycle_starts(total)
        if starts:
            if 0 < self.warmup_steps <= total:
                steps.add(self.warmup_steps - 1)
            per_cycle = 3  # turning points per cycle, at most
            keep = max(0, max_points - len(steps)) // per_cycle
            if keep < len(starts):
                step = (len(starts) - 1) / max(1, keep - 1)
                starts = [starts[round(i * step)] for i in range(keep)]
            for start in starts:
                steps.update(self.turning_points(start, total))
        return [(s, self.lr_at(s)) for s in sorted(steps)]


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
        cycle_steps=train.cycle_steps,
        cycle_mode=train.cycle_mode,
        cycle_mult=train.cycle_mult,
    )
