"""Atomic training checkpoints: write to a temp dir, fsync, rename, mark COMPLETE; find, verify, prune.

Layout of ``checkpoints/ckpt-<step>/``:
  weights.npz     every model variable, by position (names in state.json)
  optimizer.npz   the optimizer's variables (iterations, Adam moments)
  rng.npz         the dropout generators' states
  state.json      step, data position, early-stopping state, metric history, fingerprints
  COMPLETE        written last: a checkpoint without it is ignored

``checkpoints/abandoned-<time>/`` holds the later checkpoints of a run that was resumed from an
earlier one (set_aside), kept but out of the way.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine import faults
from engine.train.config import describe_changes

MARKER = "COMPLETE"
PREFIX = "ckpt-"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the text says which and why."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, write: Any) -> None:
    with open(path, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def step_of(path: Path) -> int:
    return int(path.name[len(PREFIX) :])


def save(
    root: Path,
    step: int,
    *,
    weights: Sequence[np.ndarray],
    optimizer: Sequence[np.ndarray],
    rng: Sequence[np.ndarray],
    state: dict[str, Any],
) -> Path:
    """Write ckpt-<step> atomically and return its path; an existing complete one at that step is kept."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step}"
    if (final / MARKER).is_file():
        return final
    tmp = root / f".tmp-{PREFIX}{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    arrays = {"weights.npz": weights, "optimizer.npz": optimizer, "rng.npz": rng}
    for name, values in arrays.items():
        _write(tmp / name, lambda fh, v=values: np.savez(fh, *v))
        faults.point("checkpoint_write", step)  # tests kill the engine here, half-way through
    _write(tmp / "state.json", lambda fh: fh.write(json.dumps({**state, "step": step}, indent=1).encode()))
    marker = {"step": step, "time": time.time(), "files": sorted([*arrays, "state.json"])}
    _write(tmp / MARKER, lambda fh: fh.write(json.dumps(marker).encode()))
    _fsync_dir(tmp)
    if final.exists():  # a half-written leftover under the final name (no marker): replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    return final


class BackgroundWriter:
    """Runs one checkpoint write at a time on a thread, so training goes on while it reaches the disk.

    The arrays handed to a write must be snapshots of the state at its step: TensorFlow's
    ``.numpy()`` reads are values (a later optimizer update copies the buffer before it
    writes, tests/train/test_checkpoints.py checks it), so no copy is made here. A failed
    write is raised in the training thread by the next ``wait`` or ``check``.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, write: Callable[[], object]) -> None:
        self.wait()  # one at a time: checkpoints complete in step order
        self._thread = threading.Thread(target=self._run, args=(write,), name="ftc-checkpoint", daemon=True)
        self._thread.start()

    def _run(self, write: Callable[[], object]) -> None:
        try:
            write()
        except BaseException as exc:  # raised again in the training thread
            self._error = exc

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        """Block until the write in flight (if any) is done; raise its error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def check(self) -> None:
        """Raise the error of a finished write without waiting for one in flight."""
        if not self.busy:
            self.wait()


def is_complete(path: Path) -> bool:
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return all((path / f).is_file() for f in marker.get("files", []))


def complete(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first; half-written ones and temp dirs are skipped."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[5:].isdigit()]
    return sorted((p for p in found if is_complete(p)), key=step_of)


def latest_complete(root: Path) -> Path | None:
    done = complete(root)
    return done[-1] if done else None


def listing(root: Path) -> list[dict[str, Any]]:
    """Step, time, reason and metric of each complete checkpoint (for the checkpoint list)."""
    rows = []
    for path in complete(root):
        state = read_state(path)
        rows.append(
            {
                "step": state["step"],
                "path": str(path),
                "time": state.get("time"),
                "reason": state.get("reason"),
                "metric": state.get("metric"),
            }
        )
    return rows


def read_state(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((path / "state.json").read_text())
    return state


def load_arrays(path: Path, name: str) -> list[np.ndarray]:
    with np.load(path / name) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def check_fingerprints(path: Path, expected: dict[str, Any]) -> None:
    """Refuse a checkpoint made with another config, tokenizer or data, saying what changed."""
    saved = read_state(path).get("fingerprints", {})
    problems = []
    if saved.get("config") != expected.get("config"):
        diff = describe_changes(saved.get("config_semantic", {}), expected.get("config_semantic", {}))
        problems.append("config changed (" + ("; ".join(diff[:5]) or "settings differ") + ")")
    if saved.get("tokenizer") != expected.get("tokenizer"):
        problems.append("tokenizer files changed" + _changed_files(saved, expected))
    if saved.get("data") != expected.get("data"):
        problems.append(f"data changed (fingerprint {saved.get('data')} -> {expected.get('data')})")
    if problems:
        raise CheckpointError(
            f"{path.name}: cannot resume, {', '.join(problems)}; restore the original settings "
            "or start a new session"
        )


def _changed_files(saved: dict[str, Any], expected: dict[str, Any]) -> str:
    """' (vocab.txt)': the tokenizer files that differ, if both sides have per-file hashes."""
    old, new = saved.get("tokenizer_files"), expected.get("tokenizer_files")
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ""  # a checkpoint from before per-file hashes
    names = sorted(n for n in set(old) | set(new) if old.get(n) != new.get(n))
    return f" ({', '.join(names)})" if names else ""


def set_aside(root: Path, after_step: int) -> Path | None:
    """Move complete checkpoints later than after_step into root/abandoned-<time>/; returns that folder.

    For a resume from an earlier checkpoint: the later ones belong to a run that is being
    replaced, and are kept (out of the way of latest_complete and prune) rather than deleted.
    """
    later = [p for p in complete(root) if step_of(p) > after_step]
    if not later:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = root / f"abandoned-{stamp}", 1
    while folder.exists():
        n += 1
        folder = root / f"abandoned-{stamp}-{n}"
    folder.mkdir()
    for path in later:
        os.rename(path, folder / path.name)
    _fsync_dir(folder)
    _fsync_dir(root)
    return folder


def prune(root: Path, keep_last: int, keep: set[int] = frozenset()) -> list[Path]:  # type: ignore[assignment]
    """Delete complete checkpoints beyond the last keep_last, except the steps in keep; and temp dirs."""
    done = complete(root)
    removed = []
    for path in done[:-keep_last] if keep_last > 0 else done:
        if step_of(path) not in keep:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for path in root.glob(f".tmp-{PREFIX}*"):
        # Only our own process writes here; a temp dir from a dead writer is garbage.
        if not path.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(path, ignore_errors=True)
    return removed
