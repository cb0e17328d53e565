"""How many texts were cut to max_length: counted once per row, printed, and in the output's metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import protocol
from engine.predict import writer as writer_module
from engine.predict.writer import read_cursor, read_metadata
from tests.predict.conftest import run_job, texts, write_csv

MAX_LENGTH = 12


def _logs(events: list[Any]) -> list[str]:
    return [e.text for e in events if isinstance(e, protocol.LogRecorded)]


@pytest.fixture(scope="module")
def long_and_short(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """An input where some texts are longer than MAX_LENGTH tokens, some exactly that long, and the
    expected count of truncated ones, from the tokenizer itself without truncation."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_classifier))
    rows: list[str | None] = []
    for i, t in enumerate(texts(90, seed=11)):
        rows.append(" ".join([t] * (1 + i % 4)))  # 1 to 4 copies: short and long texts in every chunk
    rows += [None, "   "]  # flagged rows are never counted
    exact = next(
        t
        for t in (" ".join(x.split()[:n]) for x in texts(40, seed=2) for n in range(1, 12))
        if len(tok(t)["input_ids"]) == MAX_LENGTH
    )
    rows.append(exact)  # exactly max_length tokens: not truncated
    expected = sum(len(tok(t)["input_ids"]) > MAX_LENGTH for t in rows if t and t.strip())
    assert 0 < expected < 90
    folder = tmp_path_factory.mktemp("trunc")
    return write_csv(folder / "in.csv", rows), expected


def test_truncated_texts_are_counted_printed_and_recorded(
    tiny_classifier: Path, long_and_short: tuple[Path, int], tmp_path: Path
) -> None:
    inp, expected = long_and_short
    out = tmp_path / "out.h5"
    events = run_job(tiny_classifier, inp, out, max_length=MAX_LENGTH)
    meta = read_metadata(out)
    assert meta["truncated"] == expected and meta["settings"]["max_length"] == MAX_LENGTH
    assert read_cursor(out)["summary"]["truncated"] == expected  # type: ignore[index]
    lines = [t for t in _logs(events) if "truncated" in t]
    assert lines == [
        f"{expected:,} of 93 texts ({expected / 93:.1%}) were longer than max_length {MAX_LENGTH} tokens "
        "and were truncated (recorded as 'truncated' in the output's metadata)"
    ], _logs(events)


class _Killed(BaseException):
    """Stands for a kill -9 at a fault point, in this process."""


def _die_at(point: str, n: int) -> Any:
    passes = {"n": 0}

    def fault(name: str, step: int | None = None) -> None:
        if name == point:
            passes["n"] += 1
            if passes["n"] == n:
                raise _Killed(point)

    return fault


def test_a_resumed_run_counts_each_row_once(
    tiny_classifier: Path, long_and_short: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp, expected = long_and_short
    whole, parts = tmp_path / "whole.h5", tmp_path / "parts.h5"
    run_job(tiny_classifier, inp, whole, max_length=MAX_LENGTH)
    run_job(tiny_classifier, inp, parts, stop_at=20, max_length=MAX_LENGTH)
    assert read_metadata(parts)["truncated"] < expected, "stopped before every long text was seen"
    # Then "killed" with a chunk flushed but the cursor not yet past it: the file's metadata already
    # counts that chunk's long texts, the cursor does not; the resume must not count them twice.
    with monkeypatch.context() as m:
        m.setattr(writer_module, "fault", _die_at("predict_flushed", 2))
        with pytest.raises(_Killed):
            run_job(tiny_classifier, inp, parts, resume=True, max_length=MAX_LENGTH)
    cursor = read_cursor(parts)
    assert cursor is not None and cursor["rows"] == 40
    assert read_metadata(parts)["truncated"] > cursor["truncated"], "the file counts the uncommitted chunk"
    run_job(tiny_classifier, inp, parts, resume=True, max_length=MAX_LENGTH)
    assert read_metadata(parts) == read_metadata(whole)
    assert read_metadata(parts)["truncated"] == expected


def test_no_truncation_is_said_too(tiny_classifier: Path, tmp_path: Path) -> None:
    inp = write_csv(tmp_path / "in.csv", texts(10, seed=3))
    events = run_job(tiny_classifier, inp, tmp_path / "out.h5")
    assert read_metadata(tmp_path / "out.h5")["truncated"] == 0
    assert any("none truncated" in t for t in _logs(events)), _logs(events)
