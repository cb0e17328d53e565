"""The bad-input corpus harness: run ``ftc`` as a person would, classify what they saw, check files.

Every case in ``tests/robustness`` builds its bad input, snapshots the files around it, runs one
``ftc`` command and asserts the outcome is *clear*:

- the exit code is the one expected (2: bad input, refused before anything started);
- stderr is exactly one line, starting with ``ftc``, naming the file, row or field (``names``);
- no traceback, and no escaped exception;
- every file that existed before is byte-identical afterwards.

Anything else is classified (``unclear``, ``traceback``, ``silent``) and tallied; the tally is
printed at the end of the run (``conftest.py``) for the issue's closing note.

Usage::

    before = Files(tmp_path)
    out = ftc("check", str(data), "--rejects", str(data))
    refused(out, data.name, "--rejects")
    before.assert_unchanged()
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

# classification -> count, over the whole run (printed by conftest.pytest_terminal_summary)
TALLY: Counter[str] = Counter()
CASES: list[tuple[str, str]] = []  # (case id, classification)


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    escaped: BaseException | None = None  # an exception that left tui.cli.main (in-process runs)

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def ftc(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Outcome:
    """Run ``ftc ARGV`` in this process (fast) through the real entry point, capturing what it prints."""
    from tui.cli import main

    out, err = io.StringIO(), io.StringIO()
    escaped: BaseException | None = None
    old_cwd = Path.cwd()
    saved_env = dict(os.environ)
    try:
        if cwd is not None:
            os.chdir(cwd)
        if env:
            os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 2
            except BaseException as exc:
                escaped, code = exc, -1
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Outcome(int(code), out.getvalue(), err.getvalue(), escaped)


def ftc_process(
    *argv: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> Outcome:
    """Run ``ftc ARGV`` as a real process (for cases that start engines or depend on a fresh interpreter)."""
    proc = subprocess.run(
        [sys.executable, "-m", "tui", *argv],
        cwd=cwd or REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def classify(out: Outcome, names: tuple[str, ...], code: int) -> str:
    """clear, unclear, traceback or silent: what a person running the command would have seen."""
    text = out.out + out.err
    if out.escaped is not None or "Traceback (most recent call last)" in text or "internal error" in text:
        return "traceback"
    if out.code == 0 or not out.err_lines:
        return "silent"
    lines = out.err_lines
    if (
        out.code == code
        and len(lines) == 1
        and lines[0].startswith("ftc")
        and all(n.lower() in lines[0].lower() for n in names)
    ):
        return "clear"
    return "unclear"


def refused(out: Outcome, *names: str, code: int = 2, case: str | None = None) -> str:
    """Assert the outcome is clear: exit ``code``, one ``ftc`` line on stderr naming each of ``names``."""
    kind = classify(out, names, code)
    TALLY[kind] += 1
    CASES.append((case or _current_test(), kind))
    assert kind == "clear", (
        f"{kind}: exit {out.code}, want {code}; stderr lines {out.err_lines!r} should be one line naming "
        f"{names!r}; stdout {out.out[-500:]!r}; escaped {out.escaped!r}"
    )
    return out.err_lines[0]


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Files:
    """The sha256 of every file under some roots (recursively), to prove a command changed none of them."""

    def __init__(self, *roots: Path) -> None:
        self.roots = roots
        self.before = self._hash()

    def _hash(self) -> dict[Path, str]:
        found: dict[Path, str] = {}
        for root in self.roots:
            paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
            for p in paths:
                if not p.is_symlink():
                    found[p] = sha256(p)
        return found

    def changed(self) -> list[str]:
        now = self._hash()
        return [
            f"{p}: {'deleted' if p not in now else 'changed'}"
            for p, digest in self.before.items()
            if now.get(p) != digest
        ]

    def created(self) -> list[Path]:
        return sorted(set(self._hash()) - set(self.before))

    def assert_unchanged(self, *, no_new_files: bool = False) -> None:
        changed = self.changed()
        assert not changed, f"files that existed before were changed or lost: {changed}"
        if no_new_files:
            new = self.created()
            assert not new, f"files created by a refused command: {new}"
