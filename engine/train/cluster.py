"""Who trains together: a group of worker processes as host:port addresses, and this process's index.

A group is N workers under MultiWorkerMirroredStrategy; worker 0 is the chief, which alone owns
the session. It comes from ``ftc train --workers N`` (N processes on this host, free loopback
ports), a cluster file (``--cluster cluster.toml``: ``hosts = ["h1:port", ...]`` and ``index =
K``) or a ``TF_CONFIG`` environment variable, the TensorFlow way. Nothing here imports TensorFlow:
the command line reads and checks a cluster file before it starts anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

# More workers than this is a typo rather than a cluster (one process per GPU or host).
MAX_WORKERS = 256
_ADDRESS = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")
_LOCAL = ("localhost", "127.0.0.1", "::1", "[::1]")


class WorkerLost(Exception):
    """A worker of the group died or stopped answering; the run stops and the session is 'crashed'."""


@dataclass(frozen=True)
class ClusterSpec:
    """The group's worker addresses (the chief first) and which of them this process is."""

    hosts: tuple[str, ...]
    index: int = 0
    local: bool = False  # the chief starts the other workers itself, on this host (--workers N)

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def at(self, index: int) -> ClusterSpec:
        return ClusterSpec(self.hosts, index, self.local)

    def tf_config(self) -> str:
        """The TF_CONFIG of this worker, as MultiWorkerMirroredStrategy reads it."""
        return json.dumps(
            {"cluster": {"worker": list(self.hosts)}, "task": {"type": "worker", "index": self.index}}
        )

    def check_port(self) -> None:
        """Refuse at once, in one line, a port of this worker that another program holds."""
        host, port = split_address(self.hosts[self.index], "cluster")
        bind_host = "" if host not in _LOCAL else "127.0.0.1"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((bind_host, port))
            except OSError as exc:
                raise ConfigError(
                    f"worker {self.index} ({self.hosts[self.index]}): port {port} is in use on this host "
                    f"({exc.strerror or exc}); pick a free port in the cluster file"
                ) from None


def split_address(address: str, where: str) -> tuple[str, int]:
    match = _ADDRESS.match(address)
    port = int(match.group("port")) if match else 0
    if match is None or not 0 < port < 65536:
        raise ConfigError(f"{where}: {address!r} is not host:port (e.g. 'node1:2222'); fix the address")
    return match.group("host"), port


def _checked(hosts: Any, index: Any, where: str) -> ClusterSpec:
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f'{where}: hosts must be a list of "host:port" strings, the chief first; add it')
    if len(hosts) > MAX_WORKERS:
        raise ConfigError(f"{where}: hosts has {len(hosts)} workers; at most {MAX_WORKERS}")
    for address in hosts:
        split_address(address, where)
    dup = sorted({h for h in hosts if hosts.count(h) > 1})
    if dup:
        raise ConfigError(f"{where}: {', '.join(dup)} listed twice; each worker needs its own host:port")
    if isinstance(index, bool) or not isinstance(index, int):
        raise ConfigError(f"{where}: index must be this host's place in hosts (0 = the chief), not {index!r}")
    if not 0 <= index < len(hosts):
        raise ConfigError(
            f"{where}: index {index} is out of range for {len(hosts)} hosts; use 0 to {len(hosts) - 1}"
        )
    return ClusterSpec(tuple(hosts), index)


def load_cluster(path: Path) -> ClusterSpec:
    """A cluster file: ``hosts = ["h1:port", "h2:port"]`` and ``index = K`` (this host's place)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such cluster file; give the path of a cluster.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the cluster file ({exc}); check the file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the cluster file") from None
    unknown = sorted(set(raw) - {"hosts", "index"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; a cluster file has hosts and index")
    if "index" not in raw:
        raise ConfigError(f"{path}: index is missing; add this host's place in hosts (0 = the chief)")
    return _checked(raw.get("hosts"), raw["index"], str(path))


def from_tf_config(text: str) -> ClusterSpec:
    """A TF_CONFIG value (JSON): its cluster's ``worker`` list (``chief`` first, if any) and task."""
    where = "TF_CONFIG"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc.msg}); fix the environment variable") from None
    cluster, task = (raw.get("cluster"), raw.get("task")) if isinstance(raw, dict) else (None, None)
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError(f'{where}: needs "cluster" and "task" objects; see the README\'s Several workers')
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown:
        raise ConfigError(
            f"{where}: job {unknown[0]!r} is not supported; ftc trains with chief and worker jobs"
        )
    chief = cluster.get("chief") or []
    hosts = [*chief, *(cluster.get("worker") or [])]
    kind, index = task.get("type"), task.get("index")
    if kind not in ("chief", "worker"):
        raise ConfigError(f'{where}: task type {kind!r}; use "worker" (or "chief")')
    if kind == "worker" and isinstance(index, int) and not isinstance(index, bool):
        index += len(chief)
    return _checked(hosts, index, where)


def local_cluster(n: int) -> ClusterSpec:
    """N workers on this host, each on a free loopback port (the chief's first)."""
    if not 1 <= n <= MAX_WORKERS:
        raise ConfigError(f"--workers {n}: give 1 to {MAX_WORKERS} worker processes")
    return ClusterSpec(tuple(f"localhost:{p}" for p in free_ports(n)), 0, local=True)


def free_ports(n: int) -> list[int]:
    """N distinct ports free on the loopback now (bound to port 0 together, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def from_environment() -> ClusterSpec | None:
    """The group a TF_CONFIG in the environment describes, or None if it has none."""
    text = os.environ.get("TF_CONFIG", "").strip()
    return from_tf_config(text) if text else None


def session_group(state: dict[str, Any]) -> ClusterSpec | None:
    """The chief's group from its session's state.json (``workers``, and ``hosts`` for several hosts).

    None for one process. Local workers get free ports anew at every start (a resume too).
    """
    hosts = state.get("hosts")
    if isinstance(hosts, list) and len(hosts) > 1:
        return _checked(hosts, 0, "state.json hosts")
    workers = state.get("workers")
    if isinstance(workers, int) and workers > 1:
        return local_cluster(workers)
    return None


def local_gpus(size: int, gpus: int, visible: str | None) -> list[str] | None:
    """Each local worker's ``CUDA_VISIBLE_DEVICES`` (the chief's first): one GPU each; None: no GPU.

    ``gpus`` is how many GPUs this process sees, ``visible`` its own ``CUDA_VISIBLE_DEVICES`` (the
    ids they are, where set). Workers sharing a GPU would each take its memory (TensorFlow's
    default) and fail, so a host with fewer GPUs than workers is refused in one line.
    """
    if gpus <= 0:
        return None
    if gpus < size:
        raise ConfigError(
            f"--workers {size}: this host has {gpus} GPU(s), one per worker is needed; use --workers "
            f"{gpus}, or set CUDA_VISIBLE_DEVICES= (empty) to train on the CPU"
        )
    ids = [part.strip() for part in visible.split(",")] if visible else []
    if len(ids) < gpus:
        ids = [str(i) for i in range(gpus)]
    return ids[:size]
