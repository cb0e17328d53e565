"""The console's current frame as rows of text, laid out cell for cell as a terminal shows them."""

from __future__ import annotations

import io

from rich.console import Console
from textual.app import App
from textual.geometry import Region


def screen_rows(app: App[object]) -> list[str]:
    """Every row of the frame, padded to the terminal's width (one character per cell)."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True, record=True, legacy_windows=False
    )
    console.print(app.screen._compositor.render_update(full=True))
    rows = console.export_text().splitlines()
    return [row.ljust(width) for row in rows[:height]]


def region_rows(app: App[object], region: Region) -> list[str]:
    """The part of the frame a widget's region covers, one string per row."""
    rows = screen_rows(app)
    return [rows[y][region.x : region.right] for y in range(region.y, region.bottom)]
