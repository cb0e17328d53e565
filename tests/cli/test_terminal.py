"""The real console in a real terminal (tmux): what a person sees, keys they press, and quitting."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from engine.session import SessionPaths, pid_alive, read_state
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, command: str, width: int = 80, height: int = 24) -> None:
        self.name = f"ftc-test-{uuid.uuid4().hex[:8]}"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), command],
            check=True,
        )

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def wait_for_text(self, text: str, timeout: float = 20) -> str:
        return wait_for(lambda: text in (s := self.screen()) and s, timeout, what=f"{text!r} on screen")

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_console_in_a_real_terminal(start_selftest, sessions_root: Path) -> None:
    paths = start_selftest(steps=100000, step_s=0.02)
    term = Tmux(f"cd {REPO} && {sys.executable} -m tui --sessions-dir {sessions_root}; sleep 30")
    try:
        screen = term.wait_for_text(paths.id)
        assert "running" in screen and "Pause" in screen and "? more" in screen
        term.keys("p")
        term.wait_for_text("paused")
        assert read_state(paths)["status"] == "paused"
        term.keys("Enter")
        term.wait_for_text("learning rate")
        term.keys("u")
        wait_for(lambda: read_state(paths)["status"] == "running", what="unpaused")
        term.keys("Escape")
        term.wait_for_text("Sessions in")
        term.keys("q")
        wait_for(lambda: "ftc" not in term.screen(), what="the console to quit")
        # The engine runs on without its console: it keeps taking steps.
        step = read_state(paths)["step"]
        wait_for(lambda: read_state(paths)["step"] > step + 5, what="steps after the console quit")
        assert pid_alive(read_state(paths)["pid"]), "quitting the console must leave the engine running"
    finally:
        term.kill()


def test_killing_the_console_leaves_the_engine_running(start_selftest, sessions_root: Path) -> None:
    paths = start_selftest(steps=100000, step_s=0.02)
    term = Tmux(f"cd {REPO} && {sys.executable} -m tui --sessions-dir {sessions_root} attach {paths.id}")
    try:
        term.wait_for_text("learning rate")
        term.kill()  # the terminal goes away: SIGHUP to the console, as when SSH drops
        assert not term.alive()
        step = read_state(paths)["step"]
        wait_for(lambda: read_state(paths)["step"] > step + 5, what="engine still stepping")
        assert read_state(paths)["status"] == "running"
    finally:
        term.kill()


def test_an_engine_the_console_started_outlives_the_console(tmp_path: Path, sessions_root: Path) -> None:
    # 'ftc train' on a terminal starts the engine and opens the console on it; the console
    # is then killed with the terminal (SIGHUP, as when SSH drops): the engine must go on.
    config = tmp_path / "run.toml"
    config.write_text('[job]\nkind = "selftest"\n[selftest]\nsteps = 100000\nstep_s = 0.02\n')
    term = Tmux(f"cd {REPO} && {sys.executable} -m tui --sessions-dir {sessions_root} train {config}")
    try:
        term.wait_for_text("learning rate")
        (folder,) = list(sessions_root.iterdir())
        paths = SessionPaths(folder)
        pid = read_state(paths)["pid"]
        term.kill()
        assert not term.alive()
        step = read_state(paths)["step"]
        wait_for(lambda: read_state(paths)["step"] > step + 5, what="engine still stepping")
        assert pid_alive(pid) and read_state(paths)["status"] == "running"
    finally:
        term.kill()
