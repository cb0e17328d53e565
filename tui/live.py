"""A guard for screens' message handlers: a worker's message that arrives after its screen closed is dropped.

A worker can post a result just before its screen is popped; the message is then handled while
(or after) the screen's widgets are removed, and a ``query_one`` there raises NoMatches. The feed
guards its own messages (``SessionFeed._on_stack``); screens wrap their handlers in ``@while_shown``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from textual.screen import Screen

S = TypeVar("S", bound=Screen[Any])
M = TypeVar("M")


def on_stack(screen: Screen[Any]) -> bool:
    """Whether a screen is still on its app's stack (not popped, not being removed)."""
    try:
        return screen.is_attached and screen in screen.app.screen_stack
    except Exception:  # no app any more: detached
        return False


def while_shown(handler: Callable[[S, M], None]) -> Callable[[S, M], None]:
    """Run a screen's message handler only while the screen is on the stack."""

    @functools.wraps(handler)
    def guarded(screen: S, message: M) -> None:
        if on_stack(screen):
            handler(screen, message)

    return guarded
