"""The engine's ``predict`` job: label an input file into an HDF5 table, pausing/stopping between chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.jobs.base import JobContext
from engine.predict.run import Hooks, Params, run_prediction
from engine.predict.writer import cursor_path


def run(ctx: JobContext) -> dict[str, Any]:
    params = Params.from_config(dict(ctx.config.get("predict", {})), ctx.paths.root.parent)
    # A restarted engine (ftc resume SESSION) continues its output rather than refusing it as existing.
    if ctx.resume and cursor_path(Path(params.output)).exists():
        params.resume, params.overwrite = True, False
    hooks = Hooks(emit=ctx.emit, update_state=ctx.update_state, boundary=lambda step: ctx.boundary(step))
    return run_prediction(params, hooks)
