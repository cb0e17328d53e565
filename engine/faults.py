"""Fault injection for the crash tests: ``FTC_FAULT=<point>@<step>`` SIGKILLs the engine right there.

Tests switch failures on through the environment, as Jupyter's fake kernels do, so the
real engine process dies at an exact, otherwise unreachable moment (half-way through a
checkpoint write, say). Unset, it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def point(name: str, step: int) -> None:
    """Die here, as kill -9 would, when FTC_FAULT names this point and step."""
    if os.environ.get("FTC_FAULT") == f"{name}@{step}":
        os.kill(os.getpid(), signal.SIGKILL)
