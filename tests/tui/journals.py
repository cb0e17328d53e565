"""Hand-written session folders for console tests: fixed events, fixed times, so every frame is the same.

``session_in_phase(root, phase)`` writes a training session's config, state and journal as the
engine would have left them in that phase (loading, preparing, training, evaluating, pausing,
paused, stopped, failed). A live phase's state says its engine runs on another host with a fresh
heartbeat, so the console shows it running with no process here to signal (and no endpoint, so
nothing connects).
"""

from __future__ import annotations

import time
from pathlib import Path

from engine import protocol
from engine.config import dump_toml
from engine.protocol import (
    CheckpointSaved,
    EngineStarted,
    EngineStopped,
    EvaluationEnded,
    GpuSample,
    JobFailed,
    JobStarted,
    JobStopped,
    Paused,
    PhaseChanged,
    ResourcesSampled,
    SchedulePlanned,
    StepEnded,
)
from engine.session import SessionPaths, write_state

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: every event's time is T0 + its seq
TOTAL = 40
PHASES = ("loading", "preparing", "training", "evaluating", "pausing", "paused", "stopped", "failed")
LIVE = {"loading", "preparing", "training", "evaluating", "pausing"}

ENGINE_HOST = "gpu-box"
GIB = 1 << 30
RESOURCES = ResourcesSampled(
    cpu_percent=187.0,
    rss=int(2.1 * GIB),
    host_memory_used=31 * GIB,
    host_memory_total=125 * GIB,
    cpu_count=16,
    gpus=[
        GpuSample(
            index=0,
            name="NVIDIA H200",
            utilization=87.0,
            memory_used=61 * GIB,
            memory_total=141 * GIB,
            temperature_c=64.0,
            power_w=412.0,
        )
    ],
    device="GPU:0",
    precision="mixed_bfloat16",
)


def _lr(step: int) -> float:
    return 5e-5 * min(1.0, step / 4) * (1 - step / TOTAL) + 1e-6


def _steps(last: int) -> list[protocol._Body]:
    return [
        StepEnded(
            step=s,
            total_steps=TOTAL,
            epoch=s / 20,
            loss=round(0.7 * 0.93**s + 0.05 * (s % 3), 4),
            learning_rate=_lr(s),
            examples_per_s=61.5,
            tokens_per_s=7872.0,
            eta_s=float((TOTAL - s) * 3 + 24),
        )
        for s in range(1, last + 1)
    ]


def events_in_phase(phase: str) -> list[protocol._Body]:
    """The events a training run has written by the time it is in ``phase``."""
    events: list[protocol._Body] = [
        EngineStarted(pid=4242, hostname=ENGINE_HOST, job="train"),
        JobStarted(job="train", step=0, total_steps=TOTAL),
        PhaseChanged(phase="loading_model", detail="bert-base-uncased"),
        RESOURCES,
    ]
    if phase == "loading":
        return events
    events.append(PhaseChanged(phase="preparing_data", done=12_000, total=38_158, unit="rows", seconds=41.0))
    if phase == "preparing":
        return events
    events.append(PhaseChanged(phase="compiling", seconds=95.0))
    events.append(
        SchedulePlanned(steps=list(range(1, TOTAL + 1)), learning_rates=[_lr(s) for s in range(1, TOTAL + 1)])
    )
    events.append(PhaseChanged(phase="training", step=0, seconds=12.0))
    events += _steps(24)
    if phase == "training":
        return events
    events.append(PhaseChanged(phase="evaluating", step=24, done=3, total=12, unit="batches"))
    if phase == "evaluating":
        return events
    if phase == "pausing":
        return [*events, PhaseChanged(phase="pausing", step=24)]
    metrics = {"loss": 0.412, "accuracy": 0.861, "macro_f1": 0.853}
    events.append(EvaluationEnded(step=24, metrics=metrics))
    if phase == "paused":
        return [*events, PhaseChanged(phase="pausing", step=24), Paused(step=24)]
    if phase == "stopped":
        return [
            *events,
            PhaseChanged(phase="stopping", step=24),
            CheckpointSaved(step=24, path="checkpoints/step-000024", reason="stop"),
            JobStopped(step=24, reason="stop requested"),
            EngineStopped(status="stopped", reason="stop requested"),
        ]
    if phase == "failed":
        return [
            *events,
            *_steps(27)[24:],
            JobFailed(
                step=27, error_name="DataError", error_text="data/train-00002.parquet: row 812 has no label"
            ),
            EngineStopped(status="failed", reason="DataError"),
        ]
    raise ValueError(f"no phase {phase!r}; one of {', '.join(PHASES)}")


def write_journal(paths: SessionPaths, events: list[protocol._Body]) -> None:
    """The events as the engine's journal, numbered from 1, at times T0 + seq and with fixed ids."""
    lines = []
    for seq, body in enumerate(events, start=1):
        env = protocol.make(body, paths.id, seq=seq).model_copy(update={"ts": T0 + seq, "id": f"{seq:032x}"})
        lines.append(protocol.encode(env) + b"\n")
    paths.events.write_bytes(b"".join(lines))


def session_in_phase(root: Path, phase: str, name: str | None = None) -> SessionPaths:
    """A training session folder ``root/<name>`` (``run-<phase>``) as the engine left it in ``phase``."""
    paths = SessionPaths(root / (name or f"run-{phase}"))
    paths.create()
    config = {"job": {"kind": "train"}, "model": {"source": "bert-base-uncased"}, "data": {"dir": "data"}}
    paths.config.write_text(dump_toml(config), encoding="utf-8")
    events = events_in_phase(phase)
    write_journal(paths, events)
    status = (
        "running" if phase in LIVE else {"paused": "paused", "stopped": "stopped", "failed": "failed"}[phase]
    )
    last_step = max((e.step for e in events if isinstance(e, StepEnded)), default=0)
    write_state(
        paths,
        status=status,
        job="train",
        name=name or f"run-{phase}",
        step=last_step,
        total_steps=TOTAL,
        hostname=ENGINE_HOST,
        created=T0,
        started=T0,
        heartbeat=time.time(),  # not shown; keeps a live status from reading as crashed
    )
    return paths
