"""Where ``ftc check`` and ``ftc prepare`` may write: never over an input, never over a user's other files.

Every output is checked before any input is opened. Paths are compared after resolving
symlinks and ``..`` *and* by (device, inode), so a hard link, a symlink or ``./a/../a.csv``
naming the input is caught as surely as the same string.

A preparation folder is replaced whole: the new one is built in a hidden sibling folder on the
same filesystem and swapped in only when complete (old renamed aside, new renamed in, old
deleted). A failure at any point leaves the previous preparation as it was; leftovers of a
killed swap are swept (or put back) by the next ``prepare`` of that folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

from engine.data.errors import DataError
from engine.data.shards import MANIFEST, SPLITS
from engine.errors import full_disk
from engine.fsio import fault, fsync, identity

# What a preparation folder may hold: anything else is a user's file and is never deleted.
PREPARED_FILES = frozenset({MANIFEST, "report.json", "rejects.csv"})
_NEW, _OLD = ".ftc-new-", ".ftc-old-"


_FREE_FLOOR = 256 * 1024  # below this, a write error on the build folder is taken as a full disk


def disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether a writing error means the disk is full (HDF5 and Arrow do not always say ENOSPC)."""
    if full_disk(exc) is not None:
        return True
    try:
        return shutil.disk_usage(folder).free < _FREE_FLOOR
    except OSError:
        return False


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when a and b name one file: same resolved path, or same (device, inode) (hard links)."""
    pa, pb = Path(a), Path(b)
    if pa.resolve() == pb.resolve():
        return True
    ia, ib = identity(pa), identity(pb)
    return ia is not None and ia == ib


def _contains(folder: Path, inside: Path) -> bool:
    """True when ``inside`` is ``folder`` or lies somewhere under it (by resolved path or by inode)."""
    target = identity(folder)
    resolved = folder.resolve()
    for parent in (inside.resolve(), *inside.resolve().parents):
        if parent == resolved or (target is not None and identity(parent) == target):
            return True
    return False


def check_rejects_path(
    rejects: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None]
) -> Path:
    """The ``--rejects`` path if it is safe to create, else DataError saying why and what to do."""
    path = Path(rejects)
    for given in inputs:
        if given is not None and os.path.exists(given) and same_file(path, given):
            raise DataError(
                f"--rejects {rejects}: is the input file {given}; writing rejects there would destroy it, "
                "give another path"
            )
    if path.is_dir():
        raise DataError(f"--rejects {rejects}: is a folder; give a file path such as {path / 'rejects.csv'}")
    if path.exists() or path.is_symlink():
        raise DataError(
            f"--rejects {rejects}: the file already exists and ftc does not overwrite it; "
            "remove it or choose another path"
        )
    parent = path.parent
    if not parent.exists():
        raise DataError(
            f"--rejects {rejects}: folder {parent} does not exist; create it or choose another path"
        )
    if not parent.is_dir():
        raise DataError(f"--rejects {rejects}: {parent} is not a folder; choose another path")
    return path


def check_out_folder(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None]) -> Path:
    """The ``--out`` folder if a preparation may replace it, else DataError (nothing is touched)."""
    folder = Path(out)
    for given in inputs:
        if given is None or not os.path.exists(given):
            continue
        if same_file(folder, given):
            raise DataError(f"--out {out}: is the input {given}; give a new folder for the prepared data")
        if _contains(folder, Path(given)):
            raise DataError(
                f"--out {out}: holds the input {given}; replacing that folder would destroy it, "
                "give a folder outside it"
            )
    if not folder.parent.is_dir():
        raise DataError(
            f"--out {out}: folder {folder.parent} does not exist; create it or choose another place"
        )
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--out {out}: is a file, not a folder; give a folder for the prepared data")
    if folder.is_symlink():
        # Replace what the link points at (the link stays as the user made it), never the link itself.
        folder = folder.resolve()
    if folder.is_dir():
        foreign = _foreign(folder)
        if foreign:
            raise DataError(
                f"--out {out}: holds files that are not an ftc preparation ({', '.join(foreign[:3])}); "
                "give an empty folder, a new one, or one ftc prepared"
            )
    return folder


def _foreign(folder: Path) -> list[str]:
    """Entries of a folder that an ftc preparation does not write (so must not be deleted)."""
    found: list[str] = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name in PREPARED_FILES and entry.is_file() and not entry.is_symlink():
            continue
        if name in SPLITS and entry.is_dir() and not entry.is_symlink():
            found += [
                f"{name}/{p.name}"
                for p in sorted(entry.iterdir())
                if not (p.name.startswith("shard-") and ".h5" in p.name and p.is_file())
            ]
            continue
        if name.startswith(("ftc-hash-", ".buckets")) and entry.is_dir():
            continue  # a killed run's scratch space (old releases built in place)
        if name.startswith("rowindex-") and name.endswith(".json"):
            continue  # the preview's row-index cache
        found.append(name)
    return found


def _siblings(folder: Path, kind: str) -> list[Path]:
    prefix = f".{folder.name}{kind}"
    return sorted(p for p in folder.parent.iterdir() if p.name.startswith(prefix))


def sweep(folder: Path) -> None:
    """Finish or undo a swap a kill interrupted: put the old preparation back if none is in place."""
    if not folder.parent.is_dir():
        return
    old = _siblings(folder, _OLD)
    if not folder.exists() and old:
        os.replace(old[-1], folder)  # killed between "old aside" and "new in": the old one is whole
        fsync(folder.parent)
        old = old[:-1]
    for leftover in old + _siblings(folder, _NEW):
        shutil.rmtree(leftover, ignore_errors=True)


def new_build(folder: Path) -> Path:
    """A fresh hidden sibling folder (same filesystem) to build the next preparation in."""
    sweep(folder)
    build = folder.parent / f".{folder.name}{_NEW}{secrets.token_hex(4)}"
    build.mkdir()
    return build


def swap_in(build: Path, folder: Path) -> None:
    """Make the complete preparation in ``build`` the one at ``folder``; the old one is deleted after."""
    aside = None
    if folder.exists():
        aside = folder.parent / f".{folder.name}{_OLD}{secrets.token_hex(4)}"
        os.replace(folder, aside)
        fault("prepare.swap")
    os.replace(build, folder)
    fsync(folder.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
