"""One-line, human-readable renderings of events and figures, shared by the CLI and the TUI."""

from __future__ import annotations

import time
from typing import Any


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "-"
    return duration((now or time.time()) - ts) + " ago"


def sci(value: float | None) -> str:
    """A small figure such as a learning rate, compactly: ``5e-5``, ``2.5e-4``, ``0.3``, not ``0.0000500``."""
    if value is None or value != value:
        return "-"
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return format(value, ".3g")
    mantissa, exponent = format(value, ".2e").split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def size(n: float | None) -> str:
    """Bytes as a short figure: ``812M``, ``1.2G``, ``80G``."""
    if n is None:
        return "-"
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{int(n)}B"


# What each phase is called on screen (PhaseChanged.phase; an unknown one shows as its name).
PHASE_WORDS = {
    "loading_model": "loading model",
    "preparing_data": "preparing data",
    "testing_data": "testing data",
    "compiling": "compiling",
    "training": "training",
    "evaluating": "evaluating",
    "checkpointing": "saving checkpoint",
    "pausing": "pausing",
    "stopping": "stopping",
    "predicting": "predicting",
}
# A request that takes effect later: said as still going on.
PENDING_PHASES = ("pausing", "stopping")


def phase_text(
    phase: str, done: int | None = None, total: int | None = None, unit: str = "", detail: str = ""
) -> str:
    """A phase as a person reads it: ``preparing data 12,000/38,158 rows``, ``pausing after this step…``."""
    parts = [PHASE_WORDS.get(phase, phase.replace("_", " "))]
    if done is not None:
        parts.append(f"{done:,}" + (f"/{total:,}" if total else "") + (f" {unit}" if unit else ""))
    if detail:
        parts.append(detail)
    text = " ".join(parts)
    return text + "…" if phase in PENDING_PHASES else text


def _num(value: Any, fmt: str = ".4g") -> str:
    return "-" if value is None else format(value, fmt)


def event_line(kind: str, body: dict[str, Any]) -> str:
    """A short line for the event log and for plain (non-TTY) output."""
    if kind == "step_ended":
        total = body.get("total_steps")
        parts = [f"step {body['step']}" + (f"/{total}" if total else "")]
        if body.get("loss") is not None:
            parts.append(f"loss {_num(body['loss'])}")
        if body.get("learning_rate") is not None:
            parts.append(f"lr {sci(body['learning_rate'])}")
        if body.get("examples_per_s"):
            parts.append(f"{body['examples_per_s']:.1f} ex/s")
        if body.get("eta_s") is not None:
            parts.append(f"eta {duration(body['eta_s'])}")
        return "  ".join(parts)
    if kind == "evaluation_ended":
        metrics = "  ".join(f"{k} {_num(v)}" for k, v in body.get("metrics", {}).items())
        return f"eval@{body['step']} [{body.get('split', 'validation')}] {metrics}"
    if kind == "schedule_planned":
        rates = body.get("learning_rates") or [0.0]
        steps = body.get("steps") or [0]
        return f"learning-rate schedule to step {steps[-1]}: peak {sci(max(rates))}, last {sci(rates[-1])}"
    if kind == "checkpoint_saved":
        return f"checkpoint at step {body['step']} ({body.get('reason')}) {body.get('path')}"
    if kind == "progress_reported":
        total = body.get("total")
        done = f"{body['done']:,}" + (f"/{total:,}" if total else "")
        return f"{body['stage']}: {done} {body.get('unit', '')}".rstrip()
    if kind == "phase_changed":
        took = body.get("seconds")
        line = phase_text(
            body["phase"], body.get("done"), body.get("total"), body.get("unit", ""), body.get("detail", "")
        )
        if body["phase"] in PENDING_PHASES:
            return f"{line} (asked at step {body.get('step', 0)})"
        return f"{line} at step {body.get('step', 0)}" + (
            f" (previous phase {duration(took)})" if took else ""
        )
    if kind == "resources_sampled":
        # Sampled every few seconds: a screen's event log leaves these out (the header shows the latest).
        cpu = body.get("cpu_percent")
        gpus = body.get("gpus") or []
        line = f"resources: engine cpu {cpu:.0f}%" if cpu is not None else "resources:"
        line += f" rss {size(body.get('rss'))}"
        return line + "".join(f", gpu{g['index']} {_num(g.get('utilization'), '.0f')}%" for g in gpus)
    if kind == "engine_started":
        resumed = " (resumed)" if body.get("resumed") else ""
        return f"engine started{resumed}: pid {body['pid']} on {body['hostname']}, job {body['job']}"
    if kind == "job_started":
        return f"job {body['job']} started at step {body['step']}"
    if kind in ("paused", "unpaused"):
        return f"{kind} at step {body['step']}"
    if kind == "log_recorded":
        return f"{body['level']}: {body['text']}"
    if kind == "job_finished":
        return f"job finished at step {body['step']}"
    if kind == "job_failed":
        return f"job FAILED at step {body['step']}: {body['error_name']}: {body['error_text']}"
    if kind == "job_stopped":
        return f"job stopped at step {body['step']} ({body['reason']})"
    if kind == "engine_stopped":
        return f"engine stopped: {body['status']}" + (f" ({body['reason']})" if body.get("reason") else "")
    return f"{kind} {body}"
