"""What the compare screen shows of each run: its figures, its resolved config, the overlay plot.

``RunFigures`` collects one session's curves and summary figures from its events (the compare
screen feeds it from a SessionFeed). ``resolved_config`` reads a session's config.toml as training
reads it, defaults filled in, flattened to dotted keys; ``config_diff`` keeps the keys that differ.
``OverlayPanel`` draws several runs' series over one step axis, each in its run's colour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from rich.text import Text
from textual_plotext import PlotextPlot

from engine.config import load_toml
from engine.errors import FtcError
from engine.train.config import DataSection, EarlyStopping, ModelSection, TrainSection
from tui.widgets.curves import PANEL_CSS, step_ticks, thin, value_ticks, within

# One colour per run, as (plotext RGB, Rich colour) so that the legend and the lines agree.
COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 175, 255),
    (255, 135, 0),
    (95, 215, 95),
    (215, 95, 215),
    (255, 215, 0),
    (255, 95, 95),
    (135, 175, 255),
    (175, 175, 175),
)
MAX_RUNS = len(COLORS)
# The evaluation metrics the metric plot cycles through (validation split).
PLOT_METRICS = ("macro_f1", "accuracy", "loss")
METRIC_LABELS = {"macro_f1": "macro F1", "accuracy": "accuracy", "loss": "loss"}
# When a run's own early-stopping metric is not among its evaluations (a selftest reports accuracy only).
FALLBACK_METRICS = ("macro_f1", "accuracy", "loss")
SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("model", ModelSection),
    ("data", DataSection),
    ("train", TrainSection),
)
EMA = 0.9  # the loss curves are smoothed as the monitor's "smoothed" line is


def rich_color(index: int) -> str:
    r, g, b = COLORS[index % len(COLORS)]
    return f"rgb({r},{g},{b})"


@dataclass
class RunFigures:
    """One run's curves and summary, built from its events (a resume's repeated steps replace the old)."""

    session: str
    index: int  # its colour
    metric: str = "macro_f1"  # the metric its early stopping watches: what "best" means for it
    maximize: bool = True
    steps: list[int] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    throughput: dict[int, float] = field(default_factory=dict)  # step -> examples/s
    evaluations: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    step: int = 0
    total_steps: int | None = None
    seconds: float = 0.0  # the engines' lifetimes so far, without the gaps between a crash and a resume
    _segment: tuple[float, float] | None = None  # the current engine's first and last event times
    _ema: tuple[float, float] = (0.0, 0.0)

    @property
    def color(self) -> str:
        return rich_color(self.index)

    def seen_at(self, ts: float, *, engine_started: bool = False) -> None:
        """Count an event's time into the wall time; an engine start opens a new stretch."""
        if self._segment is None or engine_started:
            if self._segment is not None:
                self.seconds += self._segment[1] - self._segment[0]
            self._segment = (ts, ts)
        else:
            self._segment = (self._segment[0], max(ts, self._segment[1]))

    @property
    def wall_s(self) -> float | None:
        if self._segment is None:
            return None
        return self.seconds + self._segment[1] - self._segment[0]

    def add_step(
        self, step: int, total: int | None, loss: float | None, examples_per_s: float | None
    ) -> None:
        self.step = step
        if total:
            self.total_steps = total
        if examples_per_s is not None:
            self.throughput[step] = examples_per_s
        if loss is not None:
            last, norm = self._ema
            last, norm = EMA * last + (1 - EMA) * loss, EMA * norm + (1 - EMA)
            self._ema = (last, norm)
            self.steps.append(step)
            self.smoothed.append(last / norm)

    def add_evaluation(self, step: int, metrics: dict[str, float]) -> None:
        self.evaluations.append((step, metrics))

    def rewind(self, step: int) -> None:
        """A resumed run restarts at its checkpoint's step: forget what the crashed engine did after it."""
        keep = sum(1 for s in self.steps if s <= step)
        del self.steps[keep:], self.smoothed[keep:]
        self._ema = (self.smoothed[-1], 1.0) if self.smoothed else (0.0, 0.0)
        self.throughput = {s: v for s, v in self.throughput.items() if s <= step}
        self.evaluations = [(s, m) for s, m in self.evaluations if s <= step]
        self.step = step

    def best(self) -> tuple[str, float, int] | None:
        """(metric, value, step) of the best evaluation, by the run's own metric (or the first it has)."""
        names = [self.metric, *FALLBACK_METRICS]
        name = next((n for n in names if any(n in m for _, m in self.evaluations)), None)
        if name is None:
            return None
        maximize = self.maximize if name == self.metric else not name.endswith("loss")
        scored = [(m[name], s) for s, m in self.evaluations if name in m]
        # The first evaluation to reach the best value, as early stopping keeps it.
        value, step = (max if maximize else min)(scored, key=lambda vs: vs[0])
        return name, value, step

    def mean_throughput(self) -> float | None:
        rates = list(self.throughput.values())
        return sum(rates) / len(rates) if rates else None

    def metric_curve(self, name: str) -> tuple[list[int], list[float]]:
        points = [(s, m[name]) for s, m in self.evaluations if name in m]
        return [s for s, _ in points], [v for _, v in points]


# ---------------------------------------------------------------------------------------- config


def _flatten(values: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, value in values.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict) and value:
            _flatten(value, name, out)
        else:
            out[name] = value


@dataclass
class ResolvedConfig:
    """A session's config as training reads it: dotted keys with defaults filled in, or why it cannot be."""

    values: dict[str, Any]
    metric: str = "macro_f1"
    maximize: bool = True
    problem: str | None = None


def resolved_config(path: Path) -> ResolvedConfig:
    """The [model], [data] and [train] keys (defaults filled in from the models) and any other section as set.

    A section that does not validate is shown as written (and said in ``problem``), so that a
    failed run still compares.
    """
    try:
        raw = load_toml(path)
    except FtcError as exc:
        return ResolvedConfig({}, problem=str(exc))
    values: dict[str, Any] = {}
    problems = []
    early = EarlyStopping.model_validate({})
    for name, model in SECTIONS:
        section = raw.get(name, {})
        try:
            validated = model.model_validate(section)
        except ValidationError:
            if section:
                problems.append(f"[{name}] does not validate")
            _flatten(section if isinstance(section, dict) else {}, name, values)
            continue
        if isinstance(validated, TrainSection):
            early = validated.early_stopping
        _flatten(validated.model_dump(mode="json"), name, values)
    for name, section in raw.items():
        if name in dict(SECTIONS):
            continue
        if isinstance(section, dict):
            _flatten(section, name, values)
        else:
            values[name] = section
    problem = f"{path}: {'; '.join(problems)}; shown as written" if problems else None
    return ResolvedConfig(values, early.metric, early.maximize, problem)


def config_diff(configs: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """(key, each run's value) for every key whose values are not all the same; a key a run lacks is None."""
    keys = sorted({key for config in configs for key in config})
    rows = []
    for key in keys:
        values = [config.get(key) for config in configs]
        if any(value != values[0] for value in values[1:]):
            rows.append((key, values))
    return rows


def value_text(value: Any) -> str:
    """A config value as TOML writes it: true, 5e-05, "linear" without quotes; unset is '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".6g")
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def legend(runs: list[RunFigures]) -> Text:
    out = Text()
    for run in runs:
        out.append("━━ ", style=run.color)
        out.append(run.session + "  ")
    return out


# ---------------------------------------------------------------------------------------- plot


class OverlayPanel(PlotextPlot):
    """Several runs' series against step, one colour per run, over a shared x range."""

    DEFAULT_CSS = PANEL_CSS.format(name="OverlayPanel")

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.series: list[tuple[list[int], list[float], int]] = []  # xs, ys, colour index

    def on_mount(self) -> None:
        self.border_title = Text(self.title, style="bold")

    def set_title(self, title: str) -> None:
        self.title = title
        self.border_title = Text(title, style="bold")

    def set_series(self, series: list[tuple[list[int], list[float], int]]) -> None:
        self.series = series

    def draw(self, hi: int) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("")
        hi = max(hi, 1)
        drawn: list[float] = []
        for xs, ys, index in self.series:
            xs, ys = within(xs, ys, 0, hi)
            if xs:
                plt.plot(*thin(xs, ys), marker="braille", color=COLORS[index % len(COLORS)])
                drawn += ys
        if drawn:
            plt.yticks(*value_ticks(min(drawn), max(drawn)))
        plt.xlim(0, hi)
        ticks = step_ticks(0, hi)
        plt.xticks([float(t) for t in ticks], [str(t) for t in ticks])
        self.refresh()
