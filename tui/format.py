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
            parts.append(f"lr {_num(body['learning_rate'], '.3g')}")
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
        return f"learning-rate schedule to step {steps[-1]}: peak {max(rates):.3g}, last {rates[-1]:.3g}"
    if kind == "checkpoint_saved":
        return f"checkpoint at step {body['step']} ({body.get('reason')}) {body.get('path')}"
    if kind == "progress_reported":
        total = body.get("total")
        done = f"{body['done']:,}" + (f"/{total:,}" if total else "")
        return f"{body['stage']}: {done} {body.get('unit', '')}".rstrip()
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
