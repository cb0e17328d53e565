"""Messages the console's workers post back to its screens (past-tense names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # the protocol (pydantic models) loads with the first monitor, not at start-up
    from engine.protocol import Envelope
    from engine.session import SessionInfo


@dataclass
class SessionsListed(Message):
    """A fresh listing of the sessions folder."""

    sessions: list[SessionInfo]


@dataclass
class EventsReceived(Message):
    """A batch of a session's events, in seq order, none seen before."""

    events: list[Envelope]


@dataclass
class CommandAnswered(Message):
    """A control command came back (ok or with an error text)."""

    session: str
    command: str
    ok: bool
    text: str
