"""The corpus's tally, printed after the run: how many bad inputs gave a clear one-line refusal."""

from __future__ import annotations

from typing import Any

from tests.robustness.harness import CASES, TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not CASES:
        return
    kinds = ("clear", "unclear", "traceback", "silent")
    terminalreporter.write_line(
        "robustness corpus: " + ", ".join(f"{TALLY[k]} {k}" for k in kinds) + f" ({len(CASES)} cases)"
    )
    for case, kind in CASES:
        if kind != "clear":
            terminalreporter.write_line(f"  {kind}: {case}")
