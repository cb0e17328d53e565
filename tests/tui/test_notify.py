"""Notifications when a session ends: the exact BEL, OSC 9 and OSC 777 bytes, once per transition, or none."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from engine.session import SessionPaths, read_state, write_state
from tests.conftest import REPO, wait_for
from tui import notify
from tui.app import FtcApp


@dataclass
class Info:
    id: str
    status: str
    job: str = "train"
    step: int = 0


def _bytes(text: str) -> str:
    return f"\a\x1b]9;ftc: {text}\a\x1b]777;notify;ftc;{text}\a"


def test_sequences_are_bel_osc9_and_osc777() -> None:
    assert notify.sequences("ftc", "run-1: train finished at step 9") == (
        "\a\x1b]9;ftc: run-1: train finished at step 9\a\x1b]777;notify;ftc;run-1: train finished at step 9\a"
    )
    # A control character cannot end the sequence early; a ';' cannot add a field to OSC 777's title.
    assert notify.sequences("f;t", "a\x1b]b\nc") == "\a\x1b]9;f,t: a ]b c\a\x1b]777;notify;f,t;a ]b c\a"


def test_once_per_session_and_transition_never_for_the_first_listing() -> None:
    written: list[str] = []
    notifier = notify.Notifier(written.append, on=True)
    # Already ended at the first listing: silent. Running: watched.
    notifier.listed([Info("old", "finished"), Info("a", "running"), Info("b", "paused")])
    assert written == []
    notifier.listed([Info("old", "finished"), Info("a", "finished", step=40), Info("b", "paused")])
    assert written == [_bytes("a: train finished at step 40")]
    notifier.listed([Info("old", "finished"), Info("a", "finished", step=40), Info("b", "crashed")])
    notifier.listed([Info("a", "finished", step=40), Info("b", "crashed")])  # no new transition
    assert written == [_bytes("a: train finished at step 40"), _bytes("b: train crashed")]
    # Resumed, then stopped: a new transition rings again. A new session first seen ended: silent.
    notifier.listed([Info("a", "running"), Info("c", "failed")])
    notifier.listed([Info("a", "stopped", step=50), Info("c", "failed")])
    assert written[-1] == _bytes("a: train stopped early at step 50") and len(written) == 3


def test_switched_off_by_ftc_notify_0(monkeypatch: pytest.MonkeyPatch) -> None:
    for word in ("0", "off", "no", "false"):
        monkeypatch.setenv("FTC_NOTIFY", word)
        assert not notify.enabled()
    monkeypatch.setenv("FTC_NOTIFY", "1")
    assert notify.enabled()
    monkeypatch.setenv("FTC_NOTIFY", "0")
    written: list[str] = []
    notifier = notify.Notifier(written.append)
    notifier.listed([Info("a", "running")])
    notifier.listed([Info("a", "failed")])
    assert written == []


def _session(root: Path, name: str, status: str) -> SessionPaths:
    """A session folder whose engine runs on another host (a fresh heartbeat: live, nothing to signal)."""
    paths = SessionPaths(root / name)
    paths.create()
    paths.config.write_text('[job]\nkind = "train"\n', encoding="utf-8")
    paths.events.write_bytes(b"")
    write_state(paths, status=status, job="train", name=name, step=7, hostname="gpu-box")
    write_state(paths, heartbeat=time.time())
    return paths


async def _until(pilot: Pilot[None], predicate: Any, what: str, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("mode", ["on", "FTC_NOTIFY=0", "ctrl+g"])
async def test_the_console_writes_them_to_its_terminal_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("FTC_NOTIFY", "0" if mode == "FTC_NOTIFY=0" else "1")
    on = mode == "on"
    running = _session(tmp_path, "run-a", "running")
    _session(tmp_path, "run-old", "failed")
    app = FtcApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        if mode == "ctrl+g":  # the key (and palette command) that switches them off for this console
            await pilot.press("ctrl+g")
            await _until(pilot, lambda: not app.notifier.on, "notifications off")
        written: list[str] = []
        assert app._driver is not None
        monkeypatch.setattr(app._driver, "write", written.append)  # what goes to the terminal
        screen: Any = app.screen
        await _until(pilot, lambda: len(screen.sessions) == 2, "the first listing")
        await pilot.pause(1.2)  # more listings of the same statuses: nothing to say
        assert not any("\x1b]" in w for w in written)
        write_state(running, status="finished")
        await _until(pilot, lambda: "finished" in [s.status for s in screen.sessions], "the new status")
        await pilot.pause(1.2)  # a listing or two more
        sent = [w for w in written if "\x1b]" in w or w == "\a"]
        if on:
            assert sent == [_bytes("run-a: train finished at step 7")]
            assert any("run-a: train finished" in str(n.message) for n in app._notifications)
        else:
            assert sent == []


def test_ftc_attach_notify_rings_for_a_finished_selftest(sessions_root: Path, start_selftest: Any) -> None:
    paths = start_selftest("bell", steps=3, step_s=0.01)
    wait_for(lambda: read_state(paths).get("status") == "finished", what="the selftest finished")
    out = subprocess.run(
        [sys.executable, "-m", "tui", "--sessions-dir", str(sessions_root), "attach", paths.id, "--notify"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(_bytes(f"{paths.id}: selftest finished at step 3")), repr(out.stdout[-300:])
    assert out.stdout.count("\x1b]9;") == 1
    plain = subprocess.run(
        [sys.executable, "-m", "tui", "--sessions-dir", str(sessions_root), "attach", paths.id],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert "\x1b]" not in plain.stdout and "\a" not in plain.stdout  # without --notify: no bell
