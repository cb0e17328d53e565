"""The monitor's tables: the latest evaluation (per class) and the checkpoint list."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from tui.format import ago


class EvaluationTable(DataTable[str | Text]):
    """The latest evaluation: overall metrics, then precision/recall/F1 per class."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("", "precision", "recall", "f1", "support")
        self.last: dict[str, Any] = {}

    def show(self, body: dict[str, Any]) -> None:
        self.last = body
        self.clear()
        metrics = body.get("metrics", {})
        summary = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.border_title = f"evaluation at step {body['step']} [{body.get('split', 'validation')}]"
        self.add_row(Text("all", style="bold"), Text(summary[:60], style="bold"), "", "", "", key="__all__")
        for name, figures in body.get("per_class", {}).items():
            cells = [f"{figures[k]:.4f}" if k in figures else "-" for k in ("precision", "recall", "f1")]
            support = f"{figures['support']:.0f}" if "support" in figures else "-"
            self.add_row(name, *cells, support, key=name)


class CheckpointTable(DataTable[str | Text]):
    """Every checkpoint the journal reports: step, when, why, metric, and whether it still exists."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("step", "saved", "reason", "metric", "name")
        self.entries: list[dict[str, Any]] = []

    def add(self, body: dict[str, Any], ts: float) -> None:
        self.entries.append({**body, "ts": ts})
        self.redraw()

    def redraw(self) -> None:
        cursor = self.cursor_row
        self.clear()
        now = time.time()
        for entry in reversed(self.entries):
            path = Path(entry["path"])
            name = path.name if path.exists() else Text(f"{path.name} (deleted)", style="dim")
            metric = f"{entry['metric']:.4f}" if entry.get("metric") is not None else "-"
            self.add_row(str(entry["step"]), ago(entry["ts"], now), entry.get("reason", ""), metric, name)
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))

    def selected(self) -> dict[str, Any] | None:
        if not self.entries or self.row_count == 0:
            return None
        return list(reversed(self.entries))[self.cursor_row]
