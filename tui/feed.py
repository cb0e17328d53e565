"""SessionFeed: one session's events for a screen (journal replay, then live), dispatched by event class.

A screen composes one feed, registers a handler per event class (``feed.handle(StepEnded, ...)``)
and calls ``start`` once its widgets are mounted. The feed also keeps the session's status word
fresh and sends the screen's control commands, so no screen carries its own copy of either.

A screen that takes steps as runs (``feed.handle_steps``, the monitor) gets a summarised replay:
the journal's step lines come as columns (tui/replay.py), a few dozen calls for 100k steps;
live events follow as before, each once, by seq.

An idle console must cost next to nothing: one thread sleeps in the kernel on the engine's event
socket (or, with no engine, for ``WAIT_S``) and looks at state.json only when a ``stat`` says it
changed; the screen hears of a status only when it changes.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.widget import Widget
from textual.worker import get_current_worker

from engine.session import live_status, resolve
from tui import actions
from tui.format import event_line
from tui.live import on_stack
from tui.messages import (
    CommandAnswered,
    EventsReceived,
    LatestEventReceived,
    NoticesReceived,
    StatusRefreshed,
)

if TYPE_CHECKING:
    from engine.client import EventFollower
    from engine.protocol import Envelope, StepEnded
    from tui.replay import Item, JournalReplay, StepRun

# The longest the follower sleeps: a live event wakes it at once; with no engine, a resume started
# elsewhere, or an engine that died, is seen within this.
WAIT_S = 1.0
# A long history is handed over in pages of about this much journal (~2,500 step events), so the
# screen draws and answers keys between pages instead of freezing until the whole replay is done.
# A summarised replay (see ``handle_steps``) costs the screen far less per event: its pages are
# tui.replay.PAGE_BYTES.
PAGE_BYTES = 1 << 20

Body = TypeVar("Body")


_frozen = False


def _freeze_once() -> None:
    """Move the objects the console holds by now (modules, widgets, styles) out of the collector's
    reach, once per process. A long replay allocates enough to set off full collections, each
    scanning all of them again: 0.2-0.4 s of a 100k-event reattach's CPU on a cold start."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


def notice_line(notice: str) -> Text:
    """A notice (what the feed left out, said once) as one line of a screen's event log."""
    return Text(f"  note {notice}", style="yellow")


def log_line(env: Envelope) -> Text:
    """An event as one line of a screen's event log: seq, then what happened (failures in red)."""
    style = "red" if env.type == "job_failed" else ""
    return Text(f"{env.seq:>6} {event_line(env.type, env.body.model_dump())}", style=style)


def step_line(seq: int, row: StepEnded | bytes) -> Text:
    """A step (``StepRun.row``) as an event-log line, the same as ``log_line`` of its envelope."""
    from tui.replay import step_body

    return Text(f"{seq:>6} {event_line('step_ended', step_body(row).model_dump())}")


class ReplayEnded(Message):
    """The summarised replay has handed over the whole journal as it was; live events follow."""


@dataclass
class ReplayPaged(Message):
    """A page of a session's journal, summarised: events in seq order, consecutive steps as one StepRun."""

    items: list[Item]


class SessionFeed(Widget):
    """Every event of one session, once each and in order, handed to the handlers of its class."""

    DEFAULT_CSS = "SessionFeed { display: none; }"

    def __init__(self, root: Path, session: str) -> None:
        super().__init__()
        self.root = root
        self.paths = resolve(root, session)
        self.session_id = self.paths.id
        self.seen_seq = 0
        self.events_seen = 0
        self.status = "?"
        self._handlers: dict[type, list[Callable[[Any, Envelope], None]]] = {}
        self._every: list[tuple[Callable[[Envelope], None], bool]] = []  # (handler, with steps)
        self._runs: list[Callable[[StepRun], None]] = []
        self._on_change: list[Callable[[], None]] = []
        self._on_notice: list[Callable[[str], None]] = []
        self._on_replayed: list[Callable[[], None]] = []
        self._latest_only: set[type] = set()
        self._follower: EventFollower | None = None
        self._status_wanted = True  # post the status even if unchanged (after a command)

    # ---------------------------------------------------------------- registration

    def handle(
        self, kind: type[Body], handler: Callable[[Body, Envelope], None], *, latest_only: bool = False
    ) -> None:
        """Call ``handler(body, envelope)`` for each event of class ``kind``.

        ``latest_only``: when events of this kind arrive faster than the screen draws, only the
        newest is handled. Only for figures that the next event restates (a progress report),
        never for events that build history (each step is a point of the loss curve).
        """
        self._handlers.setdefault(kind, []).append(handler)
        if latest_only:
            self._latest_only.add(kind)

    def handle_every(self, handler: Callable[[Envelope], None], *, steps: bool = True) -> None:
        """Call ``handler(envelope)`` for every event, after the handlers of its class (an event log).

        ``steps=False``: not for step_ended events (a screen that takes them as runs, ``handle_steps``).
        """
        self._every.append((handler, steps))

    def handle_steps(self, handler: Callable[[StepRun], None]) -> None:
        """Call ``handler(run)`` for each run of consecutive step_ended events, as columns.

        A feed whose screen takes every step this way (no ``handle(StepEnded, ...)``, no
        ``handle_every`` with steps) replays the journal summarised (tui/replay.py): a reattach
        to 100k steps hands the plots a few dozen runs instead of 100k events. Live steps come
        as runs too (of the steps that arrived together), after the events before them.
        """
        self._runs.append(handler)

    @property
    def summarised(self) -> bool:
        """Whether the replay hands steps over as runs only (nothing here asks for them one by one)."""
        from engine.protocol import StepEnded

        return bool(self._runs) and not self._handlers.get(StepEnded) and not any(s for _, s in self._every)

    def on_change(self, handler: Callable[[], None]) -> None:
        """Call ``handler()`` after each batch of events and each new status (to redraw a summary)."""
        self._on_change.append(handler)

    def on_replayed(self, handler: Callable[[], None]) -> None:
        """Call ``handler()`` once a summarised replay has handed over the journal (to draw it now)."""
        self._on_replayed.append(handler)

    def on_notice(self, handler: Callable[[str], None]) -> None:
        """Call ``handler(text)`` once for each kind of thing the feed left out (never silently)."""
        self._on_notice.append(handler)

    def start(self) -> None:
        """Replay the journal, then follow; call once the screen's widgets are mounted."""
        if self.summarised:
            _freeze_once()
        self._follow()

    def on_unmount(self) -> None:
        self.workers.cancel_node(self)  # Widget does this too, but after this handler
        follower = self._follower
        if follower is not None:
            follower.wake()  # let the follower's thread see it is cancelled now, not in WAIT_S

    # ---------------------------------------------------------------- events in

    @work(thread=True, exclusive=True, group="follow")
    def _follow(self) -> None:
        from engine.client import EventFollower

        worker = get_current_worker()
        follower = EventFollower(self.paths, page_bytes=PAGE_BYTES)
        self._follower = follower
        status = self._post_status(follower, None)
        try:
            if self.summarised:
                from tui.replay import JournalReplay

                replay = JournalReplay(self.paths.events)
                self._replay(replay, lambda: worker.is_cancelled)
                follower.skip_to(replay.offset, replay.line, replay.last_seq, replay.ended)
                self.post_message(ReplayEnded())
            while not worker.is_cancelled:
                events = follower.poll(timeout=WAIT_S)
                history = [env for env in events if type(env.body) not in self._latest_only]
                newest = {type(env.body): env for env in events if type(env.body) in self._latest_only}
                if history:
                    self.post_message(EventsReceived(history))
                for env in newest.values():
                    self.post_message(LatestEventReceived(env))
                notices = follower.notices()
                if notices:
                    self.post_message(NoticesReceived(notices))
                status = self._post_status(follower, status)
        finally:
            self._follower = None
            follower.close()

    def _replay(self, replay: JournalReplay, cancelled: Callable[[], bool]) -> None:
        """Hand the journal as it is now to the screen, a page per message, summarised."""
        while not cancelled():
            offset = replay.offset
            items = replay.read_page()
            if items:
                self.post_message(ReplayPaged(items))
            notices = replay.notices.take()
            if notices:
                self.post_message(NoticesReceived(notices))
            if replay.offset == offset:
                return

    def _post_status(self, follower: EventFollower, last: str | None) -> str:
        """Post the session's status if it changed (or was asked for); return it."""
        try:
            status = live_status(follower.state())
        except Exception as exc:  # a damaged state file is shown, not fatal
            status = f"damaged ({exc})"
        if status != last or self._status_wanted:
            self._status_wanted = False
            self.post_message(StatusRefreshed(status))
        return status

    def _on_stack(self) -> bool:
        """Whether this feed's screen is still on the app's stack.

        The follower thread may have posted events just before the screen was popped; those
        arrive while the screen's widgets are being removed, and must not reach its handlers.
        """
        return self.is_attached and on_stack(self.screen)

    @on(EventsReceived)
    def _events_received(self, message: EventsReceived) -> None:
        message.stop()
        if not self._on_stack():
            return
        fresh, last = [], self.seen_seq
        for env in message.events:
            if env.seq is not None and env.seq <= last:
                continue  # a follower restarted by a resume may repeat what was handled
            fresh.append(env)
            last = max(last, env.seq or 0)
        self._dispatch_events(fresh)
        self._changed()

    @on(ReplayPaged)
    def _replay_paged(self, message: ReplayPaged) -> None:
        message.stop()
        if not self._on_stack():
            return
        from tui.replay import StepRun

        # Envelopes between runs go through _dispatch_events: a step decoded in full (an older
        # or newer minor's line) still reaches the run handlers, as a run of its own.
        events: list[Envelope] = []
        last = self.seen_seq
        for item in message.items:
            if isinstance(item, StepRun):
                if events:
                    self._dispatch_events(events)
                    events = []
                run = item.after(self.seen_seq)
                if run:
                    self._dispatch_run(run)
                last = self.seen_seq
            elif item.seq is None or item.seq > last:
                events.append(item)
                last = max(last, item.seq or 0)
        if events:
            self._dispatch_events(events)
        self._changed()

    @on(ReplayEnded)
    def _replay_ended(self, message: ReplayEnded) -> None:
        message.stop()
        if self._on_stack():
            for handler in self._on_replayed:
                handler()

    @on(LatestEventReceived)
    def _latest_received(self, message: LatestEventReceived) -> None:
        message.stop()
        if not self._on_stack():
            return
        self._dispatch(message.event)
        self._changed()

    @on(NoticesReceived)
    def _notices_received(self, message: NoticesReceived) -> None:
        message.stop()
        if not self._on_stack():
            return
        for notice in message.notices:
            for handler in self._on_notice:
                handler(notice)

    def _dispatch(self, env: Envelope) -> None:
        """One event to its handlers (a step to the run handlers too, as a run of one)."""
        self._dispatch_events([env])

    def _dispatch_events(self, events: list[Envelope]) -> None:
        """Events in order to their handlers; consecutive steps to the run handlers as one run."""
        steps: list[Envelope] = []
        for env in events:
            if env.type == "step_ended" and self._runs:
                steps.append(env)
            elif steps:
                self._dispatch_steps(steps)
                steps = []
            self._dispatch_one(env)
        if steps:
            self._dispatch_steps(steps)

    def _dispatch_one(self, env: Envelope) -> None:
        self.seen_seq = max(self.seen_seq, env.seq or 0)
        self.events_seen += 1
        for handler in self._handlers.get(type(env.body), ()):
            handler(env.body, env)
        step = env.type == "step_ended"
        for every, steps in self._every:
            if steps or not step:
                every(env)

    def _dispatch_steps(self, steps: list[Envelope]) -> None:
        """Live step events, already dispatched one by one, as one run to the run handlers."""
        from tui.replay import StepRun

        run = StepRun.of(steps)
        for handler in self._runs:
            handler(run)

    def _dispatch_run(self, run: StepRun) -> None:
        """A replayed run of steps: to the run handlers (a summarised feed has no per-step ones)."""
        self.seen_seq = max(self.seen_seq, run.seqs[-1])
        self.events_seen += len(run)
        for handler in self._runs:
            handler(run)

    def _changed(self) -> None:
        for handler in self._on_change:
            handler()

    # ---------------------------------------------------------------- status

    def refresh_status(self) -> None:
        """Look at the session's state now (after a command) rather than at the follower's next turn."""
        self._status_wanted = True
        follower = self._follower
        if follower is not None:
            follower.wake()

    @on(StatusRefreshed)
    def _status_refreshed(self, message: StatusRefreshed) -> None:
        message.stop()
        self.status = message.status
        if self._on_stack():
            self._changed()

    # ---------------------------------------------------------------- controls

    def control(self, command: str, checkpoint: str | None = None) -> None:
        """Send pause, unpause, checkpoint, stop or resume (from ``checkpoint``) to this session."""
        actions.send_control(self, self.root, self.session_id, command, checkpoint)

    @on(CommandAnswered)
    def _command_answered(self, message: CommandAnswered) -> None:
        message.stop()
        actions.notify_answer(self, message)
        self.refresh_status()  # after a resume the follower reconnects to the new engine by itself
