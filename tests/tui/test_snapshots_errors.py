"""SVG snapshots of the error-analysis screen (pytest-textual-snapshot): a confusion cell, every error
with a search, and the likely label noise, at 80x24 and 120x40.

The session is written by hand (tests/tui/test_errors_screen.py: seeded data and predictions), so a
frame changes only when the screen's look does. After an intended change of look:
``.venv/bin/pytest tests/tui/test_snapshots_errors.py --snapshot-update``, then look at the SVGs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from engine.train import examples
from tests.tui.test_errors_screen import STEP, errors_session
from tui.app import FtcApp
from tui.messages import ErrorsRequested
from tui.screens.errors import ErrorsScreen

CASES = [
    ("cell", (80, 24)),
    ("cell", (120, 40)),
    ("search", (80, 24)),
    ("noise", (80, 24)),
    ("noise", (120, 40)),
]


def _ready(view: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        cell = ("mid", "pos") if view == "cell" else (None, None)
        rel = examples.relative_path("validation", STEP)
        app.post_message(ErrorsRequested("run-stopped", STEP, "validation", *cell, rel))

        async def until(check) -> None:  # type: ignore[no-untyped-def]
            for _ in range(200):
                if check():
                    return
                await pilot.pause(0.05)
            raise AssertionError(f"the {view} view did not settle")

        await until(lambda: isinstance(app.screen, ErrorsScreen) and len(app.screen.shown) > 0)
        screen = app.screen
        assert isinstance(screen, ErrorsScreen)
        if view == "search":
            await pilot.press("slash", *"lovely", "enter")
            await until(lambda: screen.search_text == "lovely" and screen.done)
        if view == "noise":
            await pilot.press("n")
            await until(lambda: screen.mode == "noise" and len(screen.shown) > 0 and not screen.loading)
        await pilot.pause(0.1)

    return run_before


@pytest.mark.parametrize(("view", "size"), CASES, ids=[f"{v}-{w}x{h}" for v, (w, h) in CASES])
def test_errors_screen(snap_compare, tmp_path: Path, view: str, size: tuple[int, int]) -> None:
    errors_session(tmp_path)
    app = FtcApp(tmp_path)
    assert snap_compare(app, terminal_size=size, run_before=_ready(view))
