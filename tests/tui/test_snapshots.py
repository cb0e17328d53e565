"""SVG snapshots of the monitor in each phase and at three sizes (pytest-textual-snapshot).

Each snapshot opens a hand-written session (tests/tui/journals.py: fixed events, fixed times,
fixed names), so a frame changes only when the console's look does. After an intended change of
look: ``.venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update``, then look at the SVGs
in __snapshots__/ (a browser shows them) before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui.journals import PHASES, events_in_phase, session_in_phase
from tui.app import FtcApp
from tui.screens.monitor import MonitorScreen

CASES = [(phase, (80, 24)) for phase in PHASES] + [
    ("training", (60, 20)),
    ("evaluating", (60, 20)),
    ("training", (200, 50)),
]


async def _settled(pilot: Pilot[None], events: int) -> None:
    """Wait until the monitor has handled the whole journal and knows the status, then draw the plots."""
    app = pilot.app
    for _ in range(200):
        screen = app.screen
        if (
            isinstance(screen, MonitorScreen)
            and screen.feed.events_seen >= events
            and screen.feed.status != "?"
        ):
            break
        await pilot.pause(0.05)
    else:
        raise AssertionError("the monitor did not replay the journal")
    screen.redraw_plots()
    await pilot.pause(0.1)


@pytest.mark.parametrize(("phase", "size"), CASES, ids=[f"{p}-{w}x{h}" for p, (w, h) in CASES])
def test_monitor(snap_compare, tmp_path: Path, phase: str, size: tuple[int, int]) -> None:
    paths = session_in_phase(tmp_path, phase)
    app = FtcApp(tmp_path, attach=paths.id)
    events = len(events_in_phase(phase))
    assert snap_compare(app, terminal_size=size, run_before=lambda pilot: _settled(pilot, events))
