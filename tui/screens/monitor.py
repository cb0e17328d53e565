"""The monitor screen: one session's history and live progress, loss and learning rate, and its controls.

Its ``SessionFeed`` replays the session's journal, then follows live events, so the full
curve is back after a reattach; each kind of event has its own handler below.
"""

from __future__ import annotations

import time
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane

from engine.protocol import (
    WORKER_FINISHED,
    CheckpointSaved,
    Envelope,
    EvaluationEnded,
    JobFailed,
    JobStarted,
    LogRecorded,
    PhaseChanged,
    ResourcesSampled,
    SchedulePlanned,
    StepEnded,
    WorkersReported,
)
from engine.session import LIVE_STATUSES
from tui import actions, keymap
from tui.feed import SessionFeed, log_line, notice_line, step_line
from tui.screens.log import TextScreen, engine_log_text
from tui.widgets.confirm import ask
from tui.widgets.curves import WINDOW_STEPS, LearningRatePanel, LossPanel
from tui.widgets.evaluation import EvaluationView, best_rule
from tui.widgets.eventlog import EventLog, FailureNote
from tui.widgets.footer import KeyFooter
from tui.widgets.header import RunHeader
from tui.widgets.resources import ResourceHistory
from tui.widgets.tables import CheckpointTable

if TYPE_CHECKING:
    from tui.replay import StepRun

PLOT_EVERY_S = 0.5
LOG_LINES = 200  # lines in the event log's list at once; enter on its first line shows more
LOG_EVERY_N_STEPS = 10  # every step is in the panels; the log shows every Nth
# Warnings and errors stand out in the event log (a failing data test, a checkpoint skipped as damaged).
LEVEL_STYLES = {"warning": "yellow", "error": "bold red"}
TABS = ("events", "evaluation", "checkpoints", "resources")


class MonitorScreen(Screen[None]):
    """Live view of one session."""

    # Zoomed (z), the tabs take the plots' rows: the Evaluation tab's matrix and plot need them at 80x24.
    DEFAULT_CSS = """
    MonitorScreen.-zoomed #monitor-plots { display: none; }
    MonitorScreen.-zoomed #monitor-tabs { height: 1fr; }
    """
    KEYMAP = keymap.MONITOR
    BINDINGS = keymap.bindings(KEYMAP)

    def __init__(self, root: Path, session: str) -> None:
        super().__init__()
        self.feed = SessionFeed(root, session)
        self.session_id = self.feed.session_id
        self.last_step: StepEnded | None = None
        self._plots_dirty = False
        self._eval_plot_dirty = False
        self._drawn_at = 0.0  # when the loss and LR plots were last drawn (monotonic)
        self.feed.handle_steps(self.steps_ended)
        self.feed.handle(JobStarted, self.job_started)
        self.feed.handle(SchedulePlanned, self.schedule_planned)
        self.feed.handle(EvaluationEnded, self.evaluation_ended)
        self.feed.handle(CheckpointSaved, self.checkpoint_saved)
        self.feed.handle(JobFailed, self.job_failed)
        self.feed.handle(ResourcesSampled, self.resources_sampled)
        self._resources_dirty = False
        self.total_steps: int | None = None  # the run's length, from its steps or its schedule
        self.windowed = False  # the plots show the last WINDOW_STEPS steps rather than all
        self._last_phase: str | None = None
        self._workers_state: tuple[object, ...] | None = None  # the last group health logged
        self.feed.handle_every(self.log_event, steps=False)  # steps: every Nth, in steps_ended
        self.feed.on_notice(self.log_notice)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.session_id, id="monitor-title")
        yield FailureNote("", id="monitor-failure")
        yield RunHeader(self.feed, id="run-header")
        with Horizontal(id="monitor-plots"):
            yield LossPanel(id="loss-plot")
            yield LearningRatePanel(id="lr-plot")
        with TabbedContent(id="monitor-tabs"):
            with TabPane("Events", id="events"):
                yield EventLog(max_lines=LOG_LINES, id="event-log")
            with TabPane("Evaluation", id="evaluation"):
                yield EvaluationView(self.session_id, best_rule(self.feed.paths.config), id="eval-view")
            with TabPane("Checkpoints", id="checkpoints"):
                yield CheckpointTable(id="ckpt-table")
            with TabPane("Resources", id="resources"):
                yield ResourceHistory(id="resource-history")
        yield self.feed
        yield KeyFooter(self.KEYMAP)

    def on_mount(self) -> None:
        self.feed.start()
        self.set_interval(PLOT_EVERY_S, self.redraw_plots)
        self.feed.on_change(self.events_changed)
        self.feed.on_replayed(self.redraw_plots)  # the whole history at once, not at the next interval

    def events_changed(self) -> None:
        """Draw new steps at once when the plots were last drawn PLOT_EVERY_S ago or more (the
        interval alone drew a reattach's last page up to PLOT_EVERY_S late); else at the interval."""
        if self._plots_dirty and time.monotonic() - self._drawn_at >= PLOT_EVERY_S:
            self.redraw_plots()

    # Looked up once: a reattach replays every step through these (a query each cost 1.7 s at 100k).
    @cached_property
    def loss_panel(self) -> LossPanel:
        return self.query_one(LossPanel)

    @cached_property
    def lr_panel(self) -> LearningRatePanel:
        return self.query_one(LearningRatePanel)

    @cached_property
    def resource_history(self) -> ResourceHistory:
        return self.query_one(ResourceHistory)

    @cached_property
    def event_log(self) -> EventLog:
        return self.query_one(EventLog)

    @property
    def evaluation_view(self) -> EvaluationView:
        return self.query_one(EvaluationView)

    @property
    def step(self) -> int:
        return self.last_step.step if self.last_step else 0

    # ---------------------------------------------------------------- events in

    def steps_ended(self, run: StepRun) -> None:
        # A run of steps as columns: a reattach hands 100k steps over in a few dozen calls.
        self.last_step = run.last
        if run.total_steps:
            self.total_steps = run.total_steps
        self.loss_panel.add_steps(run.steps, run.losses)
        self.lr_panel.add_steps(run.steps, run.learning_rates)
        self._plots_dirty = True
        self._eval_plot_dirty = True
        log = self.event_log
        for i, step in enumerate(run.steps):
            if step % LOG_EVERY_N_STEPS == 0:
                # The line keeps its own step, not the run (whose other steps' JSON can go).
                log.write_lazy(partial(step_line, run.seqs[i], run.row(i)))

    def job_started(self, job: JobStarted, _env: Envelope) -> None:
        if job.job != "prepare":
            # A resume restarts at its checkpoint: drop the steps the crashed run did after it.
            self.loss_panel.rewind(job.step)
            self.lr_panel.rewind(job.step)
            self.evaluation_view.rewind(job.step)
            self._plots_dirty = True
            self._eval_plot_dirty = True

    def schedule_planned(self, plan: SchedulePlanned, _env: Envelope) -> None:
        self.lr_panel.set_plan(
            plan.steps, plan.learning_rates, plan.head_lr_multiplier, plan.lowest_lr_multiplier
        )
        if plan.steps and not self.total_steps:
            self.total_steps = plan.steps[-1]
        self._plots_dirty = True

    def evaluation_ended(self, evaluation: EvaluationEnded, _env: Envelope) -> None:
        if "loss" in evaluation.metrics:
            self.loss_panel.add_validation(evaluation.step, evaluation.metrics["loss"])
            self._plots_dirty = True
        self.evaluation_view.add(evaluation)
        self._eval_plot_dirty = True

    def checkpoint_saved(self, saved: CheckpointSaved, env: Envelope) -> None:
        self.query_one(CheckpointTable).add(saved, env.ts)

    def resources_sampled(self, sample: ResourcesSampled, env: Envelope) -> None:
        self.resource_history.add(sample, env.ts)
        self._resources_dirty = True

    def job_failed(self, failed: JobFailed, _env: Envelope) -> None:
        # A run that failed before its first step has nothing else to show: say why, in full, on top.
        if failed.step <= 0 and self.last_step is None:
            note = self.query_one(FailureNote)
            note.update(
                Text(
                    f"failed before step 1: {failed.error_name}: {failed.error_text}  (v: the engine's log)",
                    style="bold red",
                )
            )
            note.display = True

    def log_notice(self, text: str) -> None:
        self.event_log.write(notice_line(text))

    def log_event(self, env: Envelope) -> None:
        if isinstance(env.body, (SchedulePlanned, ResourcesSampled)):
            return  # the learning-rate panel draws the one; the other comes every few seconds
        if isinstance(env.body, PhaseChanged):
            if env.body.phase == self._last_phase:
                return  # progress within a phase: the header shows it
            self._last_phase = env.body.phase
        if isinstance(env.body, WorkersReported):
            self.log_workers(env.body, env)
            return
        line = log_line(env)
        if isinstance(env.body, LogRecorded) and env.body.level in LEVEL_STYLES:
            line.stylize(LEVEL_STYLES[env.body.level])
        self.event_log.write(line)

    def log_workers(self, report: WorkersReported, env: Envelope) -> None:
        """A multi-worker group's health, when it changes (the chief repeats it every few seconds)."""
        state = (report.total, tuple((w.index, w.alive, w.note) for w in report.workers))
        if state == self._workers_state:
            return
        self._workers_state = state
        alive = sum(1 for w in report.workers if w.alive or w.note == WORKER_FINISHED)
        parts = [f"{env.seq:>6} workers {alive}/{report.total} alive"]
        for w in report.workers:
            if not w.alive and w.note != WORKER_FINISHED:
                where = "".join(
                    (f" on {w.host}" if w.host else "", f" pid {w.pid}" if w.pid is not None else "")
                )
                parts.append(f"worker {w.index}{where} is not alive: {w.note or 'no reason given'}")
        self.event_log.write(Text("; ".join(parts), style="" if alive >= report.total else "bold yellow"))

    # ---------------------------------------------------------------- display

    def x_range(self) -> tuple[int, int]:
        """The steps both plots show: the whole run (its length when known), or the last steps."""
        now = self.step
        end = max(self.total_steps or 0, now, max(self.loss_panel.val_steps, default=0), 1)
        if self.windowed:
            return max(0, now - WINDOW_STEPS), max(now, 1)
        return 0, end

    def redraw_plots(self) -> None:
        if self._plots_dirty:
            self._plots_dirty = False
            self._drawn_at = time.monotonic()
            lo, hi = self.x_range()
            for panel in (self.loss_panel, self.lr_panel):
                panel.set_x_range(lo, hi)
                panel.draw()
        # The evaluations' plot and the resources only while their tab shows (each draws
        # everything again each time).
        active = self.query_one(TabbedContent).active
        if self._eval_plot_dirty and active == "evaluation":
            self._eval_plot_dirty = False
            self.evaluation_view.draw((self.loss_panel.steps, self.loss_panel.losses))
        if self._resources_dirty and active == "resources":
            self._resources_dirty = False
            self.resource_history.draw()

    def action_zoom(self) -> None:
        zoomed = not self.has_class("-zoomed")
        self.set_class(zoomed, "-zoomed")
        self._plots_dirty = self._eval_plot_dirty = self._resources_dirty = True
        # At the new size: the evaluation view is not always sent a Resize when the tabs grow.
        self.call_after_refresh(self.evaluation_view.fit)
        self.call_after_refresh(self.redraw_plots)

    def action_log_scale(self) -> None:
        self.loss_panel.toggle_log_scale()
        self._plots_dirty = True
        self.redraw_plots()

    def action_window(self) -> None:
        self.windowed = not self.windowed
        shown = f"the last {WINDOW_STEPS} steps" if self.windowed else "every step"
        self.notify(f"plots: {shown}", timeout=2)
        self._plots_dirty = True
        self.redraw_plots()

    def action_filter(self) -> None:
        self.query_one(TabbedContent).active = "events"
        self.event_log.start_filter()

    def action_engine_log(self) -> None:
        path = self.feed.paths.log
        self.app.push_screen(TextScreen(f"engine log: {path}", engine_log_text(path), end=True))

    @on(EventLog.Selected)
    def event_selected(self, message: EventLog.Selected) -> None:
        self.app.push_screen(TextScreen("event", message.text))

    def action_next_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        # Focus left in a pane being hidden moves to a sibling there, which would bring the pane back.
        self.set_focus(None)
        tabs.active = TABS[(TABS.index(tabs.active) + 1) % len(TABS)] if tabs.active in TABS else TABS[0]

    @on(TabbedContent.TabActivated, "#monitor-tabs")
    def tab_activated(self, message: TabbedContent.TabActivated) -> None:
        if message.pane.id == "evaluation" and self.query_one(TabbedContent).active == "evaluation":
            # Up and down choose an evaluation at once; tab moves on to its confusion matrix. Focused
            # now, not later, and without the pane's Focused message: a deferred focus would bring
            # this tab back after a quick second t.
            with self.prevent(TabPane.Focused):
                self.set_focus(self.evaluation_view.table)
            self._eval_plot_dirty = True
            self.call_after_refresh(self.redraw_plots)
        elif message.pane.id == "resources":
            self._resources_dirty = True
            self.call_after_refresh(self.redraw_plots)

    # ---------------------------------------------------------------- controls

    def action_control(self, command: str) -> None:
        if command == "stop" and self.feed.status in LIVE_STATUSES:
            ask(self, f"Stop session {self.session_id}?", lambda: self.feed.control(command))
            return
        self.feed.control(command)

    def action_export(self) -> None:
        actions.send_export(self.feed, self.feed.root, self.session_id)

    @on(DataTable.RowSelected, "#ckpt-table")
    def checkpoint_selected(self, _event: DataTable.RowSelected) -> None:
        saved = self.query_one(CheckpointTable).selected()
        if saved is not None:
            name = Path(saved.path).name
            ask(
                self,
                f"Resume {self.session_id} from {name} (step {saved.step})?",
                lambda: self.feed.control("resume", name),
            )
