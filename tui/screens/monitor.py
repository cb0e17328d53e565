"""The monitor screen: one session's history and live progress, loss and learning rate, and its controls.

Its ``SessionFeed`` replays the session's journal, then follows live events, so the full
curve is back after a reattach; each kind of event has its own handler below.
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, RichLog, Static, TabbedContent, TabPane

from engine.protocol import (
    CheckpointSaved,
    Envelope,
    EvaluationEnded,
    JobStarted,
    LogRecorded,
    SchedulePlanned,
    StepEnded,
)
from tui import actions, keymap
from tui.feed import SessionFeed, log_line, notice_line
from tui.widgets.curves import LearningRatePanel, LossPanel
from tui.widgets.header import RunHeader
from tui.widgets.tables import CheckpointTable, EvaluationView

PLOT_EVERY_S = 0.5
LOG_LINES = 1000
LOG_EVERY_N_STEPS = 10  # every step is in the panels; the log shows every Nth
# Warnings and errors stand out in the event log (a failing data test, a checkpoint skipped as damaged).
LEVEL_STYLES = {"warning": "yellow", "error": "bold red"}
TABS = ("events", "evaluation", "checkpoints")


class MonitorScreen(Screen[None]):
    """Live view of one session."""

    KEYMAP = keymap.MONITOR
    BINDINGS = keymap.bindings(KEYMAP)

    def __init__(self, root: Path, session: str) -> None:
        super().__init__()
        self.feed = SessionFeed(root, session)
        self.session_id = self.feed.session_id
        self.last_step: StepEnded | None = None
        self._plots_dirty = False
        self.feed.handle(StepEnded, self.step_ended)
        self.feed.handle(JobStarted, self.job_started)
        self.feed.handle(SchedulePlanned, self.schedule_planned)
        self.feed.handle(EvaluationEnded, self.evaluation_ended)
        self.feed.handle(CheckpointSaved, self.checkpoint_saved)
        self.feed.handle_every(self.log_event)
        self.feed.on_notice(self.log_notice)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.session_id, id="monitor-title")
        yield RunHeader(self.feed, id="run-header")
        with Horizontal(id="monitor-plots"):
            yield LossPanel(id="loss-plot")
            yield LearningRatePanel(id="lr-plot")
        with TabbedContent(id="monitor-tabs"):
            with TabPane("Events", id="events"):
                yield RichLog(id="event-log", max_lines=LOG_LINES, wrap=False, markup=False)
            with TabPane("Evaluation", id="evaluation"):
                yield EvaluationView(id="eval-view")
            with TabPane("Checkpoints", id="checkpoints"):
                yield CheckpointTable(id="ckpt-table")
        yield self.feed
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.feed.start()
        self.set_interval(PLOT_EVERY_S, self.redraw_plots)

    @property
    def loss_panel(self) -> LossPanel:
        return self.query_one(LossPanel)

    @property
    def lr_panel(self) -> LearningRatePanel:
        return self.query_one(LearningRatePanel)

    @property
    def step(self) -> int:
        return self.last_step.step if self.last_step else 0

    # ---------------------------------------------------------------- events in

    def step_ended(self, step: StepEnded, _env: Envelope) -> None:
        self.last_step = step
        if step.loss is not None:
            self.loss_panel.add_step(step.step, step.loss)
        if step.learning_rate is not None:
            self.lr_panel.add_step(step.step, step.learning_rate)
        self._plots_dirty = True

    def job_started(self, job: JobStarted, _env: Envelope) -> None:
        if job.job != "prepare":
            # A resume restarts at its checkpoint: drop the steps the crashed run did after it.
            self.loss_panel.rewind(job.step)
            self.lr_panel.rewind(job.step)
            self._plots_dirty = True

    def schedule_planned(self, plan: SchedulePlanned, _env: Envelope) -> None:
        self.lr_panel.set_plan(plan.steps, plan.learning_rates)
        self._plots_dirty = True

    def evaluation_ended(self, evaluation: EvaluationEnded, _env: Envelope) -> None:
        if "loss" in evaluation.metrics:
            self.loss_panel.add_validation(evaluation.step, evaluation.metrics["loss"])
            self._plots_dirty = True
        self.query_one(EvaluationView).show(evaluation)

    def checkpoint_saved(self, saved: CheckpointSaved, env: Envelope) -> None:
        self.query_one(CheckpointTable).add(saved, env.ts)

    def log_notice(self, text: str) -> None:
        self.query_one("#event-log", RichLog).write(notice_line(text))

    def log_event(self, env: Envelope) -> None:
        if isinstance(env.body, SchedulePlanned):
            return  # the learning-rate panel draws it
        if isinstance(env.body, StepEnded) and env.body.step % LOG_EVERY_N_STEPS:
            return
        line = log_line(env)
        if isinstance(env.body, LogRecorded) and env.body.level in LEVEL_STYLES:
            line.stylize(LEVEL_STYLES[env.body.level])
        self.query_one("#event-log", RichLog).write(line)

    # ---------------------------------------------------------------- display

    def redraw_plots(self) -> None:
        if self._plots_dirty:
            self._plots_dirty = False
            self.loss_panel.draw()
            self.lr_panel.draw()

    def action_next_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + 1) % len(TABS)] if tabs.active in TABS else TABS[0]

    # ---------------------------------------------------------------- controls

    def action_control(self, command: str) -> None:
        self.feed.control(command)

    def action_export(self) -> None:
        actions.send_export(self.feed, self.feed.root, self.session_id)

    @on(DataTable.RowSelected, "#ckpt-table")
    def checkpoint_selected(self, _event: DataTable.RowSelected) -> None:
        saved = self.query_one(CheckpointTable).selected()
        if saved is not None:
            self.feed.control("resume", Path(saved.path).name)
