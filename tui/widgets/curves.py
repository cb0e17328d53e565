"""The loss panel (raw, smoothed, validation) and the learning-rate panel (actual and planned)."""

from __future__ import annotations

from textual_plotext import PlotextPlot

MAX_POINTS = 1500  # plotting more points than a terminal has cells only costs time


def thin(xs: list[int], ys: list[float]) -> tuple[list[int], list[float]]:
    """Every k-th point so that at most MAX_POINTS are drawn (the last point always kept)."""
    if len(xs) <= MAX_POINTS:
        return xs, ys
    k = -(-len(xs) // MAX_POINTS)
    idx = list(range(0, len(xs), k))
    if idx[-1] != len(xs) - 1:
        idx.append(len(xs) - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]


class LossPanel(PlotextPlot):
    """Training loss (raw and smoothed) and validation loss against step."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._smoothed: list[float] = []
        self._ema = (0.0, 0.0)
        self.val_steps: list[int] = []
        self.val_losses: list[float] = []

    def add_step(self, step: int, loss: float) -> None:
        last, norm = self._ema
        last, norm = 0.9 * last + 0.1 * loss, 0.9 * norm + 0.1
        self._ema = (last, norm)
        self.steps.append(step)
        self.losses.append(loss)
        self._smoothed.append(last / norm)

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

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("loss")
        if self.losses:
            plt.plot(*thin(self.steps, self.losses), label="raw", marker="dot", color="gray")
            plt.plot(*thin(self.steps, self._smoothed), label="smoothed", marker="braille", color="cyan")
        if self.val_losses:
            plt.plot(self.val_steps, self.val_losses, label="validation", marker="hd", color="orange")
        self.refresh()


class LearningRatePanel(PlotextPlot):
    """The learning rate so far, and the planned schedule ahead of the current step."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.steps: list[int] = []
        self.rates: list[float] = []
        self.plan_steps: list[int] = []
        self.plan_rates: list[float] = []

    def add_step(self, step: int, rate: float) -> None:
        self.steps.append(step)
        self.rates.append(rate)

    def rewind(self, step: int) -> None:
        keep = sum(1 for s in self.steps if s <= step)
        del self.steps[keep:], self.rates[keep:]

    def set_plan(self, steps: list[int], rates: list[float]) -> None:
        self.plan_steps, self.plan_rates = steps, rates

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("learning rate")
        now = self.steps[-1] if self.steps else 0
        ahead = [(s, r) for s, r in zip(self.plan_steps, self.plan_rates, strict=True) if s >= now]
        if ahead:
            xs, ys = zip(*ahead, strict=True)
            plt.plot(list(xs), list(ys), label="planned", marker="dot", color="gray")
        if self.rates:
            plt.plot(*thin(self.steps, self.rates), label="actual", marker="braille", color="green")
        self.refresh()
