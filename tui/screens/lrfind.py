"""The learning-rate range test's screen: loss against LR (log axis) as the sweep runs, the suggestion marked.

An lr_find session opens here (the App chooses by job kind). Its feed replays the journal, so a
reattached or finished test draws its whole curve. The suggestion is the engine's (the job's
summary): the steepest descent of the smoothed loss. Opened from the new-run form, enter
("Use it") closes this screen with the suggested rate, which the App gives to the form; opened
from the sessions list, enter shows the rate to copy into ``[train] learning_rate``.
"""

from __future__ import annotations

import math
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header, Static
from textual_plotext import PlotextPlot

from engine.protocol import (
    Envelope,
    JobFailed,
    JobFinished,
    JobStarted,
    JobStopped,
    LogRecorded,
    StepEnded,
)
from engine.session import LIVE_STATUSES
from tui import keymap
from tui.feed import SessionFeed
from tui.widgets.confirm import ask
from tui.widgets.curves import PANEL_CSS, legend, rate_text, thin, value_ticks
from tui.widgets.footer import KeyFooter
from tui.widgets.header import RunHeader

PLOT_EVERY_S = 0.5
HOW = "steepest descent of the smoothed loss"


def decade_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks at the powers of ten between two log10 values (every other one past six), labelled 1e-5."""
    first, last = math.floor(lo), math.ceil(hi)
    every = 1 if last - first <= 6 else 2
    ticks = [float(t) for t in range(first, last + 1, every)]
    return ticks, [f"1e{int(t)}" if t else "1" for t in ticks]


class LrCurve(PlotextPlot):
    """The smoothed loss against the LR (log10 on a linear axis), the suggestion a vertical line."""

    DEFAULT_CSS = PANEL_CSS.format(name="LrCurve")
    LEGEND = [("smoothed loss", "cyan")]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.rates: list[float] = []
        self.losses: list[float] = []
        self.suggested: float | None = None
        self._title()

    def _title(self) -> None:
        entries = list(self.LEGEND)
        if self.suggested is not None:
            entries.append((f"suggested {rate_text(self.suggested)}", "orange1"))
        self.border_title = legend("loss vs learning rate (log)", entries)

    def add(self, rate: float, loss: float) -> None:
        if rate > 0 and math.isfinite(loss):
            self.rates.append(rate)
            self.losses.append(loss)

    def reset(self) -> None:
        self.rates.clear()
        self.losses.clear()
        self.suggest(None)

    def suggest(self, rate: float | None) -> None:
        self.suggested = rate if rate is not None and rate > 0 else None
        self._title()

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("")
        xs = [math.log10(r) for r in self.rates]
        if xs:
            px, py = thin(xs, self.losses)  # type: ignore[arg-type]
            plt.plot(px, py, marker="braille", color="cyan")
            plt.yticks(*value_ticks(min(self.losses), max(self.losses)))
        lows = [*xs, *([math.log10(self.suggested)] if self.suggested else [])]
        if lows:
            lo, hi = min(lows), max(lows)
            if hi - lo < 1:
                lo, hi = lo - 0.5, hi + 0.5
            plt.xlim(lo, hi)
            plt.xticks(*decade_ticks(lo, hi))
        if self.suggested is not None:
            plt.vline(math.log10(self.suggested), "orange")
        self.refresh()


class LrFindScreen(Screen[float | None]):
    """One learning-rate range test: its curve, its suggestion, and (from the form) a key to use it."""

    DEFAULT_CSS = """
    LrFindScreen #lr-curve { height: 1fr; min-height: 6; }
    LrFindScreen #lr-suggestion { height: auto; padding: 0 1; }
    LrFindScreen #lr-note {
        height: 1; padding: 0 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis;
    }
    """
    KEYMAP = keymap.LR_FIND
    BINDINGS = keymap.bindings(KEYMAP)

    def __init__(self, root: Path, session: str, *, from_form: bool = False) -> None:
        super().__init__()
        self.feed = SessionFeed(root, session)
        self.session_id = self.feed.session_id
        self.from_form = from_form
        self.total: int | None = None
        self.step = 0
        self.rate: float | None = None
        self.suggested: float | None = None
        self.ending: Text | None = None  # why there is no suggestion: failed, stopped
        self._dirty = False
        self.curve = LrCurve(id="lr-curve")
        self.feed.handle(JobStarted, self.job_started)
        self.feed.handle(StepEnded, self.step_ended)
        self.feed.handle(JobFinished, self.job_finished)
        self.feed.handle(JobFailed, self.job_failed)
        self.feed.handle(JobStopped, self.job_stopped)
        self.feed.handle(LogRecorded, self.log_recorded)
        self.feed.on_change(self.show_suggestion)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"Learning-rate range test  {self.session_id}", id="lr-title")
        yield RunHeader(self.feed, id="run-header")
        yield self.curve
        yield Static("", id="lr-suggestion")
        yield Static("", id="lr-note")
        yield self.feed
        yield KeyFooter(self.KEYMAP)

    def on_mount(self) -> None:
        self.feed.start()
        self.show_suggestion()
        self.set_interval(PLOT_EVERY_S, self.redraw)

    # ---------------------------------------------------------------- events in

    def job_started(self, started: JobStarted, _env: Envelope) -> None:
        # Run again (a resume starts the sweep over): the old curve and suggestion go.
        self.total, self.step, self.suggested, self.ending = started.total_steps, 0, None, None
        self.curve.reset()
        self._dirty = True

    def step_ended(self, step: StepEnded, _env: Envelope) -> None:
        self.step, self.total = step.step, step.total_steps or self.total
        if step.learning_rate is not None:
            self.rate = step.learning_rate
            if step.loss is not None:
                self.curve.add(step.learning_rate, step.loss)
        self._dirty = True

    def job_finished(self, finished: JobFinished, _env: Envelope) -> None:
        self.suggested = finished.summary.suggested_learning_rate
        self.curve.suggest(self.suggested)
        if self.suggested is None:
            self.ending = Text("The sweep ended without a finite loss: no suggestion.", style="yellow")
        self._dirty = True

    def job_failed(self, failed: JobFailed, _env: Envelope) -> None:
        self.ending = Text(f"The range test failed: {failed.error_text}", style="bold red")

    def job_stopped(self, stopped: JobStopped, _env: Envelope) -> None:
        self.ending = Text(
            f"Stopped at step {stopped.step}: no suggestion (a range test is not resumed; "
            "'ftc resume' runs it again from the start).",
            style="yellow",
        )

    def log_recorded(self, log: LogRecorded, _env: Envelope) -> None:
        self.query_one("#lr-note", Static).update(Text(log.text, overflow="ellipsis", no_wrap=True))

    # ---------------------------------------------------------------- drawing

    def redraw(self) -> None:
        if self._dirty:
            self._dirty = False
            self.curve.draw()

    def show_suggestion(self) -> None:
        line = self.query_one("#lr-suggestion", Static)
        if self.suggested is not None:
            text = Text()
            text.append("Suggested learning rate ")
            text.append(rate_text(self.suggested), style="bold orange1")
            text.append(f" ({HOW})\n")
            if self.from_form:
                text.append("⏎ use it in the new-run form", style="bold")
            else:
                text.append(f"Set [train] learning_rate = {rate_text(self.suggested)} in the run's config")
            line.update(text)
        elif self.ending is not None:
            line.update(self.ending)
        elif self.total:
            at = f" at LR {rate_text(self.rate)}" if self.rate else ""
            line.update(f"Sweeping: step {self.step}/{self.total}{at}; the suggestion comes at the end.")
        else:
            line.update("Starting the range test...")

    # ---------------------------------------------------------------- keys

    def action_use(self) -> None:
        if self.suggested is None:
            where = f"step {self.step}/{self.total}" if self.total else "starting"
            why = self.ending.plain if self.ending is not None else f"the sweep is at {where}"
            self.notify(f"No suggestion yet: {why}", severity="warning")
            return
        if self.from_form:
            self.dismiss(float(rate_text(self.suggested)))  # the rate as shown: 2.4e-2, not 0.02361...
            return
        self.notify(f"Suggested learning rate {rate_text(self.suggested)}: set [train] learning_rate to it")

    def action_stop(self) -> None:
        if self.feed.status not in LIVE_STATUSES:
            self.notify(f"{self.session_id} is {self.feed.status}: nothing to stop", severity="warning")
            return
        ask(self, f"Stop the range test {self.session_id}?", lambda: self.feed.control("stop"))
