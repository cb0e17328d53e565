"""Shared fixtures: a private sessions folder per test and cleanup of every engine it started."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.launcher import create_session, start_engine
from engine.session import SessionError, SessionPaths, pid_alive, read_state

REPO = Path(__file__).resolve().parent.parent
# mixed_precision "auto" on a CPU follows a probe of the machine (engine/precision.py): pinned to
# float32 so tests, and the engines they start, train alike on any machine and probe nothing.
os.environ["FTC_CPU_PRECISION"] = "float32"


# The ftc cache (engine.cache) is never the user's ~/.cache/ftc: one for the run (fixtures wider than
# a test), and each test its own below.
_RUN_CACHE = tempfile.mkdtemp(prefix="ftc-test-cache-")
os.environ["FTC_CACHE_DIR"] = _RUN_CACHE
atexit.register(shutil.rmtree, _RUN_CACHE, True)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own ftc cache (engine.cache), outside its tmp_path: no hit from another test."""
    monkeypatch.setenv("FTC_CACHE_DIR", str(tmp_path_factory.mktemp("ftc-cache")))


@pytest.fixture
def sessions_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "sessions"
    monkeypatch.setenv("FTC_SESSIONS_DIR", str(root))
    yield root
    # Never leave an engine behind: kill whatever a test started.
    if root.is_dir():
        for folder in root.iterdir():
            try:
                state = read_state(SessionPaths(folder)) if (folder / "state.json").exists() else {}
            except SessionError:  # a test's deliberately damaged session: no engine to end
                continue
            pid = state.get("pid")
            if pid and pid_alive(pid, state.get("pid_start")):
                os.kill(pid, signal.SIGKILL)


def selftest_config(**opts: Any) -> dict[str, Any]:
    return {"job": {"kind": "selftest"}, "selftest": {"steps": 1000, "step_s": 0.02, **opts}}


@pytest.fixture
def start_selftest(sessions_root: Path) -> Callable[..., SessionPaths]:
    def start(name: str = "t", **opts: Any) -> SessionPaths:
        paths = create_session(sessions_root, selftest_config(**opts), name=name)
        start_engine(paths)
        return paths

    return start


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
