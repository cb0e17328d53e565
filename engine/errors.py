"""One error hierarchy and one table of exit codes for everything ftc reports to a person.

Every error a person may see derives from ``FtcError`` and carries a one-sentence message
saying what is wrong, where (file, row, field) and what to do; the command line prints it
as one line and exits with the error's ``exit_code``. Nothing here imports a library.
"""

from __future__ import annotations

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
