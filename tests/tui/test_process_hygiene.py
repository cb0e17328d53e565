"""ftc as a process: no ftc outlives its terminal, its stdin or its reader, and the engine outlives them all.

Real processes in real terminals (tmux) and real pipes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from engine import client, protocol
from engine.journal import read_all
from engine.session import SessionPaths, live_status, pid_alive, read_state
from tests.conftest import REPO, wait_for

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@contextmanager
def tmux(command: str) -> Iterator[str]:
    name = f"ftc-hyg-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", command], check=True)
    try:
        yield name
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def screen(name: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout


def pane_pid(name: str) -> int:
    out = subprocess.run(["tmux", "display", "-p", "-t", name, "#{pane_pid}"], capture_output=True, text=True)
    return int(out.stdout)


def attach_command(root: Path, session: str, *, ignore_hangup: bool = False) -> str:
    # ``trap '' HUP``: started as under nohup or a runner that ignores SIGHUP, so the kernel's
    # hang-up signal does not end it and only ftc's own watch can (the case that spun at 28%).
    trap = "trap '' HUP; " if ignore_hangup else ""
    return f"{trap}cd {REPO} && exec {sys.executable} -m tui --sessions-dir {root} attach {session}"


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def engine_pid(paths: SessionPaths) -> int:
    pid: int = read_state(paths)["pid"]
    return pid


def paused_session(start_selftest: Callable[..., SessionPaths]) -> SessionPaths:
    paths = start_selftest("paused", steps=100000, step_s=0.02)
    wait_for(lambda: live_status(read_state(paths)) == "running", what="the engine to run")
    wait_for(lambda: read_state(paths).get("step", 0) >= 3, what="a few steps")
    client.request(paths, protocol.Pause())
    wait_for(lambda: live_status(read_state(paths)) == "paused", what="the engine to pause")
    return paths


@needs_tmux
def test_a_console_whose_terminal_closes_exits_and_the_engine_runs_on(
    start_selftest, sessions_root: Path
) -> None:
    paths = start_selftest("hangup", steps=100000, step_s=0.02)
    with tmux(attach_command(sessions_root, paths.id, ignore_hangup=True)) as name:
        wait_for(lambda: "running" in screen(name), 30, what="the monitor")
        console = pane_pid(name)
        subprocess.run(["tmux", "kill-session", "-t", name], check=True)  # the terminal closes
        wait_for(lambda: gone(console), 5, what="the console to exit after its terminal closed")
    assert pid_alive(engine_pid(paths)), "the engine runs on"
    assert live_status(read_state(paths)) == "running"


def test_plain_attach_exits_when_its_stdin_closes(start_selftest, sessions_root: Path) -> None:
    """``ssh host ftc attach S`` and the link drops: stdin closes; ftc says so and leaves, engine runs."""
    paths = start_selftest("stdin", steps=100000, step_s=0.02)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "--sessions-dir", str(sessions_root), "attach", paths.id],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().startswith("[1] "), "it follows the session"
        proc.stdin.close()  # the link drops
        proc.stdin = None  # (so that communicate does not flush it)
        out, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert out.rstrip().splitlines()[-1].startswith("stdin closed: detached; the engine keeps running")
    assert err == ""
    assert pid_alive(engine_pid(paths)), "the engine runs on"


def test_plain_attach_on_a_quiet_session_exits_when_its_reader_goes(
    start_selftest, sessions_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ftc attach S | head -1`` on a paused session: no more output; ftc must not wait for ever."""
    monkeypatch.setenv(
        "FTC_RESOURCES_S", "3600"
    )  # after its first sample, the paused engine publishes nothing
    paths = paused_session(start_selftest)
    wait_for(
        lambda: "resources_sampled" in paths.events.read_text(), what="the engine's first resource sample"
    )
    last = read_all(paths.events)[-1].seq
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "--sessions-dir", str(sessions_root), "attach", paths.id],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert proc.stdout.readline().startswith(b"[1] ")
        while not proc.stdout.readline().startswith(f"[{last}] ".encode()):  # the whole history is out ...
            pass
        proc.stdout.close()  # ... and the reader goes
        code = proc.wait(timeout=5)
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
    assert err == "", err
    assert code == 141
    assert pid_alive(engine_pid(paths)), "the engine runs on"


def test_plain_attach_to_a_long_history_piped_into_head_exits_quietly(sessions_root: Path) -> None:
    """``ftc attach S | head -c 200``: the history is far longer than a pipe holds; no traceback."""
    from engine.journal import Journal
    from engine.launcher import create_session
    from engine.session import write_state

    paths = create_session(sessions_root, {"job": {"kind": "selftest"}}, name="long")
    journal = Journal(paths.events, paths.id)
    for step in range(1, 3001):  # ~200 KB of plain lines: more than a pipe's 64 KiB
        journal.append(protocol.StepEnded(step=step, total_steps=3000, loss=1.0 / step, learning_rate=1e-4))
    journal.append(protocol.EngineStopped(status="finished"))
    journal.close()
    write_state(paths, status="finished", step=3000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "--sessions-dir", str(sessions_root), "attach", paths.id],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        head = proc.stdout.read(200)
        proc.stdout.close()
        code = proc.wait(timeout=30)
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
    assert head.startswith(b"[1] ")
    assert err == "", err
    assert code == 141


IDLE_CPU_BOUND = 1.0  # percent of one core, the bound
IDLE_SECONDS = 10.0


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


@needs_tmux
def test_an_idle_console_uses_under_1_percent_of_a_core(start_selftest, sessions_root: Path) -> None:
    """The monitor on a finished session and on a paused one, side by side, each over the same 10 s."""
    finished = start_selftest("idle-a", steps=30, step_s=0.001, checkpoint_every=10)
    wait_for(lambda: live_status(read_state(finished)) == "finished", what="the selftest to finish")
    paused = paused_session(start_selftest)
    with (
        tmux(attach_command(sessions_root, finished.id)) as first,
        tmux(attach_command(sessions_root, paused.id)) as second,
    ):
        wait_for(lambda: "finished" in screen(first), 30, what="the finished session's monitor")
        wait_for(lambda: "paused" in screen(second), 30, what="the paused session's monitor")
        consoles = {"finished": psutil.Process(pane_pid(first)), "paused": psutil.Process(pane_pid(second))}
        time.sleep(2)  # let the first frames' work settle: a measurement window, not a synchronisation
        before = {label: cpu_seconds(proc) for label, proc in consoles.items()}
        start = time.monotonic()
        time.sleep(IDLE_SECONDS)
        elapsed = time.monotonic() - start
        used = {
            label: (cpu_seconds(proc) - before[label]) / elapsed * 100 for label, proc in consoles.items()
        }
    assert all(percent < IDLE_CPU_BOUND for percent in used.values()), f"% of a core while idle: {used}"
