"""Starting a training run, shared by ``ftc train`` and the console's new-run screen."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.session import SessionPaths


def start_run(
    root: Path, config: dict[str, Any], *, name: str | None = None, allow_failing_checks: bool = False
) -> SessionPaths:
    """Create a session from a run configuration (checked as ``ftc train`` checks it) and start its engine.

    ``allow_failing_checks`` writes ``[data] on_fail = "warn"`` into a train job's config.toml, so a
    resume keeps it. Relative paths in ``config`` are the current directory's; they are made absolute.
    """
    from engine.config import job_kind
    from engine.launcher import create_session, start_engine

    if allow_failing_checks and job_kind(config) == "train":
        data = config.setdefault("data", {})
        if isinstance(data, dict):
            data["on_fail"] = "warn"
    paths = create_session(root, config, name=name)
    start_engine(paths)
    return paths
