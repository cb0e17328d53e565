"""The sessions screen: every session in the sessions folder with its live status."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.widgets.data_table import ColumnKey

from engine.session import SessionInfo, list_sessions
from tui import actions
from tui.format import ago
from tui.messages import CommandAnswered, SessionsListed

REFRESH_S = 1.0
STATUS_STYLE = {
    "running": "bold green",
    "paused": "bold yellow",
    "stopping": "yellow",
    "starting": "cyan",
    "finished": "blue",
    "stopped": "magenta",
    "failed": "bold red",
    "crashed": "bold red reverse",
    "damaged": "red",
}


class SessionsScreen(Screen[None]):
    """Lists sessions, refreshes every second, and controls the selected one."""

    BINDINGS = [
        Binding("enter", "open", "Open"),
        Binding("p", "control('pause')", "Pause"),
        Binding("u", "control('unpause')", "Unpause"),
        Binding("c", "control('checkpoint')", "Checkpoint"),
        Binding("s", "control('stop')", "Stop"),
        Binding("r", "control('resume')", "Resume"),
        Binding("d", "open_dataset", "Data"),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.sessions: list[SessionInfo] = []
        self.columns: list[ColumnKey] = []

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        yield Static(f"Sessions in {self.root}", id="sessions-title")
        table: DataTable[str | Text] = DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        self.columns = table.add_columns("Session", "Status", "Job", "Step", "Best", "Seen")
        yield table
        yield Static("", id="sessions-empty")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.refresh_sessions()
        self.set_interval(REFRESH_S, self.refresh_sessions)

    @work(thread=True, exclusive=True, group="sessions-list")
    def refresh_sessions(self) -> None:
        self.post_message(SessionsListed(list_sessions(self.root)))

    @on(SessionsListed)
    def show_sessions(self, message: SessionsListed) -> None:
        # Update cells in place (not clear and refill) so the cursor, scroll and widths stay put.
        self.sessions = message.sessions
        table: DataTable[str | Text] = self.query_one("#sessions-table", DataTable)
        present = {str(key.value) for key in table.rows}
        wanted = {s.id for s in self.sessions}
        for gone in present - wanted:
            table.remove_row(gone)
        now = time.time()
        for s in self.sessions:
            step = f"{s.step}" + (f"/{s.total_steps}" if s.total_steps else "")
            best = f"{s.best_metric_name} {s.best_metric:.4f}" if s.best_metric is not None else "-"
            status = Text(s.status, style=STATUS_STYLE.get(s.status, ""))
            cells: tuple[str | Text, ...] = (s.id, status, s.job, step, best, ago(s.heartbeat, now))
            if s.id in present:
                for column, value in zip(self.columns, cells, strict=True):
                    table.update_cell(s.id, column, value, update_width=True)
            else:
                table.add_row(*cells, key=s.id)
            # DataTable measures widths on idle, after the first frame has cached rows at the
            # header's width (ids showed cut to 7 characters): size the columns up front.
            for column, value in zip(self.columns, cells, strict=True):
                col = table.columns[column]
                col.content_width = max(col.content_width, len(str(value)))
        if wanted - present:
            table.sort(self.columns[0], reverse=True)
        self.query_one("#sessions-empty", Static).update(
            ""
            if self.sessions
            else "No sessions yet. Start one with 'ftc train CONFIG.toml' or 'ftc demo' (? for help)."
        )

    def selected_id(self) -> str | None:
        table = self.query_one("#sessions-table", DataTable)
        if not self.sessions or table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return str(key.value) if key.value is not None else None

    def action_open(self) -> None:
        session = self.selected_id()
        if session is None:
            self.notify("No session selected", severity="warning")
            return
        from tui.screens.monitor import MonitorScreen
        from tui.screens.predict import PREDICT_JOB, PredictScreen

        # A prediction session has no loss curve: it opens on its throughput, labels and last rows.
        job = next((info.job for info in self.sessions if info.id == session), None)
        screen = PredictScreen if job == PREDICT_JOB else MonitorScreen
        self.app.push_screen(screen(self.root, session))

    def action_open_dataset(self) -> None:
        from tui.screens.open_file import OpenFileScreen

        def opened(path: str | None) -> None:
            if path:
                from tui.screens.dataset import DatasetScreen

                self.app.push_screen(DatasetScreen(path))

        self.app.push_screen(
            OpenFileScreen("Inspect and test a data file (CSV, TSV, JSONL, Parquet, HDF5):"), opened
        )

    @on(DataTable.RowSelected)
    def row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_control(self, command: str) -> None:
        session = self.selected_id()
        if session is None:
            self.notify("No session selected", severity="warning")
            return
        self.send_control(session, command)

    @work(thread=True, group="control")
    def send_control(self, session: str, command: str) -> None:
        ok, text = actions.control(self.root, session, command)
        self.post_message(CommandAnswered(session, command, ok, text))

    @on(CommandAnswered)
    def command_answered(self, message: CommandAnswered) -> None:
        self.notify(message.text, severity="information" if message.ok else "error", timeout=6)
        self.refresh_sessions()
