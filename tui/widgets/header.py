"""RunHeader: the monitor's summary of one run, in two or three lines that fit any width.

Line 1: the status word, what the job is doing when it is not plain training (loading model,
preparing data 12,000/38,158 rows, evaluating 3/12 batches, pausing after the evaluation…), in a
multi-worker run ``workers 2/2`` (alive/total; yellow and never dropped once one is not alive),
the loss, learning rate, throughput and the number of events seen.
Line 2: a progress bar, then ``step 120/400  30%  ETA 3m12s``; the bar takes what is left. While
a resumed engine loads, before its job says which checkpoint step it resumed from: ``step ?/400
resuming`` (never the old run's step, 100% and ETA 0s).
Line 3 (once the engine has sampled its resources): per GPU utilisation, memory, temperature and
power, the engine's CPU and RSS, the host's memory, the device and the precision policy.

Nothing is ever cut in half: when a line is too wide for the terminal, whole fields are dropped,
the least important first (``RANK``: the higher the rank, the sooner it goes):

- line 1: events seen, tok/s, ex/s, learning rate, loss, then the current activity; the status
  word and a pending pause or stop always stay.
- line 2: the bar shrinks first (and goes below 4 cells), then the percentage; step and ETA stay.
- line 3: GPU power, GPU temperature, device and precision, host memory, RSS, engine CPU, then the
  GPUs themselves (the last GPU first). Once the engine has ended, the line is dimmed and begins
  with ``last sample``: the figures are its last, not the machine's now.

The widget registers its own handlers on the screen's ``SessionFeed``, so the screen only composes it.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget

from engine.protocol import (
    WORKER_FINISHED,
    CheckpointSaved,
    EngineStarted,
    Envelope,
    EvaluationEnded,
    JobFailed,
    JobFinished,
    JobStarted,
    JobStopped,
    Paused,
    PhaseChanged,
    ResourcesSampled,
    StepEnded,
    Unpaused,
    WorkersReported,
)
from tui.feed import SessionFeed
from tui.format import PENDING_PHASES, duration, phase_text, sci, size
from tui.replay import StepRun
from tui.status import status_text

SEP = "  "
MIN_BAR = 4
# Statuses whose engine is (or may be) at work: only then is a phase current, not a leftover.
ACTIVE = ("running", "starting", "stopping", "paused", "?", "new")

# Field ranks: 0 is never dropped; higher ranks are dropped first when a line is too wide.
RANK = {
    "status": 0,
    "pending": 0,
    "activity": 1,
    "workers": 1,
    "loss": 3,
    "lr": 4,
    "ex/s": 5,
    "tok/s": 6,
    "events": 7,
    "step": 0,
    "eta": 0,
    "percent": 2,
    "last": 0,
    "gpu": 1,
    "cpu": 2,
    "rss": 3,
    "host": 4,
    "device": 5,
    "gpu-temp": 6,
    "gpu-power": 7,
}

Field = tuple[int, Text]


def fit(fields: list[Field], width: int, sep: str = SEP) -> Text:
    """The fields joined by ``sep``, dropping the highest-ranked (rightmost first) until they fit."""
    kept = [f for f in fields if f[1].plain]
    while kept and line_width(kept, sep) > width:
        worst = max(range(len(kept)), key=lambda i: (kept[i][0], i))
        del kept[worst]
    return Text(sep).join(text for _, text in kept)


def line_width(fields: list[Field], sep: str = SEP) -> int:
    return sum(cell_len(text.plain) for _, text in fields) + cell_len(sep) * max(0, len(fields) - 1)


def bar(fraction: float, width: int) -> Text:
    """A progress bar of ``width`` cells, ``fraction`` of it filled."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return Text.assemble(("━" * filled, "bold green"), ("━" * (width - filled), "grey37"))


class RunHeader(Widget):
    """Status, phase, progress and resources of the session a ``SessionFeed`` follows."""

    DEFAULT_CSS = """
    RunHeader {
        height: 2;
        padding: 0 1;
    }
    """

    def __init__(self, feed: SessionFeed, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.feed = feed
        self.step = 0
        self.total: int | None = None
        self.last: StepEnded | None = None
        self.activity: PhaseChanged | None = None  # what the job is doing, when not plain training
        self.pending: PhaseChanged | None = None  # a pause or stop asked for, not yet done
        self.resources: ResourcesSampled | None = None
        self.group: tuple[int, int] | None = None  # (alive, total) of a multi-worker run
        self.resuming = False  # a resumed engine is starting: its step is known at its job_started
        self.resume_step: int | None = None
        feed.handle(EngineStarted, self.engine_started)
        feed.handle(JobStarted, self.job_started)
        feed.handle_steps(self.steps_ended)
        feed.handle(PhaseChanged, self.phase_changed)
        feed.handle(EvaluationEnded, self.evaluation_ended)
        feed.handle(CheckpointSaved, self.checkpoint_saved)
        feed.handle(Paused, self.paused)
        feed.handle(Unpaused, self.unpaused)
        feed.handle(JobFinished, self.job_ended)
        feed.handle(JobFailed, self.job_ended)
        feed.handle(JobStopped, self.job_ended)
        # Every sample, in order with the rest (one each 5 s): the journal's history reaches the
        # console whole, and the strip shows the newest.
        feed.handle(ResourcesSampled, self.resources_sampled)
        feed.handle(WorkersReported, self.workers_reported)
        feed.on_change(self.changed)

    # ---------------------------------------------------------------- events in

    def changed(self) -> None:
        self.refresh()

    def engine_started(self, started: EngineStarted, _env: Envelope) -> None:
        # A new engine: the last one's loss, throughput and ETA no longer hold, and a resumed one
        # goes back to a checkpoint whose step its job_started says (after loading the model).
        self.last = None
        self.activity = self.pending = None
        self.resuming = started.resumed
        # The checkpoint's step, at once (from 1.4's engine_started; confirmed by job_started).
        self.resume_step = started.step if started.resumed else None
        # A new group starts whole; its chief's workers_reported says otherwise (since 1.5).
        self.group = (started.workers, started.workers) if started.workers > 1 else None

    def workers_reported(self, report: WorkersReported, _env: Envelope) -> None:
        # A worker that ended cleanly with the group counts as whole: only a lost one is a warning.
        alive = sum(1 for worker in report.workers if worker.alive or worker.note == WORKER_FINISHED)
        self.group = (alive, report.total) if report.total > 1 or alive < report.total else None

    def job_started(self, job: JobStarted, _env: Envelope) -> None:
        # A resume starts at its checkpoint's step: the old run's step, loss and ETA no longer hold.
        self.resuming = False
        self.step = job.step
        self.total = job.total_steps or self.total
        self.last = None
        self.activity = self.pending = None

    def steps_ended(self, run: StepRun) -> None:
        last = run.last
        self.last = last
        self.step = last.step
        self.total = run.total_steps or self.total
        self.activity = None

    def phase_changed(self, phase: PhaseChanged, _env: Envelope) -> None:
        if phase.step:
            self.step = phase.step
        if phase.phase in PENDING_PHASES:
            if not phase.detail and self.activity is not None and self.activity.phase == "evaluating":
                phase = phase.model_copy(update={"detail": "after the evaluation"})
            self.pending = phase
        elif phase.phase == "training":
            self.activity = None
        else:
            self.activity = phase

    def evaluation_ended(self, _evaluation: EvaluationEnded, _env: Envelope) -> None:
        if self.activity is not None and self.activity.phase == "evaluating":
            self.activity = None

    def checkpoint_saved(self, _saved: CheckpointSaved, _env: Envelope) -> None:
        if self.activity is not None and self.activity.phase == "checkpointing":
            self.activity = None

    def paused(self, paused: Paused, _env: Envelope) -> None:
        self.step = paused.step
        self.activity = self.pending = None

    def unpaused(self, _unpaused: Unpaused, _env: Envelope) -> None:
        self.pending = None

    def job_ended(self, ended: JobFinished | JobFailed | JobStopped, _env: Envelope) -> None:
        self.step = ended.step
        self.activity = self.pending = None

    def resources_sampled(self, sample: ResourcesSampled, _env: Envelope) -> None:
        if self.resources is None:
            self.styles.height = 3
        self.resources = sample

    # ---------------------------------------------------------------- lines

    @property
    def status(self) -> str:
        return self.feed.status

    def summary_fields(self) -> list[Field]:
        status = self.status
        active = status in ACTIVE
        fields: list[Field] = []
        pending = self.pending if active else None
        pending_text = phase_text(pending.phase, detail=pending.detail) if pending else ""
        if pending_text.startswith(status):
            fields.append((RANK["status"], status_text(pending_text, "bold")))
        else:
            fields.append((RANK["status"], status_text(status, "bold")))
            if pending_text:
                fields.append((RANK["pending"], Text(pending_text, style="yellow")))
        if self.group is not None:
            alive, total = self.group
            whole = alive >= total
            style = "" if whole else "bold yellow"
            fields.append((RANK["workers"] if whole else 0, Text(f"workers {alive}/{total}", style=style)))
        if active and self.activity is not None:
            a = self.activity
            fields.append(
                (RANK["activity"], Text(phase_text(a.phase, a.done, a.total, a.unit, a.detail), "cyan"))
            )
        last = self.last
        if last is not None:
            if last.loss is not None:
                fields.append((RANK["loss"], Text(f"loss {last.loss:.4f}")))
            if last.learning_rate is not None:
                fields.append((RANK["lr"], Text(f"lr {sci(last.learning_rate)}")))
            if last.examples_per_s:
                fields.append((RANK["ex/s"], Text(f"{last.examples_per_s:.1f} ex/s")))
            if last.tokens_per_s:
                fields.append((RANK["tok/s"], Text(f"{last.tokens_per_s:.0f} tok/s")))
        fields.append((RANK["events"], Text(f"events {self.feed.events_seen}", style="dim")))
        return fields

    def progress_fields(self) -> list[Field]:
        total = self.total
        of = f"/{total}" if total else ""
        if self.resuming and self.status in ACTIVE:
            step = "?" if self.resume_step is None else str(self.resume_step)
            return [
                (RANK["step"], Text(f"step {step}{of}")),
                (RANK["percent"], Text("resuming", style="cyan")),
            ]
        fields: list[Field] = [(RANK["step"], Text(f"step {self.step}{of}"))]
        if total:
            fields.append((RANK["percent"], Text(f"{100 * min(self.step, total) // total}%")))
        eta = self.last.eta_s if self.last is not None else None
        if eta is not None and self.status == "running":
            fields.append((RANK["eta"], Text(f"ETA {duration(eta)}")))
        return fields

    def progress_line(self, width: int) -> Text:
        right = fit(self.progress_fields(), width)
        room = width - cell_len(right.plain) - len(SEP)
        if room < MIN_BAR:
            return right
        fraction = self.step / self.total if self.total and not self.resuming else 0.0
        return Text.assemble(bar(fraction, room), SEP, right)

    def resource_fields(self) -> list[Field]:
        r = self.resources
        if r is None:
            return []
        fields: list[Field] = []
        for gpu in r.gpus:
            parts = [f"gpu{gpu.index}"]
            if gpu.utilization is not None:
                parts.append(f"{gpu.utilization:.0f}%")
            if gpu.memory_used is not None:
                parts.append(
                    size(gpu.memory_used) + (f"/{size(gpu.memory_total)}" if gpu.memory_total else "")
                )
            fields.append((RANK["gpu"], Text(" ".join(parts), style="magenta")))
            if gpu.temperature_c is not None:
                fields.append((RANK["gpu-temp"], Text(f"{gpu.temperature_c:.0f}°C", style="magenta")))
            if gpu.power_w is not None:
                fields.append((RANK["gpu-power"], Text(f"{gpu.power_w:.0f}W", style="magenta")))
        if r.cpu_percent is not None:
            fields.append((RANK["cpu"], Text(f"cpu {r.cpu_percent:.0f}%")))
        if r.rss is not None:
            fields.append((RANK["rss"], Text(f"rss {size(r.rss)}")))
        if r.host_memory_used is not None:
            host = size(r.host_memory_used) + (f"/{size(r.host_memory_total)}" if r.host_memory_total else "")
            fields.append((RANK["host"], Text(f"host {host}")))
        device = " ".join(p for p in (r.device, r.precision) if p)
        if device:
            fields.append((RANK["device"], Text(device, style="dim")))
        if self.status not in ACTIVE:
            # The engine is gone: these are its last figures, not what the machine does now.
            fields = [(RANK["last"], Text("last sample", style="dim italic"))] + [
                (rank, Text(text.plain, style="dim")) for rank, text in fields
            ]
        return fields

    def lines(self, width: int) -> list[Text]:
        """The header's lines at ``width`` cells, each fitting whole."""
        lines = [fit(self.summary_fields(), width), self.progress_line(width)]
        if self.resources is not None:
            lines.append(fit(self.resource_fields(), width))
        return lines

    def render(self) -> Text:
        text = Text("\n").join(self.lines(max(1, self.content_size.width)))
        text.no_wrap = True
        return text
