"""The sessions screen: every session in the sessions folder with its live status."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static
from textual.widgets.data_table import ColumnKey

from engine.session import LIVE_STATUSES, SessionInfo, list_sessions
from tui import actions, keymap, messages
from tui.format import ago
from tui.live import while_shown
from tui.messages import (
    CommandAnswered,
    ComparisonRequested,
    DataFileRequested,
    SessionOpened,
    SessionsListed,
)
from tui.status import status_text
from tui.widgets.confirm import ask
from tui.widgets.footer import KeyFooter

REFRESH_S = 1.0
BACKGROUND_EVERY = 5  # under another screen: a listing every 5 s (the app's notifications)
MAX_COMPARED = 8  # the compare screen has a colour for each of this many runs
MARK = "● "  # before a marked session's name


class SessionsScreen(Screen[None]):
    """Lists sessions, refreshes every second, and controls the selected one."""

    KEYMAP = keymap.SESSIONS
    BINDINGS = keymap.bindings(KEYMAP)

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.sessions: list[SessionInfo] = []
        self.columns: list[ColumnKey] = []
        self.marked: set[str] = set()  # sessions marked (space) for comparing

    def compose(self) -> ComposeResult:
        yield Header()  # no clock: its repaint each second reached the screens above this one
        yield Static(f"Sessions in {self.root}", id="sessions-title")
        table: DataTable[str | Text] = DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        self.columns = table.add_columns("Session", "Status", "Job", "Step", "Best", "Seen")
        yield table
        yield Static("", id="sessions-empty")
        yield KeyFooter(self.KEYMAP)

    def on_mount(self) -> None:
        self._ticks = 0
        self.refresh_sessions()
        self.set_interval(REFRESH_S, self._tick)

    def _tick(self) -> None:
        # Under another screen the listing goes on, slower, for the app's notifications when a
        # session ends; the table is updated when this screen is shown again.
        self._ticks += 1
        if self.app.screen is self or self._ticks % BACKGROUND_EVERY == 0:
            self.refresh_sessions()

    def on_screen_resume(self) -> None:
        self.refresh_sessions()

    @work(thread=True, exclusive=True, group="sessions-list")
    def refresh_sessions(self) -> None:
        self.post_message(SessionsListed(list_sessions(self.root)))

    @on(SessionsListed)
    @while_shown
    def show_sessions(self, message: SessionsListed) -> None:
        # Update cells in place (not clear and refill) so the cursor, scroll and widths stay put.
        self.sessions = message.sessions
        if self.app.screen is not self:
            return  # repainting a hidden table redraws the screen above it; done on resume
        table: DataTable[str | Text] = self.query_one("#sessions-table", DataTable)
        present = {str(key.value) for key in table.rows}
        wanted = {s.id for s in self.sessions}
        for gone in present - wanted:
            table.remove_row(gone)
        self.marked &= wanted
        now = time.time()
        for s in self.sessions:
            step = f"{s.step}" + (f"/{s.total_steps}" if s.total_steps else "")
            best = f"{s.best_metric_name} {s.best_metric:.4f}" if s.best_metric is not None else "-"
            status, name = status_text(s.status), self.name_cell(s.id)
            cells: tuple[str | Text, ...] = (name, status, s.job, step, best, ago(s.heartbeat, now))
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
        job = next((info.job for info in self.sessions if info.id == session), None)
        self.post_message(SessionOpened(session, job))

    def name_cell(self, session: str) -> str | Text:
        return Text(MARK + session, style="bold") if session in self.marked else session

    def action_mark(self) -> None:
        """Mark or unmark the selected session for comparing, then move to the next row."""
        session = self.selected_id()
        if session is None:
            self.notify("No session selected", severity="warning")
            return
        self.marked ^= {session}
        table: DataTable[str | Text] = self.query_one("#sessions-table", DataTable)
        table.update_cell(session, self.columns[0], self.name_cell(session), update_width=True)
        col = table.columns[self.columns[0]]
        col.content_width = max(col.content_width, len(MARK + session))
        table.move_cursor(row=table.cursor_row + 1)

    def action_compare(self) -> None:
        table = self.query_one("#sessions-table", DataTable)
        order = [str(row.key.value) for row in table.ordered_rows]
        chosen = [session for session in order if session in self.marked]
        selected = self.selected_id()
        if len(chosen) == 1 and selected is not None and selected not in chosen:
            chosen = [session for session in order if session in (*chosen, selected)]
        if len(chosen) < 2:
            self.notify("Mark two or more sessions (space), then press m to compare them", severity="warning")
            return
        if len(chosen) > MAX_COMPARED:
            self.notify(
                f"{len(chosen)} sessions marked; compare shows at most {MAX_COMPARED}: unmark some (space)",
                severity="warning",
            )
            return
        self.post_message(ComparisonRequested(chosen))

    def action_open_dataset(self) -> None:
        self.post_message(DataFileRequested())

    def action_new_run(self) -> None:
        self.post_message(messages.NewRunRequested())

    def action_clone(self) -> None:
        session = self.selected_id()
        if session is None:
            self.notify("No session selected", severity="warning")
            return
        self.post_message(messages.NewRunRequested(session))

    @on(DataTable.RowSelected)
    def row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open()

    def status_of(self, session: str) -> str:
        return next((info.status for info in self.sessions if info.id == session), "?")

    def action_control(self, command: str) -> None:
        session = self.selected_id()
        if session is None:
            self.notify("No session selected", severity="warning")
            return
        if command == "stop" and self.status_of(session) in LIVE_STATUSES:
            ask(
                self,
                f"Stop session {session}?",
                lambda: actions.send_control(self, self.root, session, command),
            )
            return
        actions.send_control(self, self.root, session, command)

    def action_delete(self) -> None:
        session = self.selected_id()
        if session is None:
            self.notify("No session selected", severity="warning")
            return
        status = self.status_of(session)
        if status in LIVE_STATUSES:
            self.notify(f"{session} is {status}: stop it first (s), then delete it", severity="warning")
            return
        ask(
            self,
            f"Move session {session} to {actions.TRASH}/?",
            lambda: actions.send_trash(self, self.root, session),
        )

    def action_export(self) -> None:
        session = self.selected_id()
        if session is None:
            self.notify("No session selected", severity="warning")
            return
        actions.send_export(self, self.root, session)

    @on(CommandAnswered)
    @while_shown
    def command_answered(self, message: CommandAnswered) -> None:
        actions.notify_answer(self, message)
        self.refresh_sessions()
