"""SVG snapshots of the compare screen at 80x24 and 120x40 (pytest-textual-snapshot).

Three hand-written sessions (tests/tui/compare_sessions.py: finished, crashed and resumed, failed;
fixed events, times and configs), marked and compared with the keys a person uses. After an
intended change of look: ``.venv/bin/pytest tests/tui/test_snapshots_compare.py --snapshot-update``,
then look at the SVGs in __snapshots__/ before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui.compare_sessions import crashed_run, failed_run, finished_run
from tui.app import FtcApp
from tui.screens.compare import CompareScreen

SIZES = [(80, 24), (120, 40)]


async def _compared(pilot: Pilot[None]) -> None:
    """Mark the three sessions, compare them, wait until every journal is replayed, then draw."""
    app = pilot.app
    for _ in range(200):
        if len(getattr(app.screen, "sessions", ())) == 3:
            break
        await pilot.pause(0.05)
    await pilot.press("space", "space", "space", "m")
    for _ in range(200):
        screen = app.screen
        if isinstance(screen, CompareScreen) and all(
            feed.events_seen == len(feed.paths.events.read_bytes().splitlines()) and feed.status != "?"
            for feed in screen.feeds
        ):
            break
        await pilot.pause(0.05)
    else:
        raise AssertionError("the compare screen did not replay the journals")
    await pilot.pause(0.1)
    screen.redraw()
    await pilot.pause(0.1)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_compare(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    for make in (finished_run, crashed_run, failed_run):
        make(tmp_path)
    app = FtcApp(tmp_path)
    assert snap_compare(app, terminal_size=size, run_before=_compared)
