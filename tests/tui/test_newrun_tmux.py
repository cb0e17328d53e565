"""The new-run flow in a real terminal (tmux), keys only: a data file and a model typed, settings
fixed, ctrl+s, the data tests, and the monitor of a running session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.session import list_sessions, read_state, resolve
from engine.train.config import load_config
from tests.cli.test_terminal import Tmux
from tests.conftest import REPO, wait_for
from tests.support.tiny import make_tiny_model
from tests.tui.test_newrun import write_csv

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _cursor_row(term: Tmux) -> int:
    out = subprocess.run(
        ["tmux", "display", "-p", "-t", term.name, "#{cursor_y}"], capture_output=True, text=True
    )
    return int(out.stdout.strip() or -1)


def _typed(term: Tmux, field: str, shown: str, text: str | None = None) -> None:
    """Type into a field once the terminal's cursor is in it, then wait until its row shows the text.

    Keys sent faster than a person types (a Tab, then text at once) can reach the field Textual
    focused before the Tab: the focus is waited for, as a person sees it, before typing.
    """

    def row() -> int:
        lines = term.screen().splitlines()
        return next((i for i, ln in enumerate(lines) if ln.split()[:1] == [field]), -2)

    wait_for(lambda: _cursor_row(term) == row(), what=f"the cursor in {field}")
    term.keys("-l", text or shown)
    wait_for(
        lambda: any(ln.split()[:1] == [field] and shown in ln for ln in term.screen().splitlines()),
        what=f"{field} = {shown}",
    )


def test_new_run_in_a_real_terminal(tmp_path: Path, sessions_root: Path) -> None:
    model = make_tiny_model(tmp_path / "model", fmt="tf", seed=0)
    data = write_csv(tmp_path / "reviews.csv")
    term = Tmux(f"cd {REPO} && {sys.executable} -m tui --sessions-dir {sessions_root}; sleep 30")
    try:
        term.wait_for_text("Sessions in")
        term.keys("n")
        term.wait_for_text("New run")
        term.keys("-l", str(data))
        term.wait_for_text("csv · utf-8 · 3 columns")
        term.keys("Tab")
        _typed(term, "model", str(model)[-20:], str(model))
        term.wait_for_text("local folder")
        # The tiny model takes 64 tokens: the default max_length is refused beside its field.
        term.wait_for_text("128 is more than the model takes")
        # model -> session name, format, encoding, text_col, label_col, epochs, max_steps
        term.keys(*["Tab"] * 7)
        _typed(term, "max_steps", "12")
        for field, text in (("batch_size", "8"), ("max_length", "32")):  # focused text is typed over
            term.keys("Tab")
            _typed(term, field, text)
        wait_for(lambda: "more than the model takes" not in term.screen(), what="max_length accepted")
        term.keys("C-s")
        screen = wait_for(
            lambda: (s := term.screen()) and ("Start anyway" in s or "learning rate" in s) and s,
            timeout=90,
            what="the data tests and the start",
        )
        if "Start anyway" in screen:  # a data test failed on this data: go on, as --allow-failing-checks
            term.keys("y")
        term.wait_for_text("learning rate", timeout=60)
        sessions = list_sessions(sessions_root)
        assert len(sessions) == 1
        paths = resolve(sessions_root, sessions[0].id)
        wait_for(
            lambda: read_state(paths).get("step", 0) >= 1 or read_state(paths).get("status") == "finished",
            timeout=120,
            what="the run's first step",
        )
        wait_for(lambda: "step" in term.screen(), what="the monitor's header")
        config = load_config(paths.config)
        assert (config.train.max_steps, config.train.batch_size, config.train.max_length) == (12, 8, 32)
        assert config.data.source == str(data.resolve()) and config.model.source == str(model.resolve())
    except AssertionError:
        print(term.screen())
        raise
    finally:
        term.kill()
