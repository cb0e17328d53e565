"""ftc's user cache (``$FTC_CACHE_DIR``, default ``~/.cache/ftc``): entries keyed by fingerprint.

What is cached, each under its own folder, so that a second start of the same run skips work
whose inputs have not changed:

- ``weights/``: a PyTorch checkpoint's weights as converted into the TF model (engine.model);
- ``data/``: a raw file's complete preparation (engine.data.prepare);
- ``xla/``: XLA's own compilation cache (the jit-compiled optimizer update), one folder per
  TensorFlow version and CPU, since a kernel compiled for one CPU may not run on another.

Keys are sha256 digests of everything that changes an entry's content (file contents, settings,
library versions). An entry is written in a temporary name and renamed into place (engine.fsio),
so a reader sees a whole entry or none. An entry that cannot be read is ignored, rebuilt and
said so in one line; a cache folder that cannot be written gives one warning line and the run
goes on uncached. Removing the folder is always safe: ``rm -rf ~/.cache/ftc``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.fsio import fsync, replace

CACHE_ENV = "FTC_CACHE_DIR"
_warned: set[str] = set()
_xla_flag: str | None = None  # the flag enable_xla_cache added to TF_XLA_FLAGS


def note(text: str) -> None:
    """One line on stderr (the engine's log; the terminal for the command line)."""
    print(f"ftc: cache: {text}", file=sys.stderr, flush=True)


def root() -> Path:
    """The cache folder, as FTC_CACHE_DIR says (default ~/.cache/ftc); not created here."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "ftc"


def folder(kind: str) -> Path | None:
    """``root()/kind``, created if need be; None (and one warning per process) when it cannot be written."""
    path = root() / kind
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as exc:
        if kind not in _warned:
            _warned.add(kind)
            note(
                f"{path} cannot be written ({exc.strerror or type(exc).__name__}); running without "
                f"the {kind} cache: set {CACHE_ENV} to a writable folder to get it back"
            )
        return None
    return path


def digest(*parts: Any) -> str:
    """A stable sha256 of JSON-able parts (the key of an entry)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's whole content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


STALE_S = 3600  # a temp entry older than this was left by a killed writer


def _sweep(base: Path) -> None:
    """Remove temp entries a killed writer left (hidden, never read; they only take room)."""
    now = time.time()
    for leftover in base.glob(".*.tmp"):
        try:
            if now - leftover.lstat().st_mtime > STALE_S:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        except OSError:
            pass


def store_file(kind: str, name: str, write: Any) -> Path | None:
    """Write an entry file ``kind/name`` atomically: ``write(tmp_path)`` fills a temp file, renamed in.

    Returns its path, or None where the cache cannot be written (said once) or the write failed.
    """
    base = folder(kind)
    if base is None:
        return None
    _sweep(base)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=base)
    os.close(fd)
    try:
        write(Path(tmp))
        fsync(Path(tmp))
        replace(Path(tmp), base / name)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        note(f"could not store {kind}/{name} ({exc.strerror or type(exc).__name__}); going on without it")
        return None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return base / name


def store_tree(kind: str, name: str, source: Path, extra: dict[str, Any] | None = None) -> Path | None:
    """Copy a folder into the entry ``kind/name`` (built aside, then renamed in); None if it cannot be.

    ``extra`` maps more file names to JSON documents written into the entry beside the copy.
    """
    base = folder(kind)
    if base is None:
        return None
    _sweep(base)
    final = base / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=base))
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True, copy_function=_copy_synced)
        for fname, doc in (extra or {}).items():
            (tmp / fname).write_text(json.dumps(doc, indent=1, sort_keys=True))
            fsync(tmp / fname)
        if final.exists():  # another process stored the same key meanwhile: same content, keep it
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        replace(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        note(f"could not store {kind}/{name} ({exc.strerror or type(exc).__name__}); going on without it")
        return None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _copy_synced(src: str, dst: str) -> str:
    shutil.copyfile(src, dst)
    fsync(Path(dst))
    return dst


def drop(path: Path, why: str) -> None:
    """Remove a broken entry, saying so in one line; the caller rebuilds it."""
    note(f"{path}: {why}; ignored, rebuilding it")
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _cpu_id() -> str:
    """The CPU a compiled kernel is tied to: model name and instruction-set flags."""
    model, flags = platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Processor") and model == platform.machine():
                model += " " + value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = " ".join(sorted(value.split()))
    except OSError:
        pass
    return hashlib.sha256(f"{model}|{flags}".encode()).hexdigest()[:16]


def enable_xla_cache() -> Path | None:
    """Point XLA's persistent compilation cache at ``xla/<tf version>-<cpu>`` (before the first XLA compile).

    The jit-compiled optimizer update is ~100 XLA kernels; compiling them is most of the first
    step's time, and a second start loads them instead. XLA keys each kernel by its program and
    signature itself; the folder adds TensorFlow's version and the CPU. A user's own
    ``--tf_xla_persistent_cache_directory`` in TF_XLA_FLAGS is left as it is.
    """
    global _xla_flag
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if _xla_flag is not None:  # ours, from an earlier load in this process: replaced below
        flags = flags.replace(_xla_flag, "").strip()
    if "tf_xla_persistent_cache_directory" in flags:
        return None
    try:
        from importlib.metadata import version

        tf_version = version("tensorflow")
    except Exception:
        tf_version = "unknown"
    path = folder(f"xla/{tf_version}-{_cpu_id()}")
    if path is None:
        return None
    _xla_flag = f"--tf_xla_persistent_cache_directory={path}"
    os.environ["TF_XLA_FLAGS"] = f"{flags} {_xla_flag}".strip()
    return path
