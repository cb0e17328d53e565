"""The monitor's tables: the latest evaluation (overall and per class) and the checkpoint list."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable

from tui.format import ago

if TYPE_CHECKING:
    from engine.protocol import CheckpointSaved, EvaluationEnded

# Headline metrics in the order shown, with the names a reader knows them by; others follow as named.
METRIC_LABELS = {
    "loss": "loss",
    "accuracy": "accuracy",
    "macro_precision": "macro precision",
    "macro_recall": "macro recall",
    "macro_f1": "macro F1",
    "roc_auc": "ROC-AUC",
}


class EvaluationView(Horizontal):
    """The latest evaluation: every overall metric (metric | value) beside precision/recall/F1 per class.

    One metric per row, so all of them fit an 80-column terminal however many there are.
    """

    DEFAULT_CSS = """
    EvaluationView > #eval-metrics { width: 28; }
    EvaluationView > #eval-classes { width: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last: EvaluationEnded | None = None

    def compose(self) -> ComposeResult:
        # No header row: "loss 0.4120" reads by itself, and the six headline metrics fit 80x24.
        yield DataTable[str | Text](id="eval-metrics", cursor_type="row", show_header=False)
        yield DataTable[str | Text](id="eval-classes", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#eval-metrics", DataTable).add_columns("metric", "value")
        self.query_one("#eval-classes", DataTable).add_columns(
            "class", "precision", "recall", "f1", "support"
        )

    def show(self, evaluation: EvaluationEnded) -> None:
        self.last = evaluation
        self.border_title = f"evaluation at step {evaluation.step} [{evaluation.split}]"
        metrics = evaluation.metrics
        table = self.query_one("#eval-metrics", DataTable)
        table.clear()
        names = [k for k in METRIC_LABELS if k in metrics] + [k for k in metrics if k not in METRIC_LABELS]
        for name in names:
            table.add_row(METRIC_LABELS.get(name, name), f"{metrics[name]:.4f}", key=name)
        classes = self.query_one("#eval-classes", DataTable)
        classes.clear()
        for name, figures in evaluation.per_class.items():
            cells = [f"{figures[k]:.4f}" if k in figures else "-" for k in ("precision", "recall", "f1")]
            support = f"{figures['support']:.0f}" if "support" in figures else "-"
            classes.add_row(name, *cells, support, key=name)


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
        self.set_interval(self.AGES_EVERY_S, self.update_ages)

    def add(self, saved: CheckpointSaved, ts: float) -> None:
        # One row per folder: older journals report a folder once per save reason, and a resume
        # from an earlier checkpoint writes a new folder where a set-aside one was.
        self.entries = [(e, t) for e, t in self.entries if e.path != saved.path]
        self.entries.append((saved, ts))
        self.redraw()

    def redraw(self) -> None:
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
        now = time.time() if now is None else now
        for i, (_entry, ts) in enumerate(reversed(self.entries)):
            text = ago(ts, now)
            if self.get_cell(str(i), self.saved_column) != text:
                self.update_cell(str(i), self.saved_column, text)

    def selected(self) -> CheckpointSaved | None:
        if not self.entries or self.row_count == 0:
            return None
        return list(reversed(self.entries))[self.cursor_row][0]
