"""A small test-only job that behaves like training without TensorFlow.

It counts steps with a short sleep, emits ``step_ended`` with a falling synthetic loss,
checkpoints its position to ``checkpoints/ckpt-<step>/selftest.json`` (with a COMPLETE marker, as
training's checkpoints have), resumes from the
latest (or a chosen) one, and can be told to fail at a step. The engine tests use it to
prove the engine's hosting (start, progress, pause, checkpoint, stop, fail) without ML code.
It reports its phases as training does: loading_model, training and, with ``eval_every``,
evaluating (``eval_batches`` batches over ``eval_s`` seconds, then an ``evaluation_ended``).

Config: ``[selftest] steps = 100, step_s = 0.05, fail_at = 0, checkpoint_every = 0, eval_every = 0,
eval_s = 1.0, eval_batches = 10``.
``FTC_SELFTEST_START_S`` makes its start-up (before the first step) last that many seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from typing import Any

from engine import protocol
from engine.fsio import atomic_write_bytes, atomic_write_json
from engine.jobs.base import JobContext


def run(ctx: JobContext) -> dict[str, Any]:
    opts = ctx.config.get("selftest", {})
    steps = int(opts.get("steps", 100))
    step_s = float(opts.get("step_s", 0.05))
    fail_at = int(opts.get("fail_at", 0))
    every = int(opts.get("checkpoint_every", 0))
    eval_every = int(opts.get("eval_every", 0))
    eval_s = float(opts.get("eval_s", 1.0))
    eval_batches = int(opts.get("eval_batches", 10))
    ctx.phases.enter("loading_model")
    # A slow start-up (as importing TensorFlow and loading a model are), before the first step; an
    # environment variable, as the tests of stop signals set it (the [selftest] keys are checked).
    start_until = time.monotonic() + float(os.environ.get("FTC_SELFTEST_START_S") or 0)
    while time.monotonic() < start_until:
        time.sleep(0.02)
    step = 0
    if ctx.resume:
        saved = sorted(ctx.paths.checkpoints.glob("ckpt-*/COMPLETE"), key=lambda p: int(p.parent.name[5:]))
        if ctx.resume_from:
            name = f"ckpt-{int(ctx.resume_from)}" if ctx.resume_from.isdigit() else ctx.resume_from
            saved = [p for p in saved if p.parent.name == name]
            if not saved:
                raise ValueError(f"no checkpoint {ctx.resume_from!r} in {ctx.paths.checkpoints}")
        if saved:
            step = int(json.loads((saved[-1].parent / "selftest.json").read_text())["step"])

    def save(reason: str) -> None:
        # The training checkpoints' layout in small: a COMPLETE marker (with checksums) written last.
        folder = ctx.paths.checkpoints / f"ckpt-{step}"
        folder.mkdir(exist_ok=True)
        data = json.dumps({"step": step}).encode()
        atomic_write_bytes(folder / "selftest.json", data)
        marker = {
            "step": step,
            "time": time.time(),
            "files": ["selftest.json"],
            "sha256": {"selftest.json": hashlib.sha256(data).hexdigest()},
        }
        atomic_write_json(folder / "COMPLETE", marker)
        ctx.emit(protocol.CheckpointSaved(step=step, path=str(folder), reason=reason))

    ctx.update_state(step=step, total_steps=steps)
    ctx.emit(protocol.JobStarted(job="selftest", step=step, total_steps=steps))
    ctx.phases.enter("training", step=step)

    def evaluate() -> None:
        with ctx.phases.during("evaluating", total=eval_batches, done=0, unit="batches"):
            for batch in range(eval_batches):
                time.sleep(eval_s / eval_batches)
                ctx.phases.progress(batch + 1, eval_batches, unit="batches")
        ctx.emit(protocol.EvaluationEnded(step=step, metrics={"accuracy": 1 - math.exp(-step / 20)}))

    started, away = time.monotonic(), ctx.phases.away_s()
    first = step
    while step < steps:
        ctx.boundary(step, save)
        time.sleep(step_s)
        step += 1
        if fail_at and step == fail_at:
            raise RuntimeError(f"selftest failure requested at step {step}")
        # As training's ETA: steps at the rate without evaluations and pauses, plus the evaluations left.
        elapsed = time.monotonic() - started - (ctx.phases.away_s() - away)
        rate = (step - first) / elapsed if elapsed > 0 else None
        evaluations = steps // eval_every - (step - 1) // eval_every if eval_every else 0
        ctx.update_state(step=step)  # the state first: whoever sees the event finds the state there
        ctx.emit(
            protocol.StepEnded(
                step=step,
                total_steps=steps,
                loss=1.0 + math.exp(-step / 20),
                learning_rate=1e-3 * (1 - step / steps),
                examples_per_s=rate,
                eta_s=(steps - step) / rate + evaluations * eval_s if rate else None,
            )
        )
        if eval_every and step % eval_every == 0:
            evaluate()
        if every and step % every == 0:
            save("periodic")
    save("final")
    return {"steps": step}
