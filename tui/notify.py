"""When a session ends: the terminal bell and a desktop notification (OSC 9 and OSC 777).

Both escape sequences travel inside the terminal's output stream, so they reach the person's
desktop through SSH (and tmux with ``allow-passthrough``) with nothing to set up: OSC 9 is
iTerm2's, Windows Terminal's, kitty's, WezTerm's and foot's; OSC 777 ``notify`` is urxvt's,
Ghostty's, VTE's (GNOME Terminal) and foot's. A terminal that knows neither ignores them, and
still rings the bell (BEL), which most turn into a sound, a flash or an urgency hint.

The console's ``Notifier`` watches the sessions listing and rings once per session and
transition: a session seen live (starting, running, paused, stopping) that is then finished,
failed, stopped or crashed. Sessions already ended at the first listing stay silent, and a
session resumed and ended again rings again. ``FTC_NOTIFY=0`` (``ftc --no-notify``) switches it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

BEL = "\a"
OFF_WORDS = frozenset({"0", "false", "no", "off"})
ENV = "FTC_NOTIFY"
TITLE = "ftc"
# The statuses a notification is for, and how its text says them.
ENDINGS = {"finished": "finished", "failed": "failed", "stopped": "stopped early", "crashed": "crashed"}


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether notifications are on: unless FTC_NOTIFY is 0, false, no or off."""
    value = (os.environ if env is None else env).get(ENV, "1")
    return value.strip().lower() not in OFF_WORDS


def _clean(text: str) -> str:
    # A control character would end the sequence early (or start another); ';' separates OSC 777's fields.
    return "".join(c if c.isprintable() else " " for c in text).strip()


def sequences(title: str, body: str) -> str:
    """BEL, then OSC 9 (one message) and OSC 777 (title and body), each ended by BEL as xterm accepts."""
    title, body = _clean(title).replace(";", ","), _clean(body)
    return f"{BEL}\x1b]9;{title}: {body}{BEL}\x1b]777;notify;{title};{body}{BEL}"


def ending_text(session: str, job: str | None, status: str, step: int | None = None) -> str:
    """'20261130-...-a1b2: train finished at step 120'."""
    what = f"{job} " if job else ""
    at = f" at step {step}" if step else ""
    return f"{session}: {what}{ENDINGS.get(status, status)}{at}"


class Notifier:
    """Rings (through ``write``, the terminal's) when a session the console saw live has ended."""

    def __init__(self, write: Callable[[str], Any], *, on: bool | None = None) -> None:
        self.write = write
        self.on = enabled() if on is None else on
        self._status: dict[str, str] = {}
        self.sent: list[str] = []  # the texts rung, for a status line or a test

    def listed(self, sessions: Iterable[Any]) -> list[str]:
        """A new listing (SessionInfo-like: id, status, job, step); returns the texts rung for it."""
        rung = []
        for info in sessions:
            before = self._status.get(info.id)
            self._status[info.id] = info.status
            if before is None or before in ENDINGS or info.status not in ENDINGS:
                continue  # first seen, or no live -> ended transition
            text = ending_text(info.id, getattr(info, "job", None), info.status, getattr(info, "step", None))
            if self.on:
                self.write(sequences(TITLE, text))
                self.sent.append(text)
                rung.append(text)
        return rung


def ring_ended(paths: Any, out: TextIO) -> str | None:
    """``ftc attach --notify``: ring once for a session that has ended; the text, or None if it has not."""
    from engine.session import live_status, read_state

    state = read_state(paths)
    status = live_status(state)
    if status not in ENDINGS:
        return None
    text = ending_text(paths.id, state.get("job"), status, state.get("step"))
    out.write(sequences(TITLE, text))
    out.flush()
    return text
