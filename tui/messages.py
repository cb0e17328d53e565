"""Messages the console's workers and screens post (past-tense names); the App routes the ones it owns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    """A batch of a session's events, in seq order, none seen before: never dropped, they build history."""

    events: list[Envelope]


@dataclass
class LatestEventReceived(Message):
    """The newest event of a kind whose older ones a screen does not need (a progress report)."""

    event: Envelope

    def can_replace(self, message: Message) -> bool:
        # A newer report of the same kind, queued right behind this one, says all this one says.
        return isinstance(message, LatestEventReceived) and type(message.event.body) is type(self.event.body)


@dataclass
class NoticesReceived(Message):
    """What the feed left out of a session's events (a newer ftc's fields or types, damaged lines)."""

    notices: list[str]


@dataclass
class StatusRefreshed(Message):
    """A session's status word, read again from its state file."""

    status: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusRefreshed)


@dataclass
class CommandAnswered(Message):
    """A control command came back (ok or with an error text)."""

    session: str
    command: str
    ok: bool
    text: str


@dataclass
class SessionOpened(Message):
    """A person chose a session to look at; the App decides which screen shows it."""

    session: str
    job: str | None = None


class DataFileRequested(Message):
    """A person asked to inspect and test a data file; the App asks which one and opens it."""


@dataclass
class NewRunRequested(Message):
    """A person asked for a new run; with a session, its config.toml prefills the form (clone and edit)."""

    session: str | None = None


@dataclass
class LrFindRequested(Message):
    """The new-run screen asks for an LR range test of its form's config (as `ftc train` would write it)."""

    config: dict[str, Any]


@dataclass
class LearningRateSuggested(Message):
    """A learning-rate range test's suggested rate, posted to the new-run screen to fill its form."""

    learning_rate: float


@dataclass
class ErrorsRequested(Message):
    """A person chose a cell of an evaluation's confusion matrix: the App opens that evaluation's errors.

    ``true_label``/``predicted_label`` None: any (a whole row, or every example); ``predictions`` is
    the evaluation's per-example predictions file, relative to the session folder (None: not kept).
    """

    session: str
    step: int
    split: str
    true_label: str | None
    predicted_label: str | None
    predictions: str | None


@dataclass
class ComparisonRequested(Message):
    """A person marked sessions to compare (two or more, in list order); the App opens the compare screen."""

    sessions: list[str]


class DataFileWanted(Message):
    """A form asks for a data file; the App asks with the file picker and answers with DataFileChosen."""


@dataclass
class DataFileChosen(Message):
    """The data file a person chose with the picker, posted to the screen that asked (DataFileWanted)."""

    path: str
