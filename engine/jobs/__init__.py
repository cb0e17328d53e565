"""The jobs an engine can host, by kind; each is imported only when a session runs it."""

from __future__ import annotations

import difflib
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
    "lr_find": "engine.train.lrfind:run",
}


# kind -> the top-level tables its configuration may have; any other is a misspelling or a mistake.
SECTIONS: dict[str, tuple[str, ...]] = {
    "selftest": ("job", "selftest"),
    "check": ("job", "data", "train"),
    "prepare": ("job", "data", "train"),
    "train": ("job", "model", "data", "train"),
    "predict": ("job", "predict"),
    "lr_find": ("job", "model", "data", "train", "lr_find"),
}
JOB_KEYS = ("kind",)

# kind -> "module:function" that checks a session's config without heavy imports (raises a ValueError,
# an FtcError with one line), so that 'ftc train' refuses a bad configuration before it starts an
# engine. A validator may make relative paths absolute in the config it is given (train does).
VALIDATORS: dict[str, str] = {
    "selftest": "engine.jobs.configs:check_selftest",
    "check": "engine.jobs.configs:check_data_job",
    "prepare": "engine.jobs.configs:check_data_job",
    "train": "engine.train.precheck:check_train",
    "predict": "engine.jobs.configs:check_predict",
    "lr_find": "engine.jobs.configs:check_lr_find",
}


def validate(kind: str, config: dict[str, Any]) -> None:
    """Check a configuration for its job kind; ValueError with a one-line reason otherwise.

    Every top-level table and ``[job]`` key is checked here; the kind's validator checks the rest.
    """
    if kind not in JOBS:
        raise ValueError(f"[job] kind: unknown job kind {kind!r}; expected one of {', '.join(sorted(JOBS))}")
    check_sections(kind, config)
    if kind in VALIDATORS:
        module, func = VALIDATORS[kind].split(":")
        getattr(importlib.import_module(module), func)(config)


def check_sections(kind: str, config: dict[str, Any]) -> None:
    """Refuse a top-level table (or setting) the job kind does not read, and unknown [job] keys."""
    known = SECTIONS[kind]
    takes = f"a {kind} job takes " + ", ".join(f"[{s}]" for s in known)
    for name, value in config.items():
        if name in known and not isinstance(value, dict):
            raise ValueError(f"[{name}]: must be a table (a [{name}] section), not {value!r:.40}; {takes}")
        if name in known:
            continue
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"did you mean [{near[0]}]? " if near else ""
        if isinstance(value, dict):
            raise ValueError(f"[{name}]: unknown section; {hint}{takes}")
        raise ValueError(f"{name}: a setting outside any section; {takes}: put it in the one it belongs to")
    for key in config.get("job", {}):
        if key not in JOB_KEYS:
            raise ValueError(
                f"[job] {key}: unknown setting; [job] takes only kind (one of {', '.join(sorted(JOBS))})"
            )


def load(kind: str) -> Callable[[JobContext], dict[str, Any]]:
    """The run function of a job kind; ValueError naming the known kinds otherwise."""
    if kind not in JOBS:
        raise ValueError(f"unknown job kind {kind!r}; expected one of {', '.join(sorted(JOBS))}")
    module, func = JOBS[kind].split(":")
    fn: Callable[[JobContext], dict[str, Any]] = getattr(importlib.import_module(module), func)
    return fn
