"""The monitor's checkpoint list (the Evaluation tab's tables are in tui/widgets/evaluation.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable

from tui.format import ago
from tui.live import on_stack
from tui.widgets.evaluation import EvaluationView

if TYPE_CHECKING:
    from engine.protocol import CheckpointSaved

__all__ = ["CheckpointTable", "EvaluationView"]  # EvaluationView: where tests and older code import it


HIDDEN_REDRAW_S = 1.0  # a hidden table is redrawn at most this often while rows arrive


class CheckpointTable(DataTable[str | Text]):
    """Every checkpoint the journal reports: step, when, why, metric, and whether it still exists.

    The "saved" column says how long ago; it is brought up to date once a second, cell by cell,
    and only the cells whose text changed are redrawn.
    """

    AGES_EVERY_S = 1.0

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.saved_column = self.add_columns("step", "saved", "reason", "metric", "name")[1]
        self.entries: list[tuple[CheckpointSaved, float]] = []  # each with when it was saved
        self._redraw_scheduled = False
        self._stale = False  # checkpoints added while the tab was hidden: redrawn when it shows
        self.set_interval(self.AGES_EVERY_S, self.update_ages)

    def add(self, saved: CheckpointSaved, ts: float) -> None:
        # One row per folder: older journals report a folder once per save reason, and a resume
        # from an earlier checkpoint writes a new folder where a set-aside one was.
        self.entries = [(e, t) for e, t in self.entries if e.path != saved.path]
        self.entries.append((saved, ts))
        # Redrawn once per batch of events: a reattach replays every checkpoint at once.
        if not self._redraw_scheduled:
            self._redraw_scheduled = True
            self.call_later(self._scheduled_redraw)

    def _scheduled_redraw(self) -> None:
        self._redraw_scheduled = False
        if self.is_mounted and on_stack(self.screen):
            if not self.is_on_screen:
                # Hidden (another tab): redrawn when shown, or within HIDDEN_REDRAW_S, not once per
                # page of a reattach's replay.
                if not self._stale:
                    self._stale = True
                    self.set_timer(HIDDEN_REDRAW_S, self._stale_redraw)
                return
            self.redraw()

    def _stale_redraw(self) -> None:
        if self._stale and self.is_mounted and on_stack(self.screen):
            self.redraw()

    def on_show(self) -> None:
        if self._stale:
            self.redraw()

    def redraw(self) -> None:
        self._stale = False
        cursor = self.cursor_row
        self.clear()
        now = time.time()
        for i, (entry, ts) in enumerate(reversed(self.entries)):
            path = Path(entry.path)
            name = path.name if path.exists() else Text(f"{path.name} (deleted)", style="dim")
            metric = f"{entry.metric:.4f}" if entry.metric is not None else "-"
            self.add_row(str(entry.step), ago(ts, now), entry.reason, metric, name, key=str(i))
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))

    def update_ages(self, now: float | None = None) -> None:
        """Bring each "saved ... ago" up to date; a cell whose text is unchanged is left alone."""
        if self._redraw_scheduled or self._stale:
            return  # rows are being added, or the table is hidden: the redraw writes every age
        now = time.time() if now is None else now
        for i, (_entry, ts) in enumerate(reversed(self.entries)):
            text = ago(ts, now)
            if self.get_cell(str(i), self.saved_column) != text:
                self.update_cell(str(i), self.saved_column, text)

    def selected(self) -> CheckpointSaved | None:
        if self._stale:
            self.redraw()
        if not self.entries or self.row_count == 0:
            return None
        return list(reversed(self.entries))[self.cursor_row][0]
