"""One error hierarchy and one table of exit codes for everything ftc reports to a person.

Every error a person may see derives from ``FtcError`` and carries a one-sentence message
saying what is wrong, where (file, row, field) and what to do; the command line prints it
as one line and exits with the error's ``exit_code``. Nothing here imports a library.
"""

from __future__ import annotations

import errno
import os
import re
from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of every ``ftc`` command (scripts rely on them)."""

    OK = 0
    FAILED = 1  # a data test failed, or the job failed
    BAD_INPUT = 2  # refused before anything started: bad file, config, argument or session
    BUSY = 3  # the session is already served by another engine
    INTERRUPTED = 130  # ctrl+c at a prompt or during a foreground command (128 + SIGINT, as shells do)
    BROKEN_PIPE = 141  # the reader of our output went away (``ftc ls | head``): 128 + SIGPIPE, quietly


class FtcError(Exception):
    """An error for a person: a one-line message, and the exit code the command line ends with."""

    exit_code: ExitCode = ExitCode.BAD_INPUT


class ConfigError(FtcError, ValueError):
    """A configuration value or file that cannot be used; the message names the file and field."""


class DataError(FtcError, ValueError):
    """Bad input data (missing file, undecodable byte, missing column, damaged shard)."""


class SessionError(FtcError):
    """A session that cannot be used as asked (unknown id, dead engine, damaged folder)."""


class CheckpointError(FtcError):
    """A checkpoint that cannot be used; the text says which and why."""


class ModelError(FtcError, ValueError):
    """A model source that cannot be loaded: missing folder, no weights, unknown architecture."""


class OutputError(FtcError, ValueError):
    """An output that cannot be written or resumed as asked."""


def os_error_text(exc: OSError, then: str = "try again") -> str:
    """One line for an OSError a person can act on: the path, what went wrong, what to do.

    ``then`` is the command that continues once the cause is fixed (``ftc resume S``).
    """
    where = exc.filename if exc.filename is not None else "a file"
    if exc.errno == errno.ENOSPC:
        return f"no space left on device writing {where}; free space, then {then}"
    if exc.errno == errno.EDQUOT:
        return f"disk quota exceeded writing {where}; free space or raise the quota, then {then}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{where}: permission denied; check the file's owner and permissions, then {then}"
    if exc.errno == errno.ENOENT:
        return f"{where}: no such file or folder; check the path, then {then}"
    if exc.errno == errno.EISDIR:
        return f"{where}: is a folder, not a file; give a file path"
    if exc.errno == errno.ENOTDIR:
        return f"{where}: a part of this path is a file, not a folder; check the path"
    if exc.errno == errno.EROFS:
        return f"{where}: read-only file system; choose a writable location"
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    return f"{where}: {reason}; {then}"


def brief(text: object, limit: int = 160) -> str:
    """A library's message as a short single line: whitespace collapsed, clipped with an ellipsis."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# How libraries say the disk is full when they raise no OSError with the errno: HDF5 ("errno = 28"),
# TensorFlow, safetensors' Rust ("os error 28", quota: "os error 122"), Arrow's short write.
_FULL_DISK = re.compile(
    r"No space left|Disk quota exceeded|errno = 28|os error (?:28|122)|\d+ requested and \d+ written"
)
_QUOTA = frozenset({"Disk quota exceeded", "os error 122"})


def full_disk(exc: BaseException) -> OSError | None:
    """The full disk (or exceeded quota) behind an error, or None: the one place that recognises it.

    Walks the error's causes. An OSError with ENOSPC or EDQUOT is returned as it is; a library's
    own error saying so in its text becomes an OSError with that errno and the first absolute
    path its text names (None when it names none).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return current
        text = str(current)
        found = _FULL_DISK.search(text)
        if found:
            code = errno.EDQUOT if found.group(0) in _QUOTA else errno.ENOSPC
            path = re.search(r"(?:^|[\s'\"(=])(/[^\s'\":,;)]+)", text)  # not the "/O" of "I/O error"
            return OSError(code, os.strerror(code), path.group(1) if path else None)
        current = current.__cause__ or current.__context__
    return None
