"""The data tests as a gate before training: every failing or warning test is shown, a FAIL stops the run.

The report is the one the preparation wrote (``data/report.json`` of the session, or of ``[data]
dir``). Each test that warns or fails becomes one LogRecorded event (level warning or error), so
``ftc train``'s plain output and the console's event log show it. A FAIL refuses the run before
step 1 with one line naming the test, its figure and the fix, unless ``[data] on_fail = "warn"``
(``ftc train --allow-failing-checks``).

One failure is settled by the preparation itself: the ``order`` test looks at the raw file, and a
preparation shuffles the rows into its shards. When the same report's ``shard_order`` test passes,
a sorted source file cannot reach training, so its FAIL is shown as a warning that says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import protocol
from engine.errors import DataError

REPORT = "report.json"
OVERRIDE = 'train anyway with [data] on_fail = "warn" (or ftc train --allow-failing-checks)'
# raw-file test -> the test on the prepared shards that decides whether its failure reaches training
SETTLED_BY_PREPARATION = {"order": "shard_order"}


def read_report(folder: Path) -> dict[str, Any] | None:
    """The data-test report of a prepared folder; None when it has none; DataError when it is damaged."""
    path = folder / REPORT
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        raise DataError(
            f"{path}: the data-test report cannot be read ({exc}); prepare the data again"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        raise DataError(f"{path}: not a data-test report (no list of tests); prepare the data again")
    return doc


# The data code advises in the command line's words; a run configuration's are these.
_FLAG = re.compile(
    r"(?:ftc prepare )?--(text-col|label-col|encoding|format|key|dedupe|split|shard-rows)\b(?: ([\w.,-]+))?"
)


def config_words(text: str) -> str:
    """Command-line advice ('--encoding latin-1', 'ftc prepare --dedupe') as config.toml's [data] keys."""

    def field(m: re.Match[str]) -> str:
        key = "[data] " + m.group(1).replace("-", "_")
        if m.group(1) == "dedupe":
            return f"{key} = true"
        if m.group(1) == "split" and m.group(2):
            return f"{key} = [{', '.join(m.group(2).split(','))}]"
        return f'{key} = "{m.group(2)}"' if m.group(2) else key

    return _FLAG.sub(field, text)


def _line(test: dict[str, Any], verdict: str, in_config: bool = False) -> str:
    figure = " ".join(str(test.get("figure", "")).split())
    advice = " ".join(str(test.get("advice", "")).split())
    if in_config:
        figure, advice = config_words(figure), config_words(advice)
    return f"data test {test.get('name', '?')} {verdict}: {figure}" + (f"; {advice}" if advice else "")


def check(
    folder: Path, on_fail: str, emit: Callable[[protocol._Body], Any], *, in_config: bool = False
) -> list[str]:
    """Show each test of the folder's report that warns or fails; DataError for a FAIL unless on_fail is warn.

    Returns the names of the failing tests (trained past when ``on_fail == "warn"``). With
    ``in_config`` (the run prepared ``[data] source`` itself) the advice names config.toml's keys.
    """
    doc = read_report(folder)
    if doc is None:
        emit(
            protocol.LogRecorded(
                level="warning",
                text=f"{folder / REPORT}: no data-test report, so the data tests were not run on this "
                "data; 'ftc check' or 'ftc prepare' runs them",
            )
        )
        return []
    tests = [t for t in doc["tests"] if isinstance(t, dict)]
    status = {str(t.get("name")): str(t.get("status")) for t in tests}
    failing: list[dict[str, Any]] = []
    for test in tests:
        name, result = str(test.get("name")), str(test.get("status"))
        if result == "warn":
            emit(protocol.LogRecorded(level="warning", text=_line(test, "WARN", in_config)))
        elif result == "fail" and status.get(SETTLED_BY_PREPARATION.get(name, ""), "") == "pass":
            settled = SETTLED_BY_PREPARATION[name]
            text = _line(test, "FAIL in the source file", in_config) + (
                f"; the preparation shuffled the rows and {settled} passes, so training is not affected"
            )
            emit(protocol.LogRecorded(level="warning", text=text))
        elif result == "fail":
            emit(protocol.LogRecorded(level="error", text=_line(test, "FAIL", in_config)))
            failing.append(test)
    names = [str(t.get("name")) for t in failing]
    if not failing:
        return []
    if on_fail == "warn":
        emit(
            protocol.LogRecorded(
                level="warning",
                text=f"{len(failing)} data test(s) failed ({', '.join(names)}); training anyway "
                'because [data] on_fail = "warn"',
            )
        )
        return names
    first = failing[0]
    more = f" (and {len(names) - 1} more: {', '.join(names[1:])})" if len(names) > 1 else ""
    raise DataError(
        f"{_line(first, 'failed', in_config)}{more}; fix the data and prepare again, or {OVERRIDE}"
    )
