"""Following a session without a terminal: every event as a plain line until its engine stops.

It stops too when its stdin or stdout hangs up (an SSH link dropped, ``| head`` done): the
engine keeps running, and nobody is left to read.
"""

from __future__ import annotations

import sys
from typing import Any

from engine.errors import ExitCode


def follow_plain(paths: Any, out: Any = None) -> int:
    """Print every event of a session as a plain line until its engine stops; the exit code is the job's.

    Prediction progress gets its full line (speed, ETA, label mix) and each chunk's last rows once.
    """
    from engine.client import EventFollower
    from engine.predict.progress import STAGE, line, rows_line
    from engine.protocol import EngineStopped, ProgressReported
    from engine.session import LIVE_STATUSES, live_status, read_state
    from tui.format import event_line
    from tui.hangup import Hangup

    out = sys.stdout if out is None else out  # looked up now: tests and redirections replace it
    follower = EventFollower(paths)
    hangup = Hangup().start(follower.wake)
    status = "finished"
    shown_row = None  # the last row already shown: each chunk's rows once, not again with every report

    def show(events: list[Any]) -> None:
        nonlocal status, shown_row
        for env in events:
            body = env.body
            ours = isinstance(body, ProgressReported) and body.stage == STAGE
            text = line(body) if isinstance(body, ProgressReported) and ours else ""
            print(f"[{env.seq}] {text or event_line(env.type, body.model_dump())}", file=out, flush=True)
            rows = body.detail.last_rows if isinstance(body, ProgressReported) and ours else None
            if rows and rows[-1].row != shown_row:
                shown_row = rows[-1].row
                print(f"[{env.seq}] {rows_line(rows)}", file=out, flush=True)
            if isinstance(body, EngineStopped):
                status = body.status
        for notice in follower.notices():  # what this ftc left out of a newer one's events: once each
            print(f"note: {notice}", file=sys.stderr, flush=True)

    try:
        while not follower.ended:
            show(follower.poll(timeout=1.0))  # a live event or a hang-up ends the wait at once
            if hangup.happened.is_set():
                return _hung_up(paths, hangup, out)
            if follower.ended or live_status(read_state(paths)) in LIVE_STATUSES:
                continue
            show(follower.poll(timeout=0))  # the engine ended: print what the journal still holds
            if not follower.ended:
                state = read_state(paths)
                status = live_status(state)
                # A prediction resumes like a run: its engine continues OUT.h5 from the cursor.
                print(f"engine is gone (status: {status}); 'ftc resume {paths.id}' continues it", file=out)
            break
    except KeyboardInterrupt:
        print(f"detached; the engine keeps running. 'ftc attach {paths.id}' to come back", file=out)
        return ExitCode.OK
    finally:
        follower.close()
    return ExitCode.OK if status in ("finished", "stopped") else ExitCode.FAILED


def _hung_up(paths: Any, hangup: Any, out: Any) -> int:
    """Stdin closed: say so where the output goes, if anywhere, and leave. Stdout gone: just leave."""
    from tui.hangup import exit_now

    if hangup.fd == 0:
        try:
            print(f"stdin closed: detached; the engine keeps running. 'ftc attach {paths.id}' to come back",
                  file=out, flush=True)  # fmt: skip
            return ExitCode.OK
        except OSError:
            pass
    exit_now(
        hangup.exit_code
    )  # nothing can be written: no message, no traceback from the interpreter's last flush
    return ExitCode.OK
