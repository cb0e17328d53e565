"""The monitor screen: one session's history and live progress, loss and learning rate, and its controls.

On open it replays the session's journal, then follows live events (``EventFollower``
de-duplicates by seq), so the full curve is back after a reattach.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, RichLog, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from engine.client import EventFollower
from engine.protocol import Envelope
from engine.session import live_status, read_state, resolve
from tui import actions
from tui.format import duration, event_line
from tui.messages import CommandAnswered, EventsReceived
from tui.screens.sessions import STATUS_STYLE
from tui.widgets.curves import LearningRatePanel, LossPanel
from tui.widgets.tables import CheckpointTable, EvaluationView

PLOT_EVERY_S = 0.5
LOG_LINES = 1000
LOG_EVERY_N_STEPS = 10  # every step is in the panels; the log shows every Nth
TABS = ("events", "evaluation", "checkpoints")


class MonitorScreen(Screen[None]):
    """Live view of one session."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("p", "control('pause')", "Pause"),
        Binding("u", "control('unpause')", "Unpause"),
        Binding("c", "control('checkpoint')", "Checkpoint"),
        Binding("s", "control('stop')", "Stop"),
        Binding("r", "control('resume')", "Resume"),
        Binding("t", "next_tab", "Tab"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, root: Path, session: str) -> None:
        super().__init__()
        self.root = root
        self.paths = resolve(root, session)
        self.session_id = self.paths.id
        self.seen_seq = 0
        self.events_seen = 0
        self.last_step: dict[str, Any] = {}
        self.status = "?"
        self._plots_dirty = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.session_id, id="monitor-title")
        yield Static("", id="monitor-status")
        yield ProgressBar(id="monitor-progress", show_eta=False)
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
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.follow()
        self.refresh_status()
        self.set_interval(1.0, self.refresh_status)
        self.set_interval(PLOT_EVERY_S, self.redraw_plots)

    @property
    def loss_panel(self) -> LossPanel:
        return self.query_one(LossPanel)

    @property
    def lr_panel(self) -> LearningRatePanel:
        return self.query_one(LearningRatePanel)

    # ---------------------------------------------------------------- events in

    @work(thread=True, exclusive=True, group="follow")
    def follow(self) -> None:
        worker = get_current_worker()
        follower = EventFollower(self.paths)
        try:
            while not worker.is_cancelled:
                events = follower.poll(timeout=0.2)
                if events:
                    self.post_message(EventsReceived(events))
        finally:
            follower.close()

    @on(EventsReceived)
    def events_received(self, message: EventsReceived) -> None:
        log = self.query_one("#event-log", RichLog)
        for env in message.events:
            assert env.seq is not None and env.seq > self.seen_seq, "events must arrive once, in order"
            self.seen_seq = env.seq
            self.events_seen += 1
            self.apply(env, log)
        self.update_status_line()

    def apply(self, env: Envelope, log: RichLog) -> None:
        body = env.body.model_dump()
        if env.type == "step_ended":
            self.last_step = body
            if body.get("loss") is not None:
                self.loss_panel.add_step(body["step"], body["loss"])
            if body.get("learning_rate") is not None:
                self.lr_panel.add_step(body["step"], body["learning_rate"])
            self._plots_dirty = True
            if body["step"] % LOG_EVERY_N_STEPS:
                return
        elif env.type == "job_started" and body["job"] != "prepare":
            # A resume restarts at its checkpoint: drop the steps the crashed run did after it.
            self.loss_panel.rewind(body["step"])
            self.lr_panel.rewind(body["step"])
            self._plots_dirty = True
        elif env.type == "schedule_planned":
            self.lr_panel.set_plan(body["steps"], body["learning_rates"])
            self._plots_dirty = True
            return
        elif env.type == "evaluation_ended":
            if "loss" in body.get("metrics", {}):
                self.loss_panel.add_validation(body["step"], body["metrics"]["loss"])
                self._plots_dirty = True
            self.query_one(EvaluationView).show(body)
        elif env.type == "checkpoint_saved":
            self.query_one(CheckpointTable).add(body, env.ts)
        style = "red" if env.type == "job_failed" else ""
        log.write(Text(f"{env.seq:>6} {event_line(env.type, body)}", style=style))

    # ---------------------------------------------------------------- display

    @work(thread=True, exclusive=True, group="status")
    def refresh_status(self) -> None:
        try:
            status = live_status(read_state(self.paths))
        except Exception as exc:  # a damaged state file is shown, not fatal
            status = f"damaged ({exc})"
        self.app.call_from_thread(self._set_status, status)

    def _set_status(self, status: str) -> None:
        self.status = status
        self.update_status_line()

    def update_status_line(self) -> None:
        b = self.last_step
        step, total = b.get("step", 0), b.get("total_steps")
        parts = [Text(self.status, style=STATUS_STYLE.get(self.status, "bold"))]
        parts.append(Text(f"  step {step}" + (f"/{total}" if total else "")))
        if b.get("loss") is not None:
            parts.append(Text(f"  loss {b['loss']:.4f}"))
        if b.get("learning_rate") is not None:
            parts.append(Text(f"  lr {b['learning_rate']:.3g}"))
        if b.get("examples_per_s"):
            parts.append(Text(f"  {b['examples_per_s']:.1f} ex/s"))
        if b.get("tokens_per_s"):
            parts.append(Text(f"  {b['tokens_per_s']:.0f} tok/s"))
        if b.get("eta_s") is not None and self.status == "running":
            parts.append(Text(f"  ETA {duration(b['eta_s'])}"))
        parts.append(Text(f"  events {self.events_seen}", style="dim"))
        self.query_one("#monitor-status", Static).update(Text.assemble(*parts))
        if total:
            self.query_one("#monitor-progress", ProgressBar).update(total=total, progress=step)

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
        self.send_control(command)

    @on(DataTable.RowSelected, "#ckpt-table")
    def checkpoint_selected(self, _event: DataTable.RowSelected) -> None:
        entry = self.query_one(CheckpointTable).selected()
        if entry is not None:
            self.send_control("resume", Path(entry["path"]).name)

    @work(thread=True, group="control")
    def send_control(self, command: str, checkpoint: str | None = None) -> None:
        ok, text = actions.control(self.root, self.session_id, command, checkpoint=checkpoint)
        self.post_message(CommandAnswered(self.session_id, command, ok, text))

    @on(CommandAnswered)
    def command_answered(self, message: CommandAnswered) -> None:
        self.notify(message.text, severity="information" if message.ok else "error", timeout=6)
        self.refresh_status()  # after a resume the follower reconnects to the new engine by itself
