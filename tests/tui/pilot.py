"""Waiting on a condition in a Pilot test: never a sleep for synchronisation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


async def until(
    pilot: Any, predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Let the app run until ``predicate()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")
