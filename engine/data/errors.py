"""Data errors: DataError (from engine.errors), the encoding problem at a known byte, and one-line causes."""

from __future__ import annotations

import codecs

from engine.errors import DataError

# Codecs that decode (nearly) any byte: what to suggest when the current codec fails on one.
_FALLBACKS = ("latin-1", "cp1252")


class EncodingProblem(DataError):
    """A byte that the chosen encoding cannot decode, at a known data row and byte offset."""

    def __init__(
        self, path: str, row: int, offset: int, byte: int, encoding: str, detected: bool = False
    ) -> None:
        self.path, self.row, self.offset, self.byte, self.encoding = path, row, offset, byte, encoding
        self.detected = detected
        where = f"{path}: row {row}, byte offset {offset}: byte 0x{byte:02x} is not valid {encoding}"
        if detected:
            # auto chose from a sample, so suggesting auto again would pick the same codec.
            others = [c for c in _FALLBACKS if codecs.lookup(c).name != encoding]
            suggestions = " or ".join(f"--encoding {c}" for c in others)
            super().__init__(
                f"{where} (the codec --encoding auto detected from a sample); "
                f"rerun with an explicit codec: {suggestions}"
            )
        else:
            super().__init__(f"{where}; rerun with --encoding latin-1 (or --encoding auto to detect it)")

    def as_detected(self) -> EncodingProblem:
        """The same problem, worded for a codec that ``--encoding auto`` picked."""
        return EncodingProblem(self.path, self.row, self.offset, self.byte, self.encoding, detected=True)


class AllRejected(DataError):
    """Every row was rejected; ``base`` is the sentence without where the rejects file is."""

    def __init__(self, base: str, rejects: str | None) -> None:
        self.base, self.rejects = base, rejects
        where = f"; see {rejects}" if rejects else "; give --rejects PATH to save each row and its reason"
        super().__init__(f"{base}{where}")


def one_line(exc: BaseException) -> str:
    """An underlying library error as one line: HDF5's multi-line back-trace becomes its innermost cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if "HDF5 error back trace" in lines[0]:
        # The trace lists each HDF5 frame as 'File "H5x.c", line N, in f' then its message;
        # the innermost (last) message says what is actually wrong, e.g. "truncated file: eof = ...".
        causes = [
            line
            for line in lines
            if not line.startswith(("File ", "HDF5 error back trace", "End of HDF5 error back trace"))
        ]
        inner = [c for c in causes if not c.startswith("Unable to open")]
        return (inner or causes or lines)[-1]
    return lines[-1]
