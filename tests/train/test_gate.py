"""The data tests are a gate: every warning and failure is shown, and a FAIL stops training before step 1."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest

from engine import protocol
from engine.errors import DataError
from engine.journal import read_all
from engine.session import SessionPaths, list_sessions, read_state
from engine.train import gate
from engine.train.config import parse_config, semantic_changes
from tests.robustness.harness import ftc
from tests.support.tiny import LABEL_WORDS, synthetic_texts


def _test(name: str, status: str, figure: str = "a figure", advice: str = "some advice") -> dict[str, Any]:
    return {"name": name, "status": status, "figure": figure, "value": None, "advice": advice}


def _report(folder: Path, *tests: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    status = "fail" if any(t["status"] == "fail" for t in tests) else "pass"
    (folder / "report.json").write_text(json.dumps({"version": 1, "status": status, "tests": list(tests)}))
    return folder


def _logs(events: list[Any]) -> list[tuple[str, str]]:
    return [(e.level, e.text) for e in events if isinstance(e, protocol.LogRecorded)]


def test_each_warning_and_failure_is_shown_and_a_fail_refuses_in_one_line(tmp_path: Path) -> None:
    folder = _report(
        tmp_path,
        _test("rejected_rows", "pass"),
        _test("duplicates", "warn", "12 rows repeat an earlier text (2.5%)", "drop duplicates"),
        _test("encoding_artifacts", "fail", "40 rows with mojibake\n(e.g. 'Ã©')", "read it as cp1252"),
        _test("token_lengths", "fail", "100.0% over 32", "raise max_length"),
    )
    events: list[Any] = []
    with pytest.raises(DataError) as err:
        gate.check(folder, "fail", events.append)
    text = str(err.value)
    assert "\n" not in text
    # the test, its figure, the fix, the others, and how to train anyway
    for part in ("encoding_artifacts failed: 40 rows with mojibake (e.g. 'Ã©')", "read it as cp1252"):
        assert part in text
    assert "and 1 more: token_lengths" in text
    assert 'on_fail = "warn"' in text and "--allow-failing-checks" in text
    assert _logs(events) == [
        ("warning", "data test duplicates WARN: 12 rows repeat an earlier text (2.5%); drop duplicates"),
        ("error", "data test encoding_artifacts FAIL: 40 rows with mojibake (e.g. 'Ã©'); read it as cp1252"),
        ("error", "data test token_lengths FAIL: 100.0% over 32; raise max_length"),
    ]


def test_on_fail_warn_shows_the_failures_and_trains_past_them(tmp_path: Path) -> None:
    folder = _report(
        tmp_path, _test("token_lengths", "fail", "100.0% over 32"), _test("label_balance", "pass")
    )
    events: list[Any] = []
    assert gate.check(folder, "warn", events.append) == ["token_lengths"]
    levels = [level for level, _ in _logs(events)]
    assert levels == ["error", "warning"]
    assert 'training anyway because [data] on_fail = "warn"' in _logs(events)[-1][1]


@pytest.mark.parametrize(("shards", "refused"), [("pass", False), ("fail", True)])
def test_a_sorted_source_is_settled_by_shuffled_shards(tmp_path: Path, shards: str, refused: bool) -> None:
    """The raw file's order FAILs; what training reads is the shuffled shards, which shard_order judges."""
    folder = _report(
        tmp_path, _test("order", "fail", "3 label runs vs 151 expected"), _test("shard_order", shards)
    )
    events: list[Any] = []
    if refused:
        with pytest.raises(DataError, match="data test order failed: 3 label runs"):
            gate.check(folder, "fail", events.append)
        return
    assert gate.check(folder, "fail", events.append) == []
    ((level, text),) = _logs(events)
    assert level == "warning" and "order FAIL in the source file" in text and "shard_order passes" in text


def test_a_missing_report_is_a_warning_and_a_damaged_one_a_one_line_error(tmp_path: Path) -> None:
    events: list[Any] = []
    assert gate.check(tmp_path, "fail", events.append) == []
    ((level, text),) = _logs(events)
    assert level == "warning" and "report.json: no data-test report" in text
    (tmp_path / "report.json").write_text('{"tests": [')
    with pytest.raises(
        DataError, match=r"report.json: the data-test report cannot be read .*prepare the data"
    ):
        gate.check(tmp_path, "fail", events.append)
    (tmp_path / "report.json").write_text("[]")
    with pytest.raises(DataError, match="not a data-test report"):
        gate.check(tmp_path, "fail", events.append)


def test_on_fail_is_not_part_of_what_a_resume_compares() -> None:
    base = {"model": {"source": "m"}, "data": {"dir": "d"}}
    strict = parse_config(base)
    lenient = parse_config({**base, "data": {"dir": "d", "on_fail": "warn"}})
    assert strict.data.on_fail == "fail" and lenient.data.on_fail == "warn"
    assert strict.fingerprint() == lenient.fingerprint()
    assert semantic_changes(strict.semantic(), lenient.semantic()) == []


# ---------------------------------------------------------------- a real engine


def _conflicting_csv(path: Path) -> Path:
    """Learnable reviews in random order, plus 12 texts labelled both ways (a conflicting_labels FAIL)."""
    labels = list(LABEL_WORDS)[:2]
    rows = [(text, labels[label]) for text, label in synthetic_texts(300, labels, seed=5)]
    rows += [(f"same words twice over number {i}", lab) for i in range(12) for lab in labels]
    random.Random(0).shuffle(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def _config(tmp_path: Path, model: Path, data: Path) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(
        f'[model]\nsource = "{model}"\n\n[data]\nsource = "{data}"\nshard_rows = 100\n\n'
        "[train]\nmax_steps = 2\nbatch_size = 8\nmax_length = 32\ncheckpoint_every_minutes = 60.0\n"
    )
    return path


def _events(sessions: Path) -> tuple[SessionPaths, list[Any]]:
    (session,) = list_sessions(sessions)
    paths = SessionPaths(session.path)
    return paths, read_all(paths.events)


async def test_a_failing_data_test_stops_the_run_before_step_1(tiny_tf: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, tiny_tf, _conflicting_csv(tmp_path / "reviews.csv"))
    sessions = tmp_path / "sessions"
    out = ftc("--sessions-dir", str(sessions), "train", str(config))
    assert out.code == 1, out.out[-2000:] + out.err
    paths, events = _events(sessions)
    kinds = [e.type for e in events]
    assert "step_ended" not in kinds and "checkpoint_saved" not in kinds
    (failed,) = [e.body for e in events if e.type == "job_failed"]
    assert failed.step == 0 and failed.error_name == "DataError" and "\n" not in failed.error_text
    assert failed.error_text.startswith(
        "data test conflicting_labels failed: 12 texts carry different labels"
    )
    assert "--allow-failing-checks" in failed.error_text
    errors = [e.body.text for e in events if e.type == "log_recorded" and e.body.level == "error"]
    assert any(t.startswith("data test conflicting_labels FAIL") for t in errors), errors
    assert "error: data test conflicting_labels FAIL: 12 texts" in out.out  # what `ftc train` printed
    assert read_state(paths)["status"] == "failed"
    await _the_monitor_shows(sessions, paths, "data test conflicting_labels FAIL")


async def _the_monitor_shows(sessions: Path, paths: SessionPaths, needle: str) -> None:
    """The console's event log has the line, in red: an error a person should not miss."""
    from tui.app import FtcApp
    from tui.screens.monitor import MonitorScreen
    from tui.widgets.eventlog import EventLog

    app = FtcApp(sessions, attach=paths.id)
    async with app.run_test(size=(160, 40)) as pilot:
        for _ in range(150):
            screen = app.screen
            if isinstance(screen, MonitorScreen) and screen.feed.events_seen == len(read_all(paths.events)):
                break
            await pilot.pause(0.1)
        assert isinstance(app.screen, MonitorScreen)
        log = app.screen.query_one(EventLog)
        await pilot.pause(0.2)
        lines = [line for line in log.lines if needle in line.plain]
        assert lines, log.shown()
        styles = {str(s.style) for s in lines[0].spans} | {str(lines[0].style)}
        assert any("red" in style for style in styles), styles


def test_allow_failing_checks_trains_past_a_failing_data_test(tiny_tf: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, tiny_tf, _conflicting_csv(tmp_path / "reviews.csv"))
    sessions = tmp_path / "sessions"
    out = ftc("--sessions-dir", str(sessions), "train", str(config), "--allow-failing-checks")
    assert out.code == 0, out.out[-2000:] + out.err
    paths, events = _events(sessions)
    assert 'on_fail = "warn"' in paths.config.read_text()
    logs = [(e.body.level, e.body.text) for e in events if e.type == "log_recorded"]
    assert any(lvl == "error" and t.startswith("data test conflicting_labels FAIL") for lvl, t in logs), logs
    assert any("training anyway" in t for _, t in logs), logs
    assert [e.body.step for e in events if e.type == "step_ended"] == [1, 2]
    assert "warning: " in out.out and read_state(paths)["status"] == "finished"


def test_advice_for_a_source_the_run_prepared_names_config_keys_not_flags(tmp_path: Path) -> None:
    folder = _report(
        tmp_path,
        _test(
            "leakage",
            "fail",
            "9 test rows also occur in train",
            "deduplicate before splitting (ftc prepare --dedupe)",
        ),
        _test("encoding_artifacts", "warn", "3 rows with mojibake", "try another --encoding (now utf-8)"),
    )
    events: list[Any] = []
    with pytest.raises(DataError, match=r"deduplicate before splitting \(\[data\] dedupe = true\)"):
        gate.check(folder, "fail", events.append, in_config=True)
    assert any("try another [data] encoding (now utf-8)" in text for _, text in _logs(events))
    events.clear()
    with pytest.raises(DataError, match=r"\(ftc prepare --dedupe\)"):  # a folder ftc prepare made: its words
        gate.check(folder, "fail", events.append)
