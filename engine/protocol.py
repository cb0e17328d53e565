"""The wire protocol between the TUI/CLI and the engine: a versioned envelope, one model per message.

This module is imported by both sides and depends on pydantic alone (an import-linter
contract checks it). Messages are JSON only; no ``dict[str, Any]`` crosses the wire or
the journal: every payload, nested ones included, is a model of its own.

Commands are imperative (``pause``), events past tense (``step_ended``). Every command
gets exactly one reply of type ``reply`` whose ``parent`` is the command's ``id`` and
whose body says ``ok`` or ``error`` with the error's name and text (Jupyter style).

Versions and compatibility
--------------------------
The envelope's ``v`` is ``"MAJOR.MINOR"`` (ftc 0.1.0 wrote the integer ``1``, read as
``"1.0"``). Journals outlive releases, so the rule is:

- A **minor** change adds an optional field (with a default that keeps the old meaning)
  or a new message type. A reader of an older minor accepts a newer minor's message:
  it ignores the fields and event types it does not know and reports them once
  (``Envelope.ignored``, ``ProtocolError.ignorable``); a reader of a newer minor fills
  the defaults in. A message that claims this reader's minor or an older one and still
  carries an unknown field or type is a bug and is refused, naming the field.
- A **major** change (a field removed, renamed or given another meaning) is refused
  with a message naming both versions and what to do.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SerializeAsAny, ValidationError

MAJOR, MINOR = 1, 5
# 1.2: JobSummary.truncated; 1.3: EvaluationEnded.confusion; 1.4: PhaseChanged, ResourcesSampled,
# SchedulePlanned.head_lr_multiplier and lowest_lr_multiplier, EvaluationEnded.epoch and .predictions,
# JobSummary.suggested_learning_rate, EngineStarted.step; 1.5: WorkersReported, EngineStarted.workers,
# EngineState.workers, JobSummary.shard and .shards_merged
PROTOCOL_VERSION = f"{MAJOR}.{MINOR}"


class ProtocolError(ValueError):
    """A message that cannot be accepted: malformed JSON, unknown type, bad fields or version.

    ``ignorable`` marks a message from a newer minor version whose type this reader does not
    know: a reader of events skips it (and says so once) instead of treating it as damage.
    """

    def __init__(self, name: str, text: str, parent: str | None = None, *, ignorable: bool = False) -> None:
        super().__init__(text)
        self.name = name
        self.text = text
        self.parent = parent
        self.ignorable = ignorable


class _Body(BaseModel):
    # strict: a JSON "1" is not the number 1; a peer that sends it has a bug worth hearing about.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Part(_Body):
    """A typed piece of a payload (a row preview, a summary): never a bare dict."""


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


class EngineState(_Part):
    """The session's state.json as the engine holds it (status, engine, progress, best, checkpoint)."""

    status: str | None = None
    job: str | None = None
    name: str | None = None
    step: int = 0
    total_steps: int | None = None
    pid: int | None = None
    pid_start: str | None = None
    hostname: str | None = None
    heartbeat: float | None = None
    created: float | None = None
    started: float | None = None
    ended: float | None = None
    message: str = ""
    endpoints: dict[str, str] = Field(default_factory=dict)
    best_metric: float | None = None
    best_metric_name: str | None = None
    last_checkpoint: str | None = None
    last_checkpoint_step: int | None = None
    workers: int = 1  # training worker processes in the group (since 1.5)


class CommandResult(_Part):
    """What an ok reply says: whether the command changed anything, and the state it left."""

    changed: bool = False
    status: str | None = None
    step: int = 0
    state: EngineState = Field(default_factory=EngineState)


class Reply(_Body):
    """The answer to one command: ok with a result, or error with its name and text."""

    status: Literal["ok", "error"]
    result: CommandResult = Field(default_factory=CommandResult)
    error_name: str | None = None
    error_text: str | None = None


# ---------------------------------------------------------------- events


class EngineStarted(_Body):
    """The engine process is up and serving its sockets."""

    pid: int
    hostname: str
    job: str
    resumed: bool = False
    # A resume: the step of the checkpoint it resumes from, as far as known before loading it
    # (its job_started says for sure, after the model loads) (since 1.4).
    step: int | None = None
    workers: int = 1  # training worker processes in the group; this engine is worker 0 (since 1.5)


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
    """The learning-rate schedule the run will follow, sampled over all its steps (drawn ahead).

    ``learning_rates`` is the encoder's top layer. With differential rates (since 1.4) the
    classifier head learns at ``head_lr_multiplier`` times it and the lowest layer (the
    embeddings) at ``lowest_lr_multiplier`` times it; 1.0 and 1.0: one rate for every weight.
    """

    steps: list[int]
    learning_rates: list[float]
    head_lr_multiplier: float = 1.0
    lowest_lr_multiplier: float = 1.0


class EvaluationEnded(_Body):
    """An evaluation finished: metric name to value, plus per-class figures."""

    step: int
    split: str = "validation"
    metrics: dict[str, float] = Field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = Field(default_factory=dict)
    # [true][predicted] counts in per_class's label order (since 1.3; empty: not recorded)
    confusion: list[list[int]] = Field(default_factory=list)
    epoch: float | None = None  # the training epoch when it ran (since 1.4)
    # The per-example predictions of this evaluation, relative to the session folder (since 1.4;
    # None: not kept): the error-analysis view reads them lazily.
    predictions: str | None = None


# The phases a job reports (PhaseChanged.phase). A reader shows an unknown phase as its name.
PHASES = (
    "loading_model",  # reading and converting the pretrained weights and the tokenizer
    "preparing_data",  # scanning, splitting and sharding a raw file (done/total: rows)
    "testing_data",  # the data tests that gate a run
    "compiling",  # tracing and compiling the step functions before step 1
    "training",  # optimisation steps
    "evaluating",  # an evaluation (done/total: batches)
    "checkpointing",  # writing a checkpoint
    "pausing",  # a pause was asked for; it takes effect at the next step boundary
    "stopping",  # a stop was asked for; the job checkpoints and ends
    "predicting",  # prediction batches
)


class PhaseChanged(_Body):
    """What the job is doing now, so a waiting console says why (since 1.4).

    Sent when the phase changes, and again with new ``done`` figures as it progresses
    (at most a few times a second). ``seconds`` is how long the previous phase took.
    """

    phase: str
    step: int = 0
    done: int | None = None
    total: int | None = None
    unit: str = ""
    detail: str = ""
    seconds: float | None = None


class GpuSample(_Part):
    """One GPU as NVML reports it."""

    index: int
    name: str = ""
    utilization: float | None = None  # percent
    memory_used: int | None = None  # bytes
    memory_total: int | None = None  # bytes
    temperature_c: float | None = None
    power_w: float | None = None


class ResourcesSampled(_Body):
    """The engine process's and the host's resource use, sampled every few seconds (since 1.4)."""

    cpu_percent: float | None = None  # of one core (200 = two cores busy)
    rss: int | None = None  # bytes
    host_memory_used: int | None = None  # bytes
    host_memory_total: int | None = None  # bytes
    cpu_count: int | None = None
    gpus: list[GpuSample] = Field(default_factory=list)
    device: str = ""  # what the run computes on: "CPU", "GPU:0", "2 GPUs"
    precision: str = ""  # the Keras precision policy: float32, mixed_bfloat16, mixed_float16


class WorkerHealth(_Part):
    """One training worker as the chief last heard of it (since 1.5)."""

    index: int
    host: str = ""
    pid: int | None = None
    alive: bool = True
    step: int | None = None
    last_seen: float | None = None  # unix time of its last report
    note: str = (
        ""  # why it is not alive: "exited with 9", "was killed (SIGKILL)"; WORKER_FINISHED: a clean end
    )


# WorkerHealth.note of a worker that ended cleanly with the group (not alive, and no loss)
WORKER_FINISHED = "finished"


class WorkersReported(_Body):
    """A multi-worker group's health, from the chief (since 1.5): sent on a change and every few seconds."""

    total: int
    workers: list[WorkerHealth] = Field(default_factory=list)


class CheckpointSaved(_Body):
    """A complete checkpoint is on disk."""

    step: int
    path: str
    reason: str = "periodic"
    metric: float | None = None


class RowWritten(_Part):
    """One predicted row as the prediction screen previews it."""

    row: int
    label: str | None = None
    score: float | None = None
    flag: str | None = None
    text: str = ""


class ProgressDetail(_Part):
    """What a progress report knows besides rows done: a data job's fraction, a prediction's mix."""

    fraction: float | None = None  # data jobs: share of the input read
    written: int | None = None  # prediction: rows in the output so far
    output: str | None = None
    label_counts: dict[str, int] = Field(default_factory=dict)
    flag_counts: dict[str, int] = Field(default_factory=dict)
    estimated_total: int | None = None
    padding: float | None = None
    tokens_per_s: float | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    last_rows: list[RowWritten] | None = None


class ProgressReported(_Body):
    """Progress of a job that is not step-based (data preparation, checks, prediction)."""

    stage: str
    done: int
    total: int | None = None
    unit: str = "rows"
    rate: float | None = None
    eta_s: float | None = None
    detail: ProgressDetail = Field(default_factory=ProgressDetail)


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


class JobSummary(_Part):
    """What a finished job reports; each job fills its own fields and leaves the rest unset."""

    # train
    steps: int | None = None
    epochs: int | None = None
    best_metric: float | None = None
    best_metric_name: str | None = None
    best_step: int | None = None
    restored_best: bool | None = None
    stopped_early: bool | None = None
    test: dict[str, float] = Field(default_factory=dict)
    model: str | None = None
    final_checkpoint: str | None = None
    # check and prepare
    status: str | None = None
    tests: dict[str, str] = Field(default_factory=dict)
    report: str | None = None
    manifest: str | None = None
    splits: dict[str, int] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=list)
    data_fingerprint: str | None = None
    # predict (rows also for check and prepare)
    rows: int | None = None
    output: str | None = None
    label_counts: dict[str, int] = Field(default_factory=dict)
    flag_counts: dict[str, int] = Field(default_factory=dict)
    seconds: float | None = None
    rows_per_s: float | None = None
    padding: float | None = None
    real_tokens: int | None = None
    already_complete: bool | None = None
    truncated: int | None = None  # predict: texts longer than max_length, cut to it (since 1.2)
    # lr_find: the learning rate the range test suggests (since 1.4)
    suggested_learning_rate: float | None = None
    # predict: this output is shard "K/N" of the input's rows (since 1.5); a merge: how many shards
    shard: str | None = None
    shards_merged: int | None = None


class JobFinished(_Body):
    """The job completed its work."""

    step: int
    summary: JobSummary = Field(default_factory=JobSummary)


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
    "phase_changed": PhaseChanged,
    "resources_sampled": ResourcesSampled,
    "workers_reported": WorkersReported,
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

    v: str = PROTOCOL_VERSION
    type: str
    session: str = Field(min_length=1)
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    parent: str | None = None
    seq: int | None = None
    ts: float = Field(default_factory=time.time)
    body: SerializeAsAny[_Body]
    # What this reader dropped from a newer minor's message ("body.foo", "trace"): reported once.
    _ignored: tuple[str, ...] = PrivateAttr(default=())

    @property
    def is_event(self) -> bool:
        return self.type in EVENTS

    @property
    def ignored(self) -> tuple[str, ...]:
        return self._ignored


def make(body: _Body, session: str, *, parent: str | None = None, seq: int | None = None) -> Envelope:
    """Wrap a body in an envelope of the matching type."""
    return Envelope(type=_BODY_TYPES[type(body)], session=session, parent=parent, seq=seq, body=body)


def encode(env: Envelope) -> bytes:
    """Serialise an envelope to compact JSON bytes."""
    return env.model_dump_json().encode()


def clip(value: object, limit: int = 40) -> str:
    """A value as an error message may quote it: its repr cut to ``limit`` characters (never a huge field)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_version(value: object) -> tuple[int, int] | None:
    """(major, minor) of an envelope's ``v``: "1.1", or 0.1.0's integer 1; None if it is neither."""
    if type(value) is int:  # True and 1.0 equal 1 in Python: only a real integer is the old form
        return (value, 0)
    if isinstance(value, str):
        major, dot, minor = value.partition(".")
        if dot and major.isdigit() and minor.isdigit():
            return (int(major), int(minor))
    return None


def _validate(cls: type[BaseModel], data: object, *, newer: bool) -> tuple[BaseModel, list[str]]:
    """Validate data as cls; for a newer minor, drop the fields this reader does not know, at any depth."""
    ignored: list[str] = []
    while True:
        try:
            return cls.model_validate(data), ignored
        except ValidationError as exc:
            errors = exc.errors()
            if not newer or any(e["type"] != "extra_forbidden" for e in errors):
                raise
            data = copy.deepcopy(data)
            for err in errors:
                *path, last = err["loc"]
                holder: Any = data
                for key in path:
                    holder = holder[key]
                del holder[last]
                ignored.append(".".join(str(p) for p in err["loc"]))


def decode(raw: bytes | str, *, kinds: dict[str, type[_Body]] | None = None) -> Envelope:
    """Parse and validate one message; raise ProtocolError saying exactly what is wrong."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError("MalformedMessage", f"message is not valid JSON: {str(exc)[:120]}") from None
    except RecursionError:
        raise ProtocolError("MalformedMessage", "message is nested too deeply to be a message") from None
    if not isinstance(data, dict):
        raise ProtocolError("MalformedMessage", "message must be a JSON object")
    ident = data.get("id")
    parent = ident if isinstance(ident, str) and len(ident) <= 64 else None
    version = parse_version(data.get("v"))
    if version is None or version[0] != MAJOR:
        got = clip(data.get("v")) if version is None else repr(f"{version[0]}.{version[1]}")
        advice = (
            "upgrade ftc to read it"
            if version is not None and version[0] > MAJOR
            else "it was not written by a compatible ftc"
        )
        raise ProtocolError(
            "VersionMismatch",
            f"protocol version {got} is not supported (this ftc speaks {PROTOCOL_VERSION}, "
            f"and reads {MAJOR}.x); {advice}",
            parent,
        )
    newer = version[1] > MINOR
    allowed = BODIES if kinds is None else kinds
    kind = data.get("type")
    if kind not in allowed:
        origin = f" (from a newer ftc, protocol {version[0]}.{version[1]})" if newer and kind else ""
        raise ProtocolError(
            "UnknownType",
            f"unknown message type {clip(kind)}{origin}; expected one of {', '.join(sorted(allowed))}",
            parent,
            ignorable=newer and isinstance(kind, str),
        )
    body_cls = allowed[kind]
    seq = data.get("seq")
    if kind in EVENTS and (type(seq) is not int or seq < 1):
        raise ProtocolError("InvalidMessage", f"{kind}: field 'seq': an event needs a seq >= 1", parent)
    try:
        body, ignored = _validate(body_cls, data.get("body", {}), newer=newer)
        envelope = {**data, "v": f"{version[0]}.{version[1]}", "body": body}
        env, dropped = _validate(Envelope, envelope, newer=newer)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ProtocolError(
            "InvalidMessage", f"{kind}: field {clip(where, 60)}: {first['msg'][:120]}", parent
        ) from None
    assert isinstance(env, Envelope)
    env._ignored = tuple([*dropped, *(f"body.{name}" for name in ignored)])
    return env
