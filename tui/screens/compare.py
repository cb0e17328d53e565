"""The compare screen: sessions' loss and metric curves overlaid, their best figures, their config diff.

Each session has its own ``SessionFeed`` (journal replay, then live events), so finished,
crashed and running sessions are read the same way and a running one updates as it goes. The
plots and the table are redrawn at most every ``DRAW_EVERY_S`` after an event arrives, and not
at all while nothing arrives.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static
from textual.widgets.data_table import ColumnKey

from engine.protocol import EngineStarted, Envelope, EvaluationEnded, JobStarted
from tui import keymap
from tui.feed import SessionFeed
from tui.format import duration
from tui.messages import SessionOpened
from tui.replay import StepRun
from tui.status import status_text
from tui.widgets.compare import (
    MAX_RUNS,
    METRIC_LABELS,
    PLOT_METRICS,
    OverlayPanel,
    RunFigures,
    config_diff,
    legend,
    resolved_config,
    value_text,
)
from tui.widgets.footer import KeyFooter

DRAW_EVERY_S = 0.5
RUN_COLUMNS = ("Session", "Status", "Steps", "Best (metric, value, step)", "Time", "Ex/s")


class CompareScreen(Screen[None]):
    """Two to eight sessions side by side."""

    KEYMAP = keymap.COMPARE
    BINDINGS = keymap.bindings(KEYMAP)
    DEFAULT_CSS = """
    CompareScreen { overflow: hidden hidden; }
    #compare-legend { height: auto; max-height: 2; padding: 0 1; background: $boost; }
    #compare-plots { height: 2fr; min-height: 5; }
    #compare-runs { height: auto; max-height: 10; }
    #compare-diff-title { height: 1; padding: 0 1; background: $boost; }
    #compare-diff { height: 1fr; min-height: 2; }
    """

    def __init__(self, root: Path, sessions: list[str]) -> None:
        super().__init__()
        self.root = root
        self.feeds = [SessionFeed(root, session) for session in sessions[:MAX_RUNS]]
        self.runs = [RunFigures(feed.session_id, index) for index, feed in enumerate(self.feeds)]
        self.jobs: dict[str, str] = {}
        self.metric = PLOT_METRICS[0]
        self.diff_keys: list[str] = []
        self._columns: list[ColumnKey] = []
        self._pending = False
        self._last_draw = 0.0
        for feed, run in zip(self.feeds, self.runs, strict=True):
            self._follow(feed, run)

    def _follow(self, feed: SessionFeed, run: RunFigures) -> None:
        def engine_started(body: EngineStarted, env: Envelope) -> None:
            run.seen_at(env.ts, engine_started=True)
            self.jobs[run.session] = body.job

        def job_started(body: JobStarted, _env: Envelope) -> None:
            if body.job != "prepare":
                run.rewind(body.step)  # a resume repeats the steps after its checkpoint
                run.total_steps = body.total_steps or run.total_steps

        def steps_ended(steps: StepRun) -> None:  # a run of steps: a long journal replays in columns
            for step, loss, speed in zip(steps.steps, steps.losses, steps.examples_per_s, strict=True):
                run.add_step(step, None, loss, speed)
            if steps.total_steps:
                run.total_steps = steps.total_steps
            run.seen_at(steps.ts[0])
            run.seen_at(steps.ts[-1])

        def evaluation_ended(body: EvaluationEnded, _env: Envelope) -> None:
            if body.split == "validation":
                run.add_evaluation(body.step, body.metrics)

        feed.handle(EngineStarted, engine_started)
        feed.handle(JobStarted, job_started)
        feed.handle_steps(steps_ended)
        feed.handle(EvaluationEnded, evaluation_ended)
        feed.handle_every(lambda env: run.seen_at(env.ts), steps=False)
        feed.on_change(self.changed)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(legend(self.runs), id="compare-legend")
        with Horizontal(id="compare-plots"):
            yield OverlayPanel("loss (smoothed)", id="compare-loss")
            yield OverlayPanel(self._metric_title(), id="compare-metric")
        yield DataTable[str | Text](id="compare-runs", cursor_type="row")
        yield Static("", id="compare-diff-title")
        yield DataTable[str | Text](id="compare-diff", cursor_type="row", zebra_stripes=True)
        yield from self.feeds
        yield KeyFooter(self.KEYMAP)

    def on_mount(self) -> None:
        table = self.query_one("#compare-runs", DataTable)
        self._columns = table.add_columns(*RUN_COLUMNS)
        for run in self.runs:
            table.add_row(*self._row(run), key=run.session)
        self._show_configs()
        table.focus()
        for feed in self.feeds:
            feed.start()

    # ---------------------------------------------------------------- config diff

    def _show_configs(self) -> None:
        resolved = [resolved_config(feed.paths.config) for feed in self.feeds]
        for run, config in zip(self.runs, resolved, strict=True):
            run.metric, run.maximize = config.metric, config.maximize
        rows = config_diff([config.values for config in resolved])
        self.diff_keys = [key for key, _ in rows]
        table = self.query_one("#compare-diff", DataTable)
        table.add_column("config key")
        for run in self.runs:
            table.add_column(Text(run.session, style=run.color))
        for key, values in rows:
            table.add_row(key, *(value_text(value) for value in values), key=key)
        title = Text()
        if rows:
            keys = len({key for config in resolved for key in config.values})
            title.append(f"config: {len(rows)} of {keys} keys differ", style="bold")
        else:
            title.append("config: the same in every run", style="bold")
        title.append(" (defaults filled in)")
        for problem in (config.problem for config in resolved if config.problem):
            title.append(f"  {problem}", style="yellow")
        self.query_one("#compare-diff-title", Static).update(title)

    # ---------------------------------------------------------------- live figures

    def changed(self) -> None:
        """Events arrived: draw within DRAW_EVERY_S of the last drawing, once however many came."""
        if self._pending:
            return
        self._pending = True
        wait = self._last_draw + DRAW_EVERY_S - time.monotonic()
        self.set_timer(max(wait, 0.01), self.redraw)

    def _row(self, run: RunFigures) -> tuple[str | Text, ...]:
        feed = self.feeds[run.index]
        steps = f"{run.step}/{run.total_steps}" if run.total_steps else str(run.step)
        best = run.best()
        best_text = f"{best[0]} {best[1]:.4f} @{best[2]}" if best else "-"
        rate = run.mean_throughput()
        return (
            Text(run.session, style=run.color),
            status_text(feed.status),
            steps,
            best_text,
            duration(run.wall_s),
            f"{rate:.1f}" if rate is not None else "-",
        )

    def x_end(self) -> int:
        ends = [max(run.total_steps or 0, run.step, *(s for s, _ in run.evaluations)) for run in self.runs]
        return max([*ends, 1])

    def redraw(self) -> None:
        self._pending = False
        self._last_draw = time.monotonic()
        if not self.is_attached:
            return
        table = self.query_one("#compare-runs", DataTable)
        for run in self.runs:
            for column, value in zip(self._columns, self._row(run), strict=True):
                table.update_cell(run.session, column, value, update_width=True)
        end = self.x_end()
        loss = self.query_one("#compare-loss", OverlayPanel)
        loss.set_series([(run.steps, run.smoothed, run.index) for run in self.runs])
        loss.draw(end)
        metric = self.query_one("#compare-metric", OverlayPanel)
        metric.set_series([(*run.metric_curve(self.metric), run.index) for run in self.runs])
        metric.draw(end)

    def _metric_title(self) -> str:
        return f"validation {METRIC_LABELS.get(self.metric, self.metric)}"

    # ---------------------------------------------------------------- keys

    def action_next_metric(self) -> None:
        self.metric = PLOT_METRICS[(PLOT_METRICS.index(self.metric) + 1) % len(PLOT_METRICS)]
        self.query_one("#compare-metric", OverlayPanel).set_title(self._metric_title())
        self.redraw()

    def action_open(self) -> None:
        table = self.query_one("#compare-runs", DataTable)
        if table.row_count == 0:
            return
        session = self.runs[min(table.cursor_row, len(self.runs) - 1)].session
        self.post_message(SessionOpened(session, self.jobs.get(session)))

    @on(DataTable.RowSelected, "#compare-runs")
    def run_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open()
