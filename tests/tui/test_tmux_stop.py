"""Stop pressed during an evaluation, in a real terminal: the monitor says "stopping" within a second."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from engine.journal import read_all
from tests.cli.test_terminal import Tmux
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

SHOWN_WITHIN_S = 1.0


def _evaluating(events: Path) -> bool:
    return any(env.type == "phase_changed" and env.body.phase == "evaluating" for env in read_all(events))


def _header_line(screen: str) -> str:
    """The header's first line: the one above its progress bar (``━━━  step 5/1000``)."""
    lines = screen.splitlines()
    bars = [i for i, line in enumerate(lines) if "━" in line and " step " in line]
    return lines[bars[0] - 1] if bars and bars[0] > 0 else ""


def _poll(term: Tmux, text: str, seconds: float) -> str | None:
    """The header's line once ``text`` is in it, polling for at most ``seconds``; None if it never was."""
    until = time.monotonic() + seconds
    while True:
        line = _header_line(term.screen())
        if text in line:
            return line
        if time.monotonic() > until:
            return None
        time.sleep(0.02)


def test_stop_during_an_evaluation_says_stopping_at_once(start_selftest, sessions_root: Path) -> None:
    # A long evaluation after step 5: the stop lands in its middle and takes effect only after it.
    paths = start_selftest(name="tmux", steps=1000, step_s=0.02, eval_every=5, eval_s=120, eval_batches=120)
    wait_for(lambda: _evaluating(paths.events), timeout=60, what="the evaluation to start")
    term = Tmux(f"cd {REPO} && {sys.executable} -m tui --sessions-dir {sessions_root} attach {paths.id}")
    try:
        wait_for(
            lambda: "evaluating" in _header_line(term.screen()), timeout=60, what="the header's evaluating"
        )
        assert "stopping" not in term.screen()
        term.keys("s")
        # The monitor may ask first (k9s-style); the clock starts at the key that sends the stop.
        asked = term.wait_for_text("Stop session", timeout=10)
        assert "stopping" not in asked
        term.keys("y")
        sent = time.monotonic()
        line = _poll(term, "stopping", SHOWN_WITHIN_S)
        took = time.monotonic() - sent
        assert line is not None, (
            f"the header did not say 'stopping' within {SHOWN_WITHIN_S}s:\n{term.screen()}"
        )
        assert "stopping after the evaluation…" in line, (took, line)
    finally:
        term.kill()
