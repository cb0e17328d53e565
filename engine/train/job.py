"""The engine's "train" job: validate the session config and run the training loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.jobs.base import JobContext
from engine.train.config import TrainConfig, parse_config


def data_dir(cfg: TrainConfig, ctx: JobContext) -> Path:
    """[data] dir if given (relative: to the working dir, else to the session), or the session's data/."""
    if cfg.data.dir is None:
        return ctx.paths.data
    path = Path(cfg.data.dir).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve()
    return (ctx.paths.root / path).resolve()


def run(ctx: JobContext) -> dict[str, Any]:
    """Train (or resume training) as the session's config.toml says; returns a summary.

    Before step 1 the data tests of the preparation are a gate (engine.train.gate): each one that
    warns or fails is shown, and a FAIL stops the run unless ``[data] on_fail = "warn"``. A resume
    from a checkpoint passed that gate when it started, and does not show it again.
    """
    from engine.cache import enable_xla_cache

    enable_xla_cache()  # XLA reads its flags once, before TensorFlow compiles anything with it
    cfg = parse_config(ctx.config)
    folder = data_dir(cfg, ctx)
    if cfg.data.source is not None and not (folder / "manifest.json").exists():
        # A raw file: prepare it into the session first (again after a crash: no manifest, no data).
        from engine.data.job import run_prepare

        if cfg.data.tokenizer is None:
            ctx.config["data"]["tokenizer"] = cfg.model.source
        run_prepare(ctx)
        ctx.update_state(step=0)  # preparation counted its chunks as steps; training has made none yet
    if not _resuming_from_checkpoint(ctx):
        from engine.train import gate

        ctx.phases.enter("testing_data")
        gate.check(folder, cfg.data.on_fail, ctx.emit, in_config=cfg.data.source is not None)
    ctx.phases.enter("loading_model")  # importing TensorFlow, then the weights and the tokenizer
    from engine.train.loop import Trainer  # tensorflow is imported only once the config is known good
    from engine.train.workers import chief_group

    with chief_group(ctx) as group:  # several workers: the others start here (engine.train.workers)
        trainer = Trainer(cfg, folder, ctx, group=group)
        return trainer.run(resume=ctx.resume)


def _resuming_from_checkpoint(ctx: JobContext) -> bool:
    from engine.train import checkpoints

    return ctx.resume and bool(checkpoints.complete(ctx.paths.checkpoints))
