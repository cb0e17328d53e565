"""A summarised journal replay: step_ended lines read as columns, every other line decoded in full.

A long run's journal is mostly ``step_ended`` lines (100k of them for a 100k-step run). Decoding
each through pydantic and handing each to the screen's handlers took seconds; a reattach needs
only their figures, as arrays for the plots. ``JournalReplay`` reads the journal in pages and
matches the step lines with one regular expression that accepts exactly what ``protocol.encode``
writes for a valid ``StepEnded`` of this major version (every field, in order, each a JSON
number or null of the right kind). A line it does not match in full (another minor's fields, an
odd number, a damaged line) is decoded and validated by ``protocol.decode`` like any other
event, and damage is named in the notices, as the plain journal reader does.

A run of consecutive steps is a ``StepRun``: the columns the plots need at once (seq, time, step,
loss, learning rate, examples/s), and each step's whole ``StepEnded``, validated, when a screen shows it as
text (``StepRun.body``). Nothing here imports Textual.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine import protocol
from engine.journal import Notices
from engine.protocol import Envelope, StepEnded

_NUM = rb"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?"
_INT = rb"-?(?:0|[1-9]\d*)"
_OPT = rb"(?:null|" + _NUM + rb")"
_STR = rb'"[^"\\]*"'
# One line of the journal: a valid step_ended as protocol.encode writes it (every field of the
# envelope and of StepEnded, in order, each a JSON number or null of its kind; groups: the line,
# minor version, seq, ts, body, step, total_steps, loss, learning_rate, examples_per_s), or any
# other line (the last).
LINE = re.compile(
    rb'^(?:(\{"v":"1\.(\d+)","type":"step_ended","session":"[^"\\]+","id":' + _STR
    + rb',"parent":(?:null|' + _STR + rb'),"seq":([1-9]\d*),"ts":(' + _NUM + rb'),"body":(\{"step":('
    + _INT + rb'),"total_steps":(null|' + _INT + rb'),"epoch":' + _OPT + rb',"loss":(' + _OPT
    + rb'),"learning_rate":(' + _OPT + rb'),"grad_norm":' + _OPT + rb',"examples_per_s":(' + _OPT
    + rb'),"tokens_per_s":' + _OPT + rb',"eta_s":' + _OPT
    + rb"\})\})|(.*))$",
    re.MULTILINE,
)  # fmt: skip
_MINORS = frozenset(str(minor).encode() for minor in range(protocol.MINOR + 1))  # read by the fast path
# The journal is read this much per page (a line longer than that is read whole).
PAGE_BYTES = 4 << 20


def _floats(column: Sequence[bytes]) -> list[float | None]:
    try:
        return list(map(float, column))
    except ValueError:  # a null among them
        return [None if raw == b"null" else float(raw) for raw in column]


@dataclass
class StepRun:
    """Consecutive step_ended events: their figures as columns, and each step in full on demand."""

    seqs: list[int] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    losses: list[float | None] = field(default_factory=list)
    learning_rates: list[float | None] = field(default_factory=list)
    total_steps: int | None = None  # the last one given in the run
    # Each step's body: a StepEnded already decoded (live), or its JSON (replayed), decoded on demand.
    _rows: list[StepEnded | bytes] = field(default_factory=list, repr=False)
    examples_per_s: list[float | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seqs)

    @classmethod
    def of(cls, events: Sequence[Envelope]) -> StepRun:
        """A run of decoded step_ended envelopes (live events)."""
        run = cls()
        for env in events:
            body = env.body
            assert isinstance(body, StepEnded) and env.seq is not None
            run.seqs.append(env.seq)
            run.ts.append(env.ts)
            run.steps.append(body.step)
            run.losses.append(body.loss)
            run.learning_rates.append(body.learning_rate)
            run.examples_per_s.append(body.examples_per_s)
            run._rows.append(body)
            if body.total_steps is not None:
                run.total_steps = body.total_steps
        return run

    @classmethod
    def _of_matches(cls, rows: Sequence[tuple[bytes, ...]]) -> StepRun:
        """A run of matched step lines (``LINE``'s groups), converted a column at a time."""
        cols = list(zip(*rows, strict=True))
        total = next((int(raw) for raw in reversed(cols[6]) if raw != b"null"), None)
        return cls(
            list(map(int, cols[2])), list(map(float, cols[3])), list(map(int, cols[5])),
            _floats(cols[7]), _floats(cols[8]), total, list(cols[4]), _floats(cols[9]),
        )  # fmt: skip

    def after(self, seq: int) -> StepRun:
        """The steps whose seq is past ``seq`` and past every seq before them (repeats dropped)."""
        seqs = self.seqs
        if seqs and seqs[0] > seq and seqs == list(range(seqs[0], seqs[0] + len(seqs))):
            return self  # consecutive, as in every journal ftc writes (compared in C, not a loop)
        keep = []
        for i, s in enumerate(seqs):
            if s > seq:
                keep.append(i)
                seq = s
        return StepRun(
            [seqs[i] for i in keep], [self.ts[i] for i in keep], [self.steps[i] for i in keep],
            [self.losses[i] for i in keep], [self.learning_rates[i] for i in keep],
            self.total_steps, [self._rows[i] for i in keep], [self.examples_per_s[i] for i in keep],
        )  # fmt: skip

    def body(self, i: int) -> StepEnded:
        """Step ``i`` of the run in full, validated as the protocol says (for text a person reads)."""
        row = self._rows[i]
        if isinstance(row, bytes):
            row = self._rows[i] = step_body(row)
        return row

    def row(self, i: int) -> StepEnded | bytes:
        """Step ``i`` as the run keeps it (decoded, or its JSON): for ``step_body`` later, without the run."""
        return self._rows[i]

    @property
    def last(self) -> StepEnded:
        return self.body(len(self) - 1)


def step_body(row: StepEnded | bytes) -> StepEnded:
    """A step's body from ``StepRun.row``, validated as the protocol says."""
    return row if isinstance(row, StepEnded) else StepEnded.model_validate_json(row)


Item = Envelope | StepRun


class JournalReplay:
    """Reads a session's journal from its start in pages of events and step runs (see the module)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.line = 0
        self.last_seq = 0
        self.ended = False  # the last engine of the journal read so far has stopped
        self.notices = Notices()

    def read_page(self, max_bytes: int = PAGE_BYTES) -> list[Item]:
        """The next page's events in order (consecutive steps as one StepRun); [] at the journal's end."""
        try:
            if os.stat(self.path).st_size <= self.offset:
                return []
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(max_bytes)
                while b"\n" not in data:  # a line longer than a page: read on to its end
                    more = fh.read(max_bytes)
                    if not more:
                        break
                    data += more
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        data = data[: end + 1]
        self.offset += end + 1
        return list(self._items(data))

    def _items(self, data: bytes) -> Iterator[Item]:
        found = LINE.findall(data)
        found.pop()  # the empty match after the page's last newline
        base = self.line
        # Any other line (or a newer minor's step, whose new fields decode names) is decoded in full.
        others = [i for i, row in enumerate(found) if row[1] not in _MINORS]
        start = 0
        for i in [*others, len(found)]:
            if i > start:
                yield from self._run(found[start:i], base + start)
            if i < len(found):
                line = found[i][0] or found[i][-1]
                if line.strip():
                    self.line = base + i + 1
                    yield from self._decode(line)
            start = i + 1
        self.line = base + len(found)

    def _run(self, rows: list[tuple[bytes, ...]], before: int) -> Iterator[Item]:
        """Matched step lines (the first is line ``before`` + 1) as a StepRun."""
        try:
            run = StepRun._of_matches(rows)
        except ValueError:  # a number float() or int() refuses after all: decode names it
            for i, row in enumerate(rows, start=1):
                self.line = before + i
                yield from self._decode(row[0])
            return
        run = run.after(self.last_seq)
        if run:
            self.last_seq = run.seqs[-1]
            yield run

    def _decode(self, line: bytes) -> Iterator[Envelope]:
        """One line decoded and validated in full, as the journal reader does."""
        try:
            env = protocol.decode(line, kinds=protocol.EVENTS)
        except protocol.ProtocolError as exc:
            self.notices.rejected(exc, f"{self.path.name} line {self.line}")
            return
        self.notices.accepted(env)
        if env.seq is None or env.seq <= self.last_seq:
            return
        self.last_seq = env.seq
        if env.type == "engine_stopped":
            self.ended = True
        elif env.type == "engine_started":
            self.ended = False
        yield env
