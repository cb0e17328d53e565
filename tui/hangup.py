"""Ending ftc when its terminal or its stdin goes away: a killed tmux pane, a dropped SSH link.

A process whose terminal hangs up is normally sent SIGHUP and ends. One started with SIGHUP
ignored (``nohup``, some job runners, a shell that ignores it) is not: Textual's input thread
then spins on the hung-up terminal (each read returns nothing, at once, for ever: a core's
worth of CPU), and a plain follower waits on its engine for hours with nobody reading.

``Hangup`` watches stdin and stdout from one thread that sleeps in poll(2) until one of them
hangs up (a terminal's hang-up, a pipe whose other end closed), so watching costs nothing.
Only terminals, pipes and sockets are watched; /dev/null or a file never hang up, and one that
is already closed when ftc starts (``true | ftc attach S``) is no news. The engine is never
touched: it runs in its own process session and keeps going.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import threading
from collections.abc import Callable
from typing import Any

# What a shell reports for a process that SIGHUP ended, as it would have without the ignore, and
# for one whose reader went away (``| head``), as for ExitCode.BROKEN_PIPE.
HANGUP_EXIT = 128 + signal.SIGHUP
BROKEN_PIPE_EXIT = 128 + signal.SIGPIPE
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, "POLLRDHUP", 0)


def _mask(fd: int) -> int | None:
    """The poll mask to watch ``fd`` with, or None if it cannot hang up (or already has)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return None  # not open
    if os.isatty(fd) or stat.S_ISFIFO(mode):
        mask = 0  # poll reports a hang-up (POLLHUP, POLLERR) whatever is asked for
    elif stat.S_ISSOCK(mode):
        mask = getattr(select, "POLLRDHUP", 0)  # the peer closed its end
    else:
        return None
    probe = select.poll()
    probe.register(fd, mask)
    if any(events & _GONE for _fd, events in probe.poll(0)):
        return None
    return mask


class Hangup:
    """Calls ``then()`` once, from its own thread, when stdin or stdout hangs up."""

    def __init__(self, fds: tuple[int, ...] = (0, 1)) -> None:
        self.fds = fds
        self.happened = threading.Event()
        self.fd: int | None = None  # the one that hung up

    def start(self, then: Callable[[], Any]) -> Hangup:
        watched = {fd: mask for fd in self.fds if (mask := _mask(fd)) is not None}
        if watched:
            threading.Thread(target=self._watch, args=(watched, then), name="ftc-hangup", daemon=True).start()
        return self

    @property
    def exit_code(self) -> int:
        """A reader of stdout that went away ends ftc as SIGPIPE would; anything else as SIGHUP would."""
        try:
            reader_gone = self.fd == 1 and stat.S_ISFIFO(os.fstat(1).st_mode)
        except OSError:
            reader_gone = False
        return BROKEN_PIPE_EXIT if reader_gone else HANGUP_EXIT

    def _watch(self, watched: dict[int, int], then: Callable[[], Any]) -> None:
        poller = select.poll()
        for fd, mask in watched.items():
            poller.register(fd, mask)
        while True:
            for fd, events in poller.poll():
                if events & _GONE:
                    self.fd = fd
                    self.happened.set()
                    then()
                    return


def exit_now(code: int = HANGUP_EXIT) -> None:
    """End the process at once and quietly: there is no terminal left to restore or to tell."""
    os._exit(code)


def run_app(app: Any) -> None:
    """Run a Textual app; if its terminal hangs up, the process ends within moments (the engine runs on)."""
    Hangup().start(exit_now)
    app.run()
