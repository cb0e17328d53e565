"""Hand-written training sessions to compare: fixed events, times and configs, and what each should show.

``finished_run`` ends normally; ``crashed_run`` crashed after step 12, was resumed from its step-10
checkpoint and crashed again at 18 (its first engine's evaluation at step 12 is superseded);
``failed_run`` failed at step 7 before any evaluation. Each returns what the compare screen must
show for it, worked out by hand from the events below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import protocol
from engine.config import dump_toml
from engine.protocol import (
    EngineStarted,
    EngineStopped,
    EvaluationEnded,
    JobFailed,
    JobFinished,
    JobStarted,
    StepEnded,
)
from engine.session import SessionPaths, write_state
from tests.tui.journals import ENGINE_HOST, T0
from tui.format import duration


@dataclass(frozen=True)
class Expected:
    session: str
    status: str
    steps: str
    best: str
    time: str
    throughput: str


def _session(
    root: Path,
    name: str,
    config: dict[str, Any],
    events: list[tuple[float, protocol._Body]],
    **state: Any,
) -> SessionPaths:
    paths = SessionPaths(root / name)
    paths.create()
    paths.config.write_text(dump_toml(config), encoding="utf-8")
    lines = []
    for seq, (ts, body) in enumerate(events, start=1):
        env = protocol.make(body, paths.id, seq=seq).model_copy(update={"ts": ts, "id": f"{seq:032x}"})
        lines.append(protocol.encode(env) + b"\n")
    paths.events.write_bytes(b"".join(lines))
    write_state(paths, job="train", name=name, hostname=ENGINE_HOST, created=T0, started=T0, **state)
    return paths


def _steps(first: int, last: int, total: int, rate: Any) -> list[protocol._Body]:
    return [
        StepEnded(
            step=s,
            total_steps=total,
            loss=round(0.9 * 0.92**s + 0.03 * (s % 3), 4),
            learning_rate=5e-5,
            examples_per_s=rate(s),
        )
        for s in range(first, last + 1)
    ]


def _timed(start: float, every: float, bodies: list[protocol._Body]) -> list[tuple[float, protocol._Body]]:
    return [(start + every * i, body) for i, body in enumerate(bodies)]


def finished_run(root: Path, name: str = "run-a") -> Expected:
    """30 steps, validated at 10, 20 and 30 (macro F1 best at 20), 3 s between events."""
    config = {
        "job": {"kind": "train"},
        "model": {"source": "bert-base-uncased"},
        "data": {"dir": "data"},
        "train": {"learning_rate": 5e-5, "batch_size": 32, "max_steps": 30},  # the defaults, written out
    }
    f1 = {10: 0.7012, 20: 0.8231, 30: 0.8105}
    bodies: list[protocol._Body] = [EngineStarted(pid=1, hostname=ENGINE_HOST, job="train")]
    bodies.append(JobStarted(job="train", step=0, total_steps=30))
    for end in (10, 20, 30):
        bodies += _steps(end - 9, end, 30, lambda s: 60.0 + s % 4)
        metrics = {"loss": 1 - f1[end], "accuracy": f1[end] + 0.02, "macro_f1": f1[end]}
        bodies.append(EvaluationEnded(step=end, metrics=metrics))
    bodies += [JobFinished(step=30), EngineStopped(status="finished")]
    _session(root, name, config, _timed(T0, 3.0, bodies), status="finished", step=30, total_steps=30)
    seconds = 3.0 * (len(bodies) - 1)
    mean = sum(60.0 + s % 4 for s in range(1, 31)) / 30
    return Expected(name, "finished", "30/30", "macro_f1 0.8231 @20", duration(seconds), f"{mean:.1f}")


def crashed_run(root: Path, name: str = "run-b") -> Expected:
    """40 steps planned; crashed at 12, resumed from 10, crashed at 18. Early stopping watches accuracy."""
    config = {
        "job": {"kind": "train"},
        "model": {"source": "distilbert-base-uncased"},
        "data": {"dir": "data"},
        "train": {"learning_rate": 1e-4, "batch_size": 16, "early_stopping": {"metric": "accuracy"}},
    }
    first: list[protocol._Body] = [
        EngineStarted(pid=1, hostname=ENGINE_HOST, job="train"),
        JobStarted(job="train", step=0, total_steps=40),
        *_steps(1, 6, 40, lambda s: 40.0),
        EvaluationEnded(step=6, metrics={"accuracy": 0.61, "macro_f1": 0.55}),
        *_steps(7, 12, 40, lambda s: 40.0),
        # Superseded: the resumed engine goes back to step 10 and evaluates step 12 again.
        EvaluationEnded(step=12, metrics={"accuracy": 0.95, "macro_f1": 0.93}),
    ]
    second: list[protocol._Body] = [
        EngineStarted(pid=2, hostname=ENGINE_HOST, job="train", resumed=True),
        JobStarted(job="train", step=10, total_steps=40),
        *_steps(11, 12, 40, lambda s: 50.0),
        EvaluationEnded(step=12, metrics={"accuracy": 0.85, "macro_f1": 0.8}),
        *_steps(13, 18, 40, lambda s: 50.0),
        EvaluationEnded(step=18, metrics={"accuracy": 0.88, "macro_f1": 0.86}),
    ]
    resumed_at = T0 + 2.0 * len(first) + 1000.0  # a long gap while nothing ran: not counted
    events = _timed(T0, 2.0, first) + _timed(resumed_at, 2.0, second)
    # A live status with a heartbeat long stale: crashed, whatever the clock says.
    _session(root, name, config, events, status="running", step=18, total_steps=40, heartbeat=T0)
    seconds = 2.0 * (len(first) - 1) + 2.0 * (len(second) - 1)
    mean = (10 * 40.0 + 8 * 50.0) / 18  # steps 11 and 12 counted once, at the resumed engine's rate
    return Expected(name, "crashed", "18/40", "accuracy 0.8800 @18", duration(seconds), f"{mean:.1f}")


def failed_run(root: Path, name: str = "run-c") -> Expected:
    """Failed at step 7 of 30, before its first evaluation; cosine schedule with warmup."""
    config = {
        "job": {"kind": "train"},
        "model": {"source": "bert-base-uncased"},
        "data": {"dir": "data"},
        "train": {"max_steps": 30, "schedule": "cosine", "warmup_ratio": 0.1},
    }
    bodies: list[protocol._Body] = [
        EngineStarted(pid=1, hostname=ENGINE_HOST, job="train"),
        JobStarted(job="train", step=0, total_steps=30),
        *_steps(1, 7, 30, lambda s: 55.0),
        JobFailed(step=7, error_name="DataError", error_text="data/train-00001.parquet: row 9 has no label"),
        EngineStopped(status="failed", reason="DataError"),
    ]
    _session(root, name, config, _timed(T0, 5.0, bodies), status="failed", step=7, total_steps=30)
    seconds = 5.0 * (len(bodies) - 1)
    return Expected(name, "failed", "7/30", "-", duration(seconds), "55.0")
