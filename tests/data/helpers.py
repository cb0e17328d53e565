"""Helpers for the data tests: writing files and building the argparse namespaces the CLI gets."""

from __future__ import annotations

import argparse
from pathlib import Path


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def check_args(data: Path | str, *extra: str) -> argparse.Namespace:
    """Parsed ``ftc check`` arguments, as ftc hands them to check_main."""
    from tui.commands.data import add_check_arguments

    parser = argparse.ArgumentParser()
    add_check_arguments(parser)
    return parser.parse_args([str(data), *extra])


def prepare_args(data: Path | str, out: Path, *extra: str) -> argparse.Namespace:
    from tui.commands.data import add_prepare_arguments

    parser = argparse.ArgumentParser()
    add_prepare_arguments(parser)
    return parser.parse_args([str(data), "--out", str(out), *extra])


def first_bad_byte(path: Path) -> tuple[int, int]:
    """(data row, byte offset) of the first byte that is not UTF-8, computed without ftc's reader."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The tweets have no multi-line fields, so the data row is the number of newlines before the byte.
        return raw[: exc.start].count(b"\n"), exc.start
    raise AssertionError(f"{path} is valid UTF-8")
