"""The one way ftc makes files durable: atomic replace, fsync of files and folders, fault injection.

Every file ftc writes that a crash must not tear (state.json, manifests, cursors, shards,
checkpoints, sidecar indexes) goes through here, so there is one place to get right and
one place where the crash tests inject their faults.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

# Tests set FTC_FAULT=<point>@<n> to SIGKILL the process at the n-th pass of a point (or, for the
# training points, at step n), as kill -9 would, at an exact, otherwise unreachable moment.
FAULT_ENV = "FTC_FAULT"
_passes: dict[str, int] = {}


def fault(point: str, step: int | None = None) -> None:
    """Die here when FTC_FAULT names this point: ``point@step`` with a step, ``point@n`` (n-th pass) without.

    Unset, it costs one dictionary lookup.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, at = spec.partition("@")
    if name != point:
        return
    if step is None:
        _passes[point] = _passes.get(point, 0) + 1
        step = _passes[point]
    if str(step) == (at or "1"):
        os.kill(os.getpid(), signal.SIGKILL)


def fsync(path: Path) -> None:
    """Make a file's content, or a folder's entries (a rename, a new file), durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def identity(path: os.PathLike[str] | str) -> tuple[int, int] | None:
    """A file's (device, inode), following links: equal for hard links and symlinks; None if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def write_synced(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create path, let ``write`` fill it, and fsync it (for files inside a folder renamed later)."""
    with open(path, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def replace(tmp: Path, final: Path) -> None:
    """Rename a finished temp file or folder over final and make the rename durable."""
    os.replace(tmp, final)
    fsync(final.parent)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, mode: int = 0o600) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: Path, data: Any, *, mode: int = 0o600) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=mode)
