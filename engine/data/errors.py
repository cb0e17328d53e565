"""The one exception type for input that cannot be used, carrying a one-sentence message for the user."""

from __future__ import annotations


class DataError(Exception):
    """Bad input (missing file, undecodable byte, missing column, ...): the CLI exits 2 with this text.

    The message is a single sentence saying what is wrong, where (file, row, byte offset,
    column) and what to do about it, so it can be shown as is without a traceback.
    """


class EncodingProblem(DataError):
    """A byte that the chosen encoding cannot decode, at a known data row and byte offset."""

    def __init__(self, path: str, row: int, offset: int, byte: int, encoding: str) -> None:
        self.path, self.row, self.offset, self.byte, self.encoding = path, row, offset, byte, encoding
        super().__init__(
            f"{path}: row {row}, byte offset {offset}: byte 0x{byte:02x} is not valid {encoding}; "
            "rerun with --encoding latin-1 (or --encoding auto to detect it)"
        )
