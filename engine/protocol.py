"""The wire protocol between the TUI/CLI and the engine: a versioned envelope, one model per message.

This module is imported by both sides; it must never import Textual, TensorFlow,
transformers or keras (tests check this). Messages are JSON only.

Commands are imperative (``pause``), events past tense (``step_ended``). Every command
gets exactly one reply of type ``reply`` whose ``parent`` is the command's ``id`` and
whose body says ``ok`` or ``error`` with the error's name and text (Jupyter style).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError

PROTOCOL_VERSION = 1


class ProtocolError(ValueError):
    """A message that cannot be accepted: malformed JSON, unknown type, bad fields or version."""

    def __init__(self, name: str, text: str, parent: str | None = None) -> None:
        super().__init__(text)
        self.name = name
        self.text = text
        self.parent = parent


class _Body(BaseModel):
    # strict: a JSON "1" is not the number 1; a peer that sends it has a bug worth hearing about.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# ---------------------------------------------------------------- commands


class Ping(_Body):
    """Is the engine alive? Replies with its status."""


class Status(_Body):
    """Ask for the engine's current state (status, step, job)."""


class Pause(_Body):
    """Pause the job between steps. Pausing a paused job is a no-op."""


class Unpause(_Body):
    """Continue a paused job. Unpausing a running job is a no-op."""


class CheckpointNow(_Body):
    """Write a checkpoint at the next step boundary."""


class Stop(_Body):
    """Checkpoint, then end the job and the engine cleanly."""


COMMANDS: dict[str, type[_Body]] = {
    "ping": Ping,
    "status": Status,
    "pause": Pause,
    "unpause": Unpause,
    "checkpoint_now": CheckpointNow,
    "stop": Stop,
}


# ---------------------------------------------------------------- replies


class Reply(_Body):
    """The answer to one command: ok with a result, or error with its name and text."""

    status: Literal["ok", "error"]
    result: dict[str, Any] = Field(default_factory=dict)
    error_name: str | None = None
    error_text: str | None = None


# ---------------------------------------------------------------- events


class EngineStarted(_Body):
    """The engine process is up and serving its sockets."""

    pid: int
    hostname: str
    job: str
    resumed: bool = False


class JobStarted(_Body):
    """The session's job began (or resumed) at this step."""

    job: str
    step: int = 0
    total_steps: int | None = None


class StepEnded(_Body):
    """One optimisation (or job) step finished."""

    step: int
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    examples_per_s: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None


class SchedulePlanned(_Body):
    """The learning-rate schedule the run will follow, sampled over all its steps (drawn ahead)."""

    steps: list[int]
    learning_rates: list[float]


class EvaluationEnded(_Body):
    """An evaluation finished: metric name to value, plus per-class figures."""

    step: int
    split: str = "validation"
    metrics: dict[str, float] = Field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = Field(default_factory=dict)


class CheckpointSaved(_Body):
    """A complete checkpoint is on disk."""

    step: int
    path: str
    reason: str = "periodic"
    metric: float | None = None


class ProgressReported(_Body):
    """Progress of a job that is not step-based (data preparation, checks, prediction)."""

    stage: str
    done: int
    total: int | None = None
    unit: str = "rows"
    rate: float | None = None
    eta_s: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Paused(_Body):
    """The job is paused at this step."""

    step: int


class Unpaused(_Body):
    """The job continues from this step."""

    step: int


class LogRecorded(_Body):
    """A line for the event log (warnings, notices)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    text: str


class JobFinished(_Body):
    """The job completed its work."""

    step: int
    summary: dict[str, Any] = Field(default_factory=dict)


class JobFailed(_Body):
    """The job raised; the engine ends after this event."""

    step: int
    error_name: str
    error_text: str


class JobStopped(_Body):
    """The job was stopped on request (command or signal) after checkpointing."""

    step: int
    reason: str


class EngineStopped(_Body):
    """The engine's last event: it is exiting cleanly."""

    status: Literal["finished", "failed", "stopped"]
    reason: str = ""


EVENTS: dict[str, type[_Body]] = {
    "engine_started": EngineStarted,
    "job_started": JobStarted,
    "step_ended": StepEnded,
    "schedule_planned": SchedulePlanned,
    "evaluation_ended": EvaluationEnded,
    "checkpoint_saved": CheckpointSaved,
    "progress_reported": ProgressReported,
    "paused": Paused,
    "unpaused": Unpaused,
    "log_recorded": LogRecorded,
    "job_finished": JobFinished,
    "job_failed": JobFailed,
    "job_stopped": JobStopped,
    "engine_stopped": EngineStopped,
}

BODIES: dict[str, type[_Body]] = {**COMMANDS, **EVENTS, "reply": Reply}
_BODY_TYPES: dict[type[_Body], str] = {cls: name for name, cls in BODIES.items()}


# ---------------------------------------------------------------- envelope


class Envelope(BaseModel):
    """The header every message carries, and its typed body."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: int = PROTOCOL_VERSION
    type: str
    session: str = Field(min_length=1)
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    parent: str | None = None
    seq: int | None = None
    ts: float = Field(default_factory=time.time)
    body: SerializeAsAny[_Body]

    @property
    def is_event(self) -> bool:
        return self.type in EVENTS


def make(body: _Body, session: str, *, parent: str | None = None, seq: int | None = None) -> Envelope:
    """Wrap a body in an envelope of the matching type."""
    return Envelope(type=_BODY_TYPES[type(body)], session=session, parent=parent, seq=seq, body=body)


def encode(env: Envelope) -> bytes:
    """Serialise an envelope to compact JSON bytes."""
    return env.model_dump_json().encode()


def decode(raw: bytes | str, *, kinds: dict[str, type[_Body]] | None = None) -> Envelope:
    """Parse and validate one message; raise ProtocolError saying exactly what is wrong."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError("MalformedMessage", f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("MalformedMessage", "message must be a JSON object")
    parent = data.get("id") if isinstance(data.get("id"), str) else None
    version = data.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # True and 1.0 equal 1 in Python
        raise ProtocolError(
            "VersionMismatch",
            f"protocol version {version!r} is not supported (this side speaks {PROTOCOL_VERSION}); "
            "upgrade ftc on both ends",
            parent,
        )
    allowed = BODIES if kinds is None else kinds
    kind = data.get("type")
    if kind not in allowed:
        raise ProtocolError(
            "UnknownType",
            f"unknown message type {kind!r}; expected one of {', '.join(sorted(allowed))}",
            parent,
        )
    body_cls = allowed[kind]
    seq = data.get("seq")
    if kind in EVENTS and (type(seq) is not int or seq < 1):
        raise ProtocolError("InvalidMessage", f"{kind}: field 'seq': an event needs a seq >= 1", parent)
    try:
        body = body_cls.model_validate(data.get("body", {}))
        return Envelope.model_validate({**data, "body": body})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ProtocolError("InvalidMessage", f"{kind}: field {where!r}: {first['msg']}", parent) from None


def body_dict(env: Envelope) -> dict[str, Any]:
    """The body as a plain dict (for display and journals)."""
    return env.body.model_dump()
