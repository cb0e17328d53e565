"""Atomic training checkpoints: write to a temp dir, fsync, rename, mark COMPLETE; find, verify, prune.

Layout of ``checkpoints/ckpt-<step>/``:
  weights.npz     every model variable, by position (names in state.json)
  optimizer.npz   the optimizer's variables (iterations, Adam moments)
  rng.npz         the dropout generators' states
  state.json      step, data position, early-stopping state, metric history, fingerprints
  COMPLETE        written last: a checkpoint without it is ignored. It lists the files and
                  their sha256 (markers from ftc 0.1.0 list the files only), checked on load

This module is the one owner of the format: training saves and resumes through it, and
prediction (engine/predict/models.py) loads a checkpoint's weights and origin through it.

``checkpoints/abandoned-<time>/`` holds the later checkpoints of a run that was resumed from an
earlier one (set_aside), kept but out of the way.

Pruning renames a checkpoint to ``.deleting-ckpt-<step>`` (and makes the rename durable) before
deleting its files, so a kill mid-way leaves a leftover that no scan takes for a checkpoint and
``sweep`` removes at the next start, never a half-deleted ``ckpt-<step>``. A write that fails (a
full disk) removes its temp folder and raises its OSError with the checkpoint's path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from engine.errors import CheckpointError
from engine.fsio import fault, fsync, write_synced
from engine.train.config import semantic_changes

MARKER = "COMPLETE"
PREFIX = "ckpt-"
TMP = f".tmp-{PREFIX}"  # a checkpoint being written: .tmp-ckpt-<step>-<pid>
DELETING = ".deleting-"  # a checkpoint being pruned: .deleting-ckpt-<step>
# The files that make a folder a checkpoint (complete or not), as opposed to a model folder.
_REQUIRED = ("weights.npz", "state.json")


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
    tmp = root / f"{TMP}{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write(tmp, final, step, weights=weights, optimizer=optimizer, rng=rng, state=state)
    except BaseException as exc:
        # A full disk (or any failure) leaves no partial checkpoint behind, and says where it was going.
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(final)) from exc
        raise
    fsync(root)
    return final


def _write(
    tmp: Path,
    final: Path,
    step: int,
    *,
    weights: Sequence[np.ndarray],
    optimizer: Sequence[np.ndarray],
    rng: Sequence[np.ndarray],
    state: dict[str, Any],
) -> None:
    tmp.mkdir()
    arrays = {"weights.npz": weights, "optimizer.npz": optimizer, "rng.npz": rng}
    for name, values in arrays.items():
        write_synced(tmp / name, partial(_savez, values=values))
        fault("checkpoint_write", step)  # tests kill the engine here, half-way through
    text = json.dumps({**state, "step": step}, indent=1)
    write_synced(tmp / "state.json", lambda fh: fh.write(text.encode()))
    files = sorted([*arrays, "state.json"])
    # Read back from the page cache: np.savez seeks while it writes, so it cannot be hashed on the way.
    sha256 = {name: _sha256(tmp / name) for name in files}
    marker = {"step": step, "time": time.time(), "files": files, "sha256": sha256}
    write_synced(tmp / MARKER, lambda fh: fh.write(json.dumps(marker).encode()))
    fsync(tmp)
    if final.exists():  # a damaged folder under the final name (no marker): replace it
        _delete(final)
    os.rename(tmp, final)


def _savez(fh: BinaryIO, values: Sequence[np.ndarray]) -> None:
    np.savez(fh, *values)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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


def _marker(path: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return marker if isinstance(marker, dict) else None


def is_checkpoint(path: Path) -> bool:
    """A folder training wrote as a checkpoint, complete or not (a model folder is not one)."""
    return all((path / f).is_file() for f in _REQUIRED)


def is_complete(path: Path) -> bool:
    """The marker is there and every file it lists too (contents are checked when loaded)."""
    marker = _marker(path)
    return marker is not None and all((path / f).is_file() for f in marker.get("files", []))


def folders(root: Path) -> list[Path]:
    """Every ``ckpt-<step>`` folder, complete, damaged or not, oldest first (never a temp or leftover)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()]
    return sorted((p for p in found if p.is_dir()), key=step_of)


def complete(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first; half-written ones and temp dirs are skipped."""
    return [p for p in folders(root) if is_complete(p)]


def latest_complete(root: Path) -> Path | None:
    done = complete(root)
    return done[-1] if done else None


def damage(path: Path) -> str | None:
    """Why a checkpoint cannot be resumed from (a few words), or None if it is intact.

    Reads every file: each against its sha256 in the marker, or, for a marker from ftc 0.1.0
    (no checksums), each .npz against the CRCs of its zip members and state.json as JSON, so
    a truncated or altered file is found before any of it is loaded.
    """
    if not path.is_dir():
        return "no such checkpoint"
    marker = _marker(path)
    if marker is None:
        return f"its {MARKER} marker is missing or unreadable (a write cut short)"
    files = marker.get("files")
    sums = marker.get("sha256")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return f"its {MARKER} marker lists no files"
    names = sorted(set(files) | (set(sums) if isinstance(sums, dict) else set()))
    missing = [f for f in names if not (path / f).is_file()]
    if missing:
        return f"{', '.join(missing)} missing"
    if isinstance(sums, dict):
        bad = [f for f in names if f in sums and _sha256(path / f) != sums[f]]
        if bad:
            return f"{', '.join(bad)} differ{'s' if len(bad) == 1 else ''} from the checksums in {MARKER}"
        return None
    bad = [f for f in names if not _readable(path / f)]
    return f"{', '.join(bad)} damaged (truncated or altered)" if bad else None


def _readable(path: Path) -> bool:
    """A checkpoint file without a checksum reads back whole: an .npz's CRCs match, JSON parses."""
    try:
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                return archive.testzip() is None
        if path.suffix == ".json":
            json.loads(path.read_text())
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return False
    return True


def intact_checkpoints(root: Path) -> list[Path]:
    """The checkpoints a resume can start from, oldest first: complete and every file verified.

    Reads every file of every checkpoint (see ``damage``); for a listing, ``complete`` is cheap.
    """
    return [p for p in folders(root) if damage(p) is None]


def resolve(root: Path, name: str) -> Path:
    """A checkpoint named as ``ftc resume --checkpoint`` takes it: ckpt-<step>, a step, or a path."""
    if name.isdigit():
        return root / f"{PREFIX}{int(name)}"
    path = Path(name).expanduser()
    return path if path.is_absolute() else root / path


def verify_named(root: Path, name: str) -> Path:
    """The intact checkpoint ``name`` names (see ``resolve``); CheckpointError naming it otherwise.

    Imports no TensorFlow: the console calls it before it starts an engine. The one-line
    error lists the intact checkpoints a resume could use instead.
    """
    path = resolve(root, name)
    problem = damage(path)
    if problem is None:
        return path
    others = [p.name for p in intact_checkpoints(root) if p != path]
    choice = (
        f"intact ones: {', '.join(others)}"
        if others
        else f"{root} holds no intact checkpoint (without --checkpoint, training starts from step 0)"
    )
    raise CheckpointError(f"cannot resume from checkpoint {name} ({path}): {problem}; {choice}")


def read_state(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((path / "state.json").read_text())
    return state


def load_arrays(path: Path, name: str) -> list[np.ndarray]:
    """The arrays of one of the checkpoint's .npz files, in order, after checking the file's sha256."""
    _verify(path, name)
    try:
        with np.load(path / name) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # A marker without checksums (ftc 0.1.0) proves no content: a cut or unreadable file shows here.
        why = str(exc).splitlines()[0] if str(exc) else "damaged"
        raise CheckpointError(
            f"{path / name}: cannot be read ({why}); resume from another checkpoint"
        ) from None


def _verify(path: Path, name: str) -> None:
    expected = ((_marker(path) or {}).get("sha256") or {}).get(name)
    if expected is None:
        return  # a marker from ftc 0.1.0, before checksums: the files' presence is all it proves
    if _sha256(path / name) != expected:
        raise CheckpointError(
            f"{path / name}: its content differs from the checksum in {MARKER} (a damaged disk or a "
            "copy cut short); resume from another checkpoint"
        )


@dataclass(frozen=True)
class Origin:
    """Where a checkpoint comes from: its training session, base model and labels (for prediction)."""

    session: Path
    source: str  # the base model: a local folder (absolute) or a hub name
    labels: list[str]


def origin(path: Path) -> Origin:
    """The session, base model and labels of a checkpoint's weights; CheckpointError if one is missing.

    A checkpoint lives in ``<session>/checkpoints/``; the session's config.toml names the base
    model and the prepared data, whose manifest holds the labels in the order of the outputs.
    """
    from engine.config import ConfigError, load_toml
    from engine.data.shards import read_manifest
    from engine.errors import DataError

    session = path.parent.parent
    try:
        config = load_toml(session / "config.toml")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: its session's configuration cannot be read ({exc})") from None
    source = _base_source(session, config)
    if source is None:
        raise CheckpointError(f"{path}: its session {session} names no base model ([model] source)")
    data_dir = config.get("data", {}).get("dir")
    data = session_path(session, str(data_dir)) if data_dir else session / "data"
    if not (data / "manifest.json").is_file():
        raise CheckpointError(
            f"{path}: its labels should be in {data / 'manifest.json'}, which is missing; "
            "give the session's model/ folder instead"
        )
    try:
        manifest, _ = read_manifest(data)
    except DataError as exc:
        raise CheckpointError(f"{path}: its labels cannot be read ({exc})") from None
    return Origin(session, source, [str(x) for x in manifest.labels])


def base_source(path: Path) -> str | None:
    """The base model of a checkpoint's session, without reading its data; None if it names none."""
    from engine.config import ConfigError, load_toml

    session = path.parent.parent
    try:
        return _base_source(session, load_toml(session / "config.toml"))
    except ConfigError:
        return None


def session_path(session: Path, value: str) -> Path:
    """A path from a training session's config as its engine saw it: a relative one is the session's.

    The training engine runs in its session folder (engine/train/job.py resolves ``[data] dir``
    there too); whoever loads a checkpoint later runs elsewhere, so the working directory says
    nothing about where the training session's relative paths point.
    """
    folder = Path(value).expanduser()
    return folder if folder.is_absolute() else (session / folder).resolve()


def _base_source(session: Path, config: dict[str, Any]) -> str | None:
    """``[model] source``: a local folder (relative: the session's) or a hub name."""
    source = config.get("model", {}).get("source")
    if not source:
        return None
    folder = session_path(session, str(source))
    return str(folder) if folder.is_dir() else str(source)


def check_fingerprints(path: Path, expected: dict[str, Any]) -> None:
    """Refuse a checkpoint made with another config, tokenizer or data, saying what changed.

    The config is compared field by field over what changes the training trajectory
    (``config_semantic``), so a setting added by a later release with its default, or a
    change of checkpoint cadence, does not refuse a resume.
    """
    saved = read_state(path).get("fingerprints", {})
    problems = []
    if "config_semantic" in saved:
        diff = semantic_changes(saved["config_semantic"], expected.get("config_semantic", {}))
        if diff:
            problems.append("config changed (" + "; ".join(diff) + ")")
    elif saved.get("config") != expected.get("config"):
        problems.append("config changed (settings differ)")  # a checkpoint without its settings
    if saved.get("tokenizer") != expected.get("tokenizer"):
        problems.append("tokenizer files changed" + _changed_files(saved, expected))
    if saved.get("data") != expected.get("data"):
        problems.append(f"data changed (fingerprint {saved.get('data')} -> {expected.get('data')})")
    jit = saved.get("jit_optimizer", saved.get("config_semantic", {}).get("train", {}).get("jit_optimizer"))
    if isinstance(jit, bool) and "jit_optimizer" in expected and jit != expected["jit_optimizer"]:
        # Recorded since 'auto' (earlier: the config's value, true by default then).
        problems.append(
            f"jit_optimizer changed ({str(jit).lower()} -> {str(expected['jit_optimizer']).lower()})"
        )
    if "precision" in saved and saved["precision"] != expected.get("precision"):
        # 'auto' follows the checkpoint's policy (engine.train.loop); this is an explicit change.
        problems.append(f"precision changed ({saved['precision']} -> {expected.get('precision')})")
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
    """Move checkpoints later than after_step into root/abandoned-<time>/; returns that folder.

    For a resume from an earlier checkpoint: the later ones belong to a run that is being
    replaced, and are kept (out of the way of latest_complete and prune) rather than deleted.
    Damaged ones go too: one left in place would be taken for this run's checkpoint at its step.
    """
    later = [p for p in folders(root) if step_of(p) > after_step]
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
    fsync(folder)
    fsync(root)
    return folder


def prune(root: Path, keep_last: int, keep: set[int] = frozenset()) -> list[Path]:  # type: ignore[assignment]
    """Delete complete checkpoints beyond the last keep_last, except the steps in keep; and leftovers."""
    done = complete(root)
    removed = []
    for path in done[:-keep_last] if keep_last > 0 else done:
        if step_of(path) not in keep:
            _delete(path)
            removed.append(path)
    sweep(root)
    return removed


def sweep(root: Path) -> list[Path]:
    """Remove what a killed process left: checkpoints half-pruned, temp dirs of dead writers."""
    if not root.is_dir():
        return []
    gone = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(DELETING) or (
            # Only this process writes checkpoints here (the session's lock); another pid's is garbage.
            path.name.startswith(TMP) and not path.name.endswith(f"-{os.getpid()}")
        ):
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone


def _delete(path: Path) -> None:
    """Delete a checkpoint folder so that no kill leaves a half-deleted folder under its name.

    It is renamed aside (durably) first; what a kill leaves is a ``.deleting-`` folder, which no
    scan takes for a checkpoint and ``sweep`` removes.
    """
    aside = path.with_name(f"{DELETING}{path.name}")
    if aside.exists():
        shutil.rmtree(aside)
    os.rename(path, aside)
    fsync(path.parent)
    fault("prune_renamed")  # tests kill the engine between the rename and the deletion
    for i, child in enumerate(sorted(aside.iterdir())):
        if i == 1:
            fault("prune_delete")  # ... and half-way through the deletion
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    aside.rmdir()
