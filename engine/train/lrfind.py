"""The "lr_find" job: a learning-rate range test (Smith 2015; fast.ai's lr_find) on a run's config.

From the run's [model], [data] and [train] sections it trains the pretrained model for a short
sweep whose learning rate grows exponentially from ``[lr_find] start_lr`` to ``end_lr`` over
``steps`` optimizer steps (1e-7 to 1 over 100 by default), with the run's batch size, max_length,
freezing, differential rates, precision and class weights. Each step's loss is smoothed (an
exponentially weighted average with bias correction, ``beta`` 0.98) and published as a StepEnded
(learning_rate, loss = the smoothed loss), so a console draws loss against LR as it goes. The
sweep stops early when the smoothed loss diverges: more than ``diverge`` (4) times the best so
far, or not finite.

The suggestion (JobSummary.suggested_learning_rate) is the rate at the steepest descent of the
smoothed loss against log10(LR), looked for before the loss's minimum; when the minimum comes at
one of the first points (no descent to measure) it is the minimum's rate / 10. Both rules are
fast.ai's; the steepest descent is the one that does not depend on how far the sweep went past
the minimum.

It writes no checkpoint and no model: the weights after a sweep are thrown away, and no run's
checkpoints are opened. A crashed or stopped range test is not resumed: ``ftc resume`` (or a new
``ftc lr-find``) runs the whole sweep again, which takes about as long as ``steps`` training steps.

The helpers at the top (rates, smoothing, suggestion) import only numpy, so the console can use
them; the sweep imports TensorFlow when it runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import protocol
from engine.jobs.base import JobContext

if TYPE_CHECKING:
    from engine.train.loop import Trainer

JOB = "lr_find"


def sweep_rates(start_lr: float, end_lr: float, steps: int) -> list[float]:
    """The sweep's learning rates: ``steps`` of them, exponentially from start_lr to end_lr."""
    if steps == 1:
        return [start_lr]
    ratio = end_lr / start_lr
    return [start_lr * ratio ** (i / (steps - 1)) for i in range(steps)]


class Smoother:
    """An exponentially weighted average of the losses, bias-corrected as Adam's moments are."""

    def __init__(self, beta: float) -> None:
        self.beta = beta
        self.average = 0.0
        self.count = 0

    def add(self, loss: float) -> float:
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        return self.average / (1 - self.beta**self.count)


def suggest(rates: Sequence[float], losses: Sequence[float]) -> float | None:
    """The suggested rate: the steepest descent of the (smoothed) loss against log10(LR), before its minimum.

    With the minimum among the first three points there is no descent to measure: the minimum's
    rate / 10. None without any finite point.
    """
    pairs = [(r, x) for r, x in zip(rates, losses, strict=False) if r > 0 and math.isfinite(x)]
    if not pairs:
        return None
    lr = np.array([r for r, _ in pairs])
    loss = np.array([x for _, x in pairs])
    lowest = int(np.argmin(loss))
    if lowest < 2:
        return float(lr[lowest] / 10)
    # Central differences over the whole curve (fast.ai's), so the slope at a point looks both ways and
    # the last drop into the minimum does not make the minimum itself the steepest point.
    slopes = np.gradient(loss, np.log10(lr)) if len(loss) > 1 else np.zeros(1)
    return float(lr[int(np.argmin(slopes[:lowest]))])


def diverged(smoothed: float, best: float, factor: float) -> bool:
    """Whether the sweep should stop: the smoothed loss is not finite or over ``factor`` times the best."""
    return not math.isfinite(smoothed) or smoothed > factor * best


def run(ctx: JobContext) -> dict[str, Any]:
    """The range test as the session's config says; returns the summary with the suggested rate."""
    from engine.jobs.configs import LrFindSection, lr_find_section
    from engine.train.config import parse_config
    from engine.train.job import data_dir

    cfg = parse_config(ctx.config)
    params: LrFindSection = lr_find_section(ctx.config)
    if ctx.resume:
        ctx.emit(
            protocol.LogRecorded(text="a learning-rate range test is not resumed: the sweep starts over")
        )
    folder = data_dir(cfg, ctx)
    if cfg.data.source is not None and not (folder / "manifest.json").exists():
        from engine.data.job import run_prepare  # a raw file: prepared into this session's data/

        if cfg.data.tokenizer is None:
            ctx.config["data"]["tokenizer"] = cfg.model.source
        run_prepare(ctx)
        ctx.update_state(step=0)
    from engine.train import gate

    ctx.phases.enter("testing_data")
    gate.check(folder, cfg.data.on_fail, ctx.emit, in_config=cfg.data.source is not None)
    ctx.phases.enter("loading_model")
    from engine.train.callbacks import CallbackList
    from engine.train.loop import Trainer
    from engine.train.reporting import Events

    class SweepTrainer(Trainer):
        """The Trainer's model, data plan and Stepper; of its callbacks only the events, for its log lines.

        No checkpointing, TensorBoard, model export or state callbacks: the sweep calls none of the
        Events hooks but ``on_log`` (through ``Trainer.log``), and publishes its steps itself.
        """

        def _callbacks(self) -> CallbackList:
            return CallbackList([Events(self.ctx.emit)])

    trainer = SweepTrainer(cfg, folder, ctx)
    trainer._build()
    return _sweep(trainer, ctx, params)


def _sweep(trainer: Trainer, ctx: JobContext, params: Any) -> dict[str, Any]:
    rates = sweep_rates(params.start_lr, params.end_lr, params.steps)
    total = len(rates)
    ctx.update_state(step=0, total_steps=total)
    ctx.emit(protocol.JobStarted(job=JOB, step=0, total_steps=total))
    ctx.emit(
        protocol.LogRecorded(
            text=f"learning-rate range test: {total} steps from {rates[0]:.2g} to {rates[-1]:.2g}, "
            f"batch size {trainer.t.batch_size}; nothing is saved"
        )
    )
    ctx.phases.enter("compiling", step=0)
    smoother = Smoother(params.beta)
    best = math.inf
    seen_rates: list[float] = []
    smoothed_losses: list[float] = []
    stopped_early = False
    step = 0
    epoch = 0
    started = time.monotonic()
    while step < total and not stopped_early:
        plan = trainer._plan(epoch)
        trainer.state.batch_index = 0
        for group in trainer._groups(plan):
            trainer._apply_freeze()
            lr = rates[step]
            trainer.stepper.set_learning_rate(lr)
            out = trainer.stepper.step([b.tensors() for b in group])
            step += 1
            trainer.state.step = step
            smoothed = smoother.add(out["loss"])
            if step == 1:
                ctx.phases.enter("training", step=step)
                started = time.monotonic()
            rate = (step - 1) / (time.monotonic() - started) if step > 1 else None
            ctx.update_state(step=step)
            if math.isfinite(smoothed):
                seen_rates.append(lr)
                smoothed_losses.append(smoothed)
            ctx.emit(
                protocol.StepEnded(
                    step=step,
                    total_steps=total,
                    loss=smoothed if math.isfinite(smoothed) else None,
                    learning_rate=lr,
                    grad_norm=out["grad_norm"] if math.isfinite(out["grad_norm"]) else None,
                    eta_s=(total - step) / rate if rate else None,
                )
            )
            if step > 1 and diverged(smoothed, best, params.diverge):
                stopped_early = True
                ctx.emit(
                    protocol.LogRecorded(
                        text=f"the loss diverged at LR {lr:.3g} (step {step}: {smoothed:.4g}, "
                        f"over {params.diverge:g} x the best {best:.4g}); the sweep ends here"
                    )
                )
                break
            best = min(best, smoothed)
            ctx.boundary(step)  # a pause or stop lands between steps; nothing to save
            if step >= total:
                break
        epoch += 1
    suggested = suggest(seen_rates, smoothed_losses)
    if suggested is not None:
        lowest = seen_rates[int(np.argmin(smoothed_losses))]
        ctx.emit(
            protocol.LogRecorded(
                text=f"suggested learning rate {suggested:.3g} (steepest descent of the smoothed loss); "
                f"the lowest loss was at {lowest:.3g}"
            )
        )
    return {"steps": step, "stopped_early": stopped_early, "suggested_learning_rate": suggested}
