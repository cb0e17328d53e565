"""SVG snapshots of the monitor's Evaluation tab (pytest-textual-snapshot) at 80x24 and 120x40.

The session is hand-written (tests/tui/test_evaluation_tab.py: five validation evaluations and a
test one, fixed times and names). Zoomed (z), the tab shows the history, the selected evaluation's
metrics, its confusion matrix and the metric plot; without the zoom at these sizes, the history and
the metrics. After an intended change of look:
``.venv/bin/pytest tests/tui/test_snapshots_evaluation.py --snapshot-update``, then look at the SVGs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui.test_evaluation_tab import evaluated_session, open_tab
from tui.app import FtcApp

CASES = [
    ("zoomed", (80, 24)),
    ("tab", (80, 24)),
    ("zoomed", (120, 40)),
    ("tab", (120, 40)),
    ("older-zoomed", (80, 24)),
]


async def _on_the_tab(pilot: Pilot[None], events: int, zoom: bool, keys: tuple[str, ...]) -> None:
    monitor = await open_tab(pilot, events, zoom=zoom)
    await pilot.press(*keys)
    await pilot.pause(0.1)
    monitor._eval_plot_dirty = True
    monitor.redraw_plots()
    await pilot.pause(0.1)


@pytest.mark.parametrize(("case", "size"), CASES, ids=[f"{c}-{w}x{h}" for c, (w, h) in CASES])
def test_evaluation_tab(snap_compare, tmp_path: Path, case: str, size: tuple[int, int]) -> None:
    paths, events = evaluated_session(tmp_path, old=case.startswith("older"))
    app = FtcApp(tmp_path, attach=paths.id)
    zoom = "zoomed" in case
    keys = ("up", "up", "up")  # the best evaluation (step 24), not the newest

    assert snap_compare(
        app, terminal_size=size, run_before=lambda pilot: _on_the_tab(pilot, events, zoom, keys)
    )
