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
    """Train (or resume training) as the session's config.toml says; returns a summary."""
    cfg = parse_config(ctx.config)
    folder = data_dir(cfg, ctx)
    if cfg.data.source is not None and not (folder / "manifest.json").exists():
        # A raw file: prepare it into the session first (again after a crash: no manifest, no data).
        from engine.data.job import run_prepare

        if cfg.data.tokenizer is None:
            ctx.config["data"]["tokenizer"] = cfg.model.source
        run_prepare(ctx)
    from engine.train.loop import Trainer  # tensorflow is imported only once the config is known good

    trainer = Trainer(cfg, folder, ctx)
    return trainer.run(resume=ctx.resume)
