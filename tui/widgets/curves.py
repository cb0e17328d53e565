"""The loss panel (raw, smoothed, validation) and the learning-rate panel (actual and planned).

Both panels draw over one x range that the monitor gives them (the run's steps, or the last
``WINDOW_STEPS``), with integer step ticks. Their legends are in their top borders, outside the
data. The learning rate's ticks read as 5e-5, not 0.0000500.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate

from rich.text import Text
from textual_plotext import PlotextPlot

MAX_POINTS = 1500  # plotting more points than a terminal has cells only costs time
WINDOW_STEPS = 200  # the window key shows this many last steps
X_TICKS = 5
Y_TICKS = 4

PANEL_CSS = """
{name} {{
    border-top: solid $primary 50%;
    border-title-align: left;
    border-title-color: $foreground;
}}
"""


def thin(xs: list[int], ys: list[float]) -> tuple[list[int], list[float]]:
    """Every k-th point so that at most MAX_POINTS are drawn (the last point always kept)."""
    if len(xs) <= MAX_POINTS:
        return xs, ys
    k = -(-len(xs) // MAX_POINTS)
    idx = list(range(0, len(xs), k))
    if idx[-1] != len(xs) - 1:
        idx.append(len(xs) - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]


def within(xs: list[int], ys: list[float], lo: int, hi: int) -> tuple[list[int], list[float]]:
    """The points with lo <= x <= hi; xs ascending, as steps are (cut by bisection, not scanned)."""
    start, end = bisect_left(xs, lo), bisect_right(xs, hi)
    if start == 0 and end == len(xs):
        return xs, ys
    return xs[start:end], ys[start:end]


def step_ticks(lo: int, hi: int, count: int = X_TICKS) -> list[int]:
    """About ``count`` round integer ticks from lo to hi (1, 2 or 5 times a power of ten apart)."""
    span = max(hi - lo, 1)
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = max(1, int(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)))
    first = -(-lo // step) * step
    return list(range(first, hi + 1, step))


def rate_text(value: float) -> str:
    """A learning rate as a person writes it in a config: 5e-5, 2.5e-4, 0."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def rate_ticks(values: list[float], count: int = Y_TICKS) -> tuple[list[float], list[str]]:
    """Evenly spaced y ticks over the values, labelled as rates (duplicates after rounding dropped)."""
    lo, hi = min(values), max(values)
    if hi <= lo:
        return [lo], [rate_text(lo)]
    ticks, labels = [], []
    for i in range(count):
        value = lo + (hi - lo) * i / (count - 1)
        label = rate_text(value)
        if label not in labels:
            ticks.append(value)
            labels.append(label)
    return ticks, labels


def value_ticks(
    lo: float, hi: float, *, log: bool = False, count: int = Y_TICKS
) -> tuple[list[float], list[str]]:
    """Evenly spaced ticks from lo to hi; with ``log`` the values are log10s, labelled as 0.5, not -0.3."""
    ticks = [lo + (hi - lo) * i / (count - 1) for i in range(count)] if hi > lo else [lo]
    return ticks, [f"{10**t if log else t:.3g}" for t in ticks]


def legend(title: str, entries: list[tuple[str, str]]) -> Text:
    """A panel's title and its legend, for its top border: ``loss ━raw ━smoothed``."""
    out = Text()
    out.append(title, style="bold")
    for name, color in entries:
        out.append(" ━", style=color)
        out.append(name)
    return out


class _Panel(PlotextPlot):
    """A plot over an x range that the monitor sets, so that both panels line up."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.x_range: tuple[int, int] | None = None

    def set_x_range(self, lo: int, hi: int) -> None:
        self.x_range = (lo, max(hi, lo + 1))

    def _range(self, xs: list[int]) -> tuple[int, int]:
        if self.x_range is not None:
            return self.x_range
        return (0, max(max(xs, default=1), 1))

    def _axes(self, lo: int, hi: int) -> None:
        plt = self.plt
        plt.xlim(lo, hi)
        ticks = step_ticks(lo, hi)
        plt.xticks([float(t) for t in ticks], [str(t) for t in ticks])


class LossPanel(_Panel):
    """Training loss (raw and smoothed) and validation loss against step."""

    DEFAULT_CSS = PANEL_CSS.format(name="LossPanel")
    LEGEND = [("raw", "grey50"), ("smoothed", "cyan"), ("validation", "dark_orange")]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._smoothed: list[float] = []
        self._ema = (0.0, 0.0)
        self.val_steps: list[int] = []
        self.val_losses: list[float] = []
        self.log_scale = False

    def on_mount(self) -> None:
        self._title()

    def _title(self) -> None:
        scale = "  (log)" if self.log_scale else ""
        self.border_title = legend("loss" + scale, self.LEGEND)

    def add_step(self, step: int, loss: float) -> None:
        self.add_steps([step], [loss])

    def add_steps(self, steps: Sequence[int], losses: Sequence[float | None]) -> None:
        """Steps and their losses (a step without a loss is left out), in one call: a replay's run."""
        if None in losses:
            kept = [(s, loss) for s, loss in zip(steps, losses, strict=True) if loss is not None]
            steps, losses = [s for s, _ in kept], [loss for _, loss in kept]
        if not losses:
            return
        values: Sequence[float] = losses  # type: ignore[assignment]  # no None left
        # The bias-corrected EMA (weight 0.1), a list at a time: a reattach adds 100k losses.
        last, norm = self._ema
        ema = list(accumulate(values, lambda e, x: 0.9 * e + 0.1 * x, initial=last))[1:]
        decay = 1.0 - norm
        norms = [1.0 - decay * 0.9**k for k in range(1, len(ema) + 1)]
        self._smoothed += [e / n for e, n in zip(ema, norms, strict=True)]
        self.steps += steps
        self.losses += values
        self._ema = (ema[-1], norms[-1])

    def rewind(self, step: int) -> None:
        """Forget points after step: a resumed run repeats the steps after its checkpoint."""
        keep = sum(1 for s in self.steps if s <= step)
        del self.steps[keep:], self.losses[keep:], self._smoothed[keep:]
        self._ema = (self._smoothed[-1], 1.0) if self._smoothed else (0.0, 0.0)
        vkeep = sum(1 for s in self.val_steps if s <= step)
        del self.val_steps[vkeep:], self.val_losses[vkeep:]

    def add_validation(self, step: int, loss: float) -> None:
        self.val_steps.append(step)
        self.val_losses.append(loss)

    def toggle_log_scale(self) -> None:
        self.log_scale = not self.log_scale
        self._title()

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("")
        lo, hi = self._range(self.steps)
        series = [
            (self.steps, self.losses, "dot", "gray"),
            (self.steps, self._smoothed, "braille", "cyan"),
            (self.val_steps, self.val_losses, "hd", "orange"),
        ]
        drawn: list[float] = []
        for xs, ys, marker, color in series:
            xs, ys = within(xs, ys, lo, hi)
            if self.log_scale:
                # log10 drawn on a linear axis, labelled with the losses: plotext's own log scale
                # transforms its data again at every render, and a second render fails.
                kept = [(x, math.log10(y)) for x, y in zip(xs, ys, strict=True) if y > 0]
                xs, ys = [x for x, _ in kept], [y for _, y in kept]
            if xs:
                plt.plot(*thin(xs, ys), marker=marker, color=color)
                drawn += ys
        if drawn:
            plt.yticks(*value_ticks(min(drawn), max(drawn), log=self.log_scale))
        self._axes(lo, hi)
        self.refresh()


class LearningRatePanel(_Panel):
    """The learning rate so far, the planned schedule ahead of the current step, and, with
    differential rates, the planned rates of the classifier head and of the lowest layer."""

    DEFAULT_CSS = PANEL_CSS.format(name="LearningRatePanel")

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.steps: list[int] = []
        self.rates: list[float] = []
        self.plan_steps: list[int] = []
        self.plan_rates: list[float] = []
        self.head_multiplier = 1.0
        self.lowest_multiplier = 1.0

    def on_mount(self) -> None:
        self._title()

    def lines(self) -> list[tuple[str, str, str]]:
        """(name, Rich colour, plotext colour) of each line drawn, for the legend."""
        out = [("actual", "green", "green"), ("plan", "grey50", "gray")]
        if self.head_multiplier != 1.0:
            out.append((f"head x{self.head_multiplier:.2g}", "magenta", "magenta"))
        if self.lowest_multiplier != 1.0:
            out.append((f"low x{self.lowest_multiplier:.2g}", "blue", "blue"))
        return out

    def _title(self) -> None:
        # Short when the two differential lines join the legend, so that it fits half of 80 columns.
        differential = self.head_multiplier != 1.0 or self.lowest_multiplier != 1.0
        title = "lr" if differential else "learning rate"
        self.border_title = legend(title, [(name, color) for name, color, _ in self.lines()])

    def add_step(self, step: int, rate: float) -> None:
        self.add_steps([step], [rate])

    def add_steps(self, steps: Sequence[int], rates: Sequence[float | None]) -> None:
        """Steps and their rates (a step without one is left out), in one call."""
        if None in rates:
            kept = [(s, r) for s, r in zip(steps, rates, strict=True) if r is not None]
            steps, rates = [s for s, _ in kept], [r for _, r in kept]
        self.steps += steps
        self.rates += rates  # type: ignore[arg-type]  # no None left

    def rewind(self, step: int) -> None:
        keep = sum(1 for s in self.steps if s <= step)
        del self.steps[keep:], self.rates[keep:]

    def set_plan(
        self,
        steps: list[int],
        rates: list[float],
        head_multiplier: float = 1.0,
        lowest_multiplier: float = 1.0,
    ) -> None:
        self.plan_steps, self.plan_rates = steps, rates
        self.head_multiplier, self.lowest_multiplier = head_multiplier, lowest_multiplier
        if self.is_mounted:
            self._title()

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("")
        lo, hi = self._range(self.steps + self.plan_steps[-1:])
        now = self.steps[-1] if self.steps else 0
        drawn: list[float] = []
        plan_x, plan_y = within(self.plan_steps, self.plan_rates, max(lo, now), hi)
        if plan_x:
            plt.plot(*thin(plan_x, plan_y), marker="dot", color="gray")
            drawn += plan_y
        full_x, full_y = within(self.plan_steps, self.plan_rates, lo, hi)
        for multiplier, color in ((self.head_multiplier, "magenta"), (self.lowest_multiplier, "blue")):
            if multiplier != 1.0 and full_x:
                ys = [r * multiplier for r in full_y]
                plt.plot(*thin(full_x, ys), marker="braille", color=color)
                drawn += ys
        xs, ys = within(self.steps, self.rates, lo, hi)
        if xs:
            plt.plot(*thin(xs, ys), marker="braille", color="green")
            drawn += ys
        if drawn:
            plt.yticks(*rate_ticks(drawn))
        self._axes(lo, hi)
        self.refresh()
