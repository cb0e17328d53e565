"""The jobs an engine can host, by kind; each is imported only when a session runs it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.jobs.base import JobContext

# kind -> "module:function". The function takes a JobContext and returns a summary dict.
JOBS: dict[str, str] = {
    "selftest": "engine.jobs.selftest:run",
    "check": "engine.data.job:run_check",
    "prepare": "engine.data.job:run_prepare",
    "train": "engine.train.job:run",
    "predict": "engine.predict.job:run",
}


# kind -> "module:function" that validates a session's config without heavy imports (raises ValueError),
# so that 'ftc train' refuses a bad configuration before it starts an engine.
VALIDATORS: dict[str, str] = {
    "train": "engine.train.config:parse_config",
}


def validate(kind: str, config: dict[str, Any]) -> None:
    """Check a configuration for its job kind; ValueError with a one-line reason otherwise."""
    if kind not in JOBS:
        raise ValueError(f"[job] kind: unknown job kind {kind!r}; expected one of {', '.join(sorted(JOBS))}")
    if kind in VALIDATORS:
        module, func = VALIDATORS[kind].split(":")
        getattr(importlib.import_module(module), func)(config)


def load(kind: str) -> Callable[[JobContext], dict[str, Any]]:
    """The run function of a job kind; ValueError naming the known kinds otherwise."""
    if kind not in JOBS:
        raise ValueError(f"unknown job kind {kind!r}; expected one of {', '.join(sorted(JOBS))}")
    module, func = JOBS[kind].split(":")
    fn: Callable[[JobContext], dict[str, Any]] = getattr(importlib.import_module(module), func)
    return fn
