"""Starting a training run, shared by ``ftc train`` and the console's new-run screen."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.session import SessionPaths
    from engine.train.cluster import ClusterSpec


def start_run(
    root: Path,
    config: dict[str, Any],
    *,
    name: str | None = None,
    allow_failing_checks: bool = False,
    workers: int = 1,
    hosts: Sequence[str] | None = None,
) -> SessionPaths:
    """Create a session from a run configuration (checked as ``ftc train`` checks it) and start its engine.

    ``allow_failing_checks`` writes ``[data] on_fail = "warn"`` into a train job's config.toml, so a
    resume keeps it. Relative paths in ``config`` are the current directory's; they are made absolute.
    ``workers`` > 1 trains on that many local processes; ``hosts`` on several hosts, this one the chief.
    """
    from engine.config import job_kind
    from engine.launcher import create_session, start_engine

    if allow_failing_checks and job_kind(config) == "train":
        data = config.setdefault("data", {})
        if isinstance(data, dict):
            data["on_fail"] = "warn"
    paths = create_session(root, config, name=name, workers=workers, hosts=hosts)
    start_engine(paths)
    return paths


def group_of(workers: int | None, cluster: str | None) -> ClusterSpec | None:
    """The group asked for: --workers N, --cluster FILE or a TF_CONFIG in the environment (None: one)."""
    from engine.errors import ConfigError
    from engine.train.cluster import from_environment, load_cluster, local_cluster

    if workers is not None and cluster is not None:
        raise ConfigError(
            "--workers and --cluster both given; --workers N is for one host, --cluster for several"
        )
    if workers is not None:
        return local_cluster(workers) if workers != 1 else None
    spec = load_cluster(Path(cluster)) if cluster is not None else from_environment()
    if spec is None or spec.size == 1:
        return None
    spec.check_port()
    return spec


def check_hosts_config(config: dict[str, Any]) -> None:
    """Several hosts train from prepared data every host has: ``[data] dir``, not a raw file to prepare."""
    from engine.errors import ConfigError

    data = config.get("data")
    if isinstance(data, dict) and data.get("source") is not None:
        raise ConfigError(
            "[data] source: a run over several hosts needs prepared data on every host; run ftc prepare "
            "there (or copy its folder) and give it as [data] dir"
        )


def run_worker(root: Path, config: dict[str, Any], spec: ClusterSpec) -> int:
    """Worker ``spec.index`` (> 0) of a group over several hosts, in the foreground, until the group ends.

    It keeps no session: a folder of its own (``<sessions>/.workers/``) holds its config; weights
    and where training stands come from the chief. Its output is this command's.
    """
    from engine.config import dump_toml, job_kind
    from engine.errors import ConfigError
    from engine.jobs import validate
    from engine.launcher import _engine_env
    from engine.session import ensure_private_dir, ensure_sessions_root, new_session_id

    kind = job_kind(config)
    if kind != "train":
        raise ConfigError(f"[job] kind is {kind!r}: only training runs on several workers")
    try:
        validate(kind, config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    ensure_sessions_root(root)
    folder = ensure_private_dir(ensure_private_dir(root / ".workers") / new_session_id(f"worker{spec.index}"))
    (folder / "config.toml").write_text(dump_toml(config), encoding="utf-8")
    print(
        f"worker {spec.index} of {spec.size} ({spec.hosts[spec.index]}): joining the chief at "
        f"{spec.hosts[0]}",
        flush=True,
    )
    env = {**_engine_env(), "TF_CONFIG": spec.tf_config()}
    proc = subprocess.run([sys.executable, "-m", "engine.train.workers", str(folder)], env=env, check=False)
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


def worker_count(value: str) -> int:
    """argparse type of --workers: a whole number from 1."""
    import argparse

    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of workers") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: give 1 or more workers")
    return n
