"""The monitor's resource history: engine CPU and GPU use, and memory, over the run's time.

The engine journals a ``ResourcesSampled`` every few seconds, so a reattached console draws
the whole history (the header's third line shows only the newest sample). With room (the tab
zoomed, or a tall terminal): two panels side by side, use in % (engine CPU, 100 = one core
busy, and each GPU's utilisation) and memory in GiB (engine RSS and each GPU's memory used),
against the time since the first sample. With fewer than ``PLOT_MIN_ROWS`` rows (80x24 and
60x20 unzoomed): a sparkline row for the engine (CPU, RSS) and one for each GPU (use, memory),
the whole history in the width there is (each cell the highest sample of its stretch), then the
newest figure. Without GPUs there are no GPU lines, rows or legend entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.widgets import Static
from textual_plotext import PlotextPlot

from engine.protocol import ResourcesSampled
from tui.format import duration, size
from tui.widgets.curves import PANEL_CSS, X_TICKS, legend, thin, value_ticks

GIB = float(1 << 30)
PLOT_MIN_ROWS = 10  # below this height, sparkline rows instead of the two plots
BLOCKS = " ▁▂▃▄▅▆▇█"
# (Rich colour for the legend, plotext colour for the line) of the engine and of each GPU in turn.
ENGINE_COLOR = ("cyan", "cyan")
GPU_COLORS = (
    ("magenta", "magenta"),
    ("yellow", "yellow"),
    ("blue", "blue"),
    ("red", "red"),
    ("green", "green"),
)


def span_text(seconds: float) -> str:
    """A tick's time since the first sample, short: 0s, 40s, 5m, 1h05."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" if s % 60 == 0 or s >= 600 else f"{s // 60}m{s % 60:02d}"
    return f"{s // 3600}h{s % 3600 // 60:02d}"


def spark(values: Sequence[float], width: int, top: float | None = None) -> str:
    """The values in ``width`` cells, each the highest of its stretch, as blocks from 0 to ``top``."""
    if not values or width <= 0:
        return ""
    top = top if top is not None else max(values)
    n = len(values)
    cells = min(width, n)
    out = []
    for c in range(cells):
        stretch = values[c * n // cells : max((c + 1) * n // cells, c * n // cells + 1)]
        level = round(max(stretch) / top * (len(BLOCKS) - 1)) if top > 0 else 0
        out.append(BLOCKS[max(0, min(level, len(BLOCKS) - 1))])
    return "".join(out)


def time_ticks(hi: float, count: int = X_TICKS) -> list[float]:
    """About ``count`` ticks from 0 to hi seconds, at round spans."""
    for step in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if hi / step <= count:
            break
    else:
        step = int(hi / count) or 1
    return [float(t) for t in range(0, int(hi) + 1, step)]


@dataclass
class Series:
    """One line of a panel: its name, colours and points (seconds since the first sample, value)."""

    name: str
    colors: tuple[str, str]
    top: float | None = None  # the sparkline's full cell (a GPU's memory); None: the highest value
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)


class ResourcePanel(PlotextPlot):
    """Lines over time on one y scale, the legend in the top border."""

    DEFAULT_CSS = PANEL_CSS.format(name="ResourcePanel") + "ResourcePanel { width: 1fr; }"

    def __init__(self, title: str, unit: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.title = title
        self.unit = unit

    def on_mount(self) -> None:
        self.border_title = legend(self.title, [])

    def draw(self, series: Sequence[Series], end: float) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("")
        shown = [s for s in series if s.xs]
        self.border_title = legend(f"{self.title} {self.unit}", [(s.name, s.colors[0]) for s in shown])
        drawn: list[float] = []
        for s in shown:
            xs, ys = thin(s.xs, s.ys)  # type: ignore[arg-type]
            plt.plot(xs, ys, marker="braille", color=s.colors[1])
            drawn += ys
        if drawn:
            plt.yticks(*value_ticks(min(0.0, min(drawn)), max(drawn) or 1.0))
        hi = max(end, 1.0)
        plt.xlim(0, hi)
        ticks = time_ticks(hi)
        plt.xticks(ticks, [span_text(t) for t in ticks])
        self.refresh()


class ResourceHistory(Vertical):
    """Every resource sample of the session: two plots with room, sparkline rows without."""

    DEFAULT_CSS = """
    ResourceHistory { height: 1fr; }
    ResourceHistory > #resources-plots { height: 1fr; }
    ResourceHistory > #resources-lines { height: auto; padding: 0 1; }
    """

    def __init__(self, **kwargs: str) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.first_ts: float | None = None
        self.last_ts = 0.0
        self.samples = 0
        self.cpu = Series("engine cpu", ENGINE_COLOR)
        self.rss = Series("engine rss", ENGINE_COLOR)
        self.gpu_use: dict[int, Series] = {}
        self.gpu_memory: dict[int, Series] = {}

    def compose(self) -> ComposeResult:
        yield Static("no resource samples yet", id="resources-lines")
        with Horizontal(id="resources-plots"):
            yield ResourcePanel("use", "%", id="resources-use")
            yield ResourcePanel("memory", "GiB", id="resources-memory")

    @property
    def plotted(self) -> bool:
        """Whether there is room for the plots (else the sparkline rows show)."""
        return self.size.height >= PLOT_MIN_ROWS

    def on_resize(self, _event: Resize) -> None:
        self.draw()

    def add(self, sample: ResourcesSampled, ts: float) -> None:
        """One sample, taken at ``ts`` (its event's time)."""
        if self.first_ts is None:
            self.first_ts = ts
        x = ts - self.first_ts
        self.last_ts = max(self.last_ts, x)
        self.samples += 1
        _point(self.cpu, x, sample.cpu_percent)
        _point(self.rss, x, None if sample.rss is None else sample.rss / GIB)
        for gpu in sample.gpus:
            colors = (
                GPU_COLORS[len(self.gpu_use) % len(GPU_COLORS)] if gpu.index not in self.gpu_use else None
            )
            if colors is not None:
                self.gpu_use[gpu.index] = Series(f"gpu{gpu.index}", colors)
                self.gpu_memory[gpu.index] = Series(f"gpu{gpu.index}", colors)
            _point(self.gpu_use[gpu.index], x, gpu.utilization)
            memory = self.gpu_memory[gpu.index]
            _point(memory, x, None if gpu.memory_used is None else gpu.memory_used / GIB)
            if gpu.memory_total:
                memory.top = gpu.memory_total / GIB

    def draw(self) -> None:
        plotted = self.plotted and self.samples > 0
        self.query_one("#resources-plots").display = plotted
        lines = self.query_one("#resources-lines", Static)
        lines.display = not plotted
        if not plotted:
            text = (
                self.spark_lines(max(self.size.width - 2, 20)) if self.samples else "no resource samples yet"
            )
            lines.update(text)
            return
        self.query_one("#resources-use", ResourcePanel).draw([self.cpu, *self.gpu_use.values()], self.last_ts)
        self.query_one("#resources-memory", ResourcePanel).draw(
            [self.rss, *self.gpu_memory.values()], self.last_ts
        )

    def spark_lines(self, width: int) -> Text:
        """A row for the engine (cpu, rss) and one per GPU (use, memory), each half of ``width``."""
        half = (width - 2) // 2
        rows = [
            ("engine", ENGINE_COLOR[0], ("cpu", self.cpu, _percent), ("rss", self.rss, _gib)),
            *(
                (f"gpu{i}", use.colors[0], ("use", use, _percent), ("mem", self.gpu_memory[i], _gib))
                for i, use in self.gpu_use.items()
            ),
        ]
        label = max(len(row[0]) for row in rows)
        out = Text(f"over {duration(self.last_ts)}, the highest in each cell; z: plots", style="dim")
        for name, color, *halves in rows:
            out.append("\n")
            out.append(f"{name:{label}}", style=f"bold {color}")
            for i, (what, series, text) in enumerate(halves):
                now = text(series.ys[-1]) if series.ys else "-"
                room = half - (label if i == 0 else 0) - len(what) - len(now) - 3
                out.append(f"  {what} " if i else f" {what} ")
                # Use against 100% (a busy engine may pass it), memory against the GPU's total.
                top = max(100.0, *series.ys) if text is _percent and series.ys else series.top
                out.append(spark(series.ys, room, top).ljust(max(room, 0)), style=color)
                out.append(f" {now}")
        return out


def _percent(value: float) -> str:
    return f"{value:.0f}%"


def _gib(value: float) -> str:
    return size(value * GIB)


def _point(series: Series, x: float, y: float | None) -> None:
    if y is not None:
        series.xs.append(x)
        series.ys.append(y)
