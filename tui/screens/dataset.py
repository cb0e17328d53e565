"""The dataset screen: page through a data file, map its columns, see histograms and the data tests.

Nothing here loads a file whole: the preview reads one page at a time through
``engine.data.readers.read_page`` (a sparse row index makes any page cheap), and the data
tests run in a worker thread that posts its progress and results back. Only pandas-free,
TensorFlow-free engine modules are imported, and only when the screen is used.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Header, Label, Select, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from tui import keymap
from tui.live import while_shown
from tui.widgets.footer import KeyFooter

STATUS_STYLE = {"pass": "bold green", "warn": "bold yellow", "fail": "bold red"}
CELL_CHARS = 120  # long texts are cut in the preview; the row number finds the full text
BAR_WIDTH = 40
ENCODINGS = ("utf-8", "auto", "latin-1")


@dataclass
class SourceOpened(Message):
    """The file was opened: format, encoding and columns are known."""

    source: Any


@dataclass
class PageLoaded(Message):
    """A page of rows for the preview."""

    page: Any


@dataclass
class RowsCounted(Message):
    """The file's number of data rows is known (the row index is complete)."""

    total: int


@dataclass
class ChecksProgressed(Message):
    """The data tests advanced (fraction of the file read)."""

    stage: str
    done: int
    fraction: float | None
    run: int = 0


@dataclass
class ChecksFinished(Message):
    """The data-test report is ready."""

    report: dict[str, Any]
    run: int = 0


@dataclass
class OffendingLoaded(Message):
    """The rows a test pointed at, read from the file."""

    test: str
    rows: list[tuple[int, list[str]]]


@dataclass
class DataFailed(Message):
    """Reading failed with a one-sentence reason (bad encoding, missing column, ...)."""

    text: str
    run: int | None = None  # the data-test run that failed, when it was one


class _ChecksCancelled(Exception):
    """Raised inside the scan when its worker was cancelled (remap, re-run, screen closed)."""


class DatasetScreen(Screen[None]):
    """Inspect one data file before training on it."""

    DEFAULT_CSS = """
    DatasetScreen #ds-info { height: 1; padding: 0 1; color: $text-muted; }
    DatasetScreen #ds-mapping { height: 3; }
    DatasetScreen #ds-mapping Label { padding: 1 1 0 1; }
    DatasetScreen #ds-mapping Select { width: 1fr; }
    DatasetScreen TabbedContent { height: 1fr; }
    DatasetScreen TabPane { height: 1fr; padding: 0; }
    DatasetScreen #ds-status { height: auto; max-height: 3; padding: 0 1; }
    DatasetScreen #ds-tests { height: 1fr; min-height: 5; }
    DatasetScreen #ds-detail { height: auto; max-height: 4; padding: 0 1; }
    DatasetScreen #ds-offending { height: 1fr; min-height: 3; }
    DatasetScreen #ds-rows { height: 1fr; }
    """

    KEYMAP = keymap.DATASET
    BINDINGS = keymap.bindings(KEYMAP)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        text_col: str | None = None,
        label_col: str | None = None,
        encoding: str | None = None,
        fmt: str | None = None,
        hdf_key: str | None = None,
        tokenizer: str | None = None,
        max_length: int = 128,
        index_dir: str | os.PathLike[str] | None = None,
        page_rows: int = 20,
    ) -> None:
        super().__init__()
        self.path = str(path)
        self.options: dict[str, Any] = {
            "text_col": text_col,
            "label_col": label_col,
            "encoding": encoding,
            "fmt": fmt,
            "hdf_key": hdf_key,
        }
        self.tokenizer, self.max_length = tokenizer, max_length
        self.index_dir = index_dir
        self.page_rows = page_rows
        self.source: Any = None
        self.start_row = 1
        self.total_rows: int | None = None
        self.report: dict[str, Any] | None = None
        self._mapping_ready = False
        self._want_last_page = False
        # Bumped whenever a data-test run is started or superseded; older runs' messages are ignored.
        self._checks_run = 0

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"{self.path}: opening…", id="ds-info")
        with Horizontal(id="ds-mapping"):
            yield Label("text")
            yield Select[str]([], id="ds-text", allow_blank=True, prompt="text column")
            yield Label("label")
            yield Select[str]([], id="ds-label", allow_blank=True, prompt="label column")
        with TabbedContent(initial="ds-tab-tests"):
            with TabPane("Tests", id="ds-tab-tests"):
                yield DataTable(id="ds-tests", cursor_type="row", zebra_stripes=True)
                yield Static("", id="ds-detail")
                yield DataTable(id="ds-offending", cursor_type="row")
            with TabPane("Preview", id="ds-tab-preview"):
                yield DataTable(id="ds-rows", cursor_type="row", zebra_stripes=True)
            with TabPane("Histograms", id="ds-tab-hist"), VerticalScroll():
                yield Static("", id="ds-hist-labels")
                yield Static("", id="ds-hist-lengths")
        yield Static("", id="ds-status")
        yield KeyFooter(self.KEYMAP)

    def on_mount(self) -> None:
        self.title = "ftc · dataset"
        self.sub_title = Path(self.path).name
        tests = self.query_one("#ds-tests", DataTable)
        tests.add_columns("status", "test", "figure")
        tests.focus()  # the test table is what a person reads first; arrows move through the tests
        self.query_one("#ds-offending", DataTable).display = False
        self._open()

    # ------------------------------------------------------------ workers (never on the UI thread)

    def _open(self) -> None:
        self._cancel_checks()  # its report would describe the old mapping or encoding
        self._set_status("opening…")
        self._open_worker(dict(self.options))

    def _cancel_checks(self) -> None:
        self._checks_run += 1
        self.workers.cancel_group(self, "checks")

    @work(thread=True, exclusive=True, group="open")
    def _open_worker(self, options: dict[str, Any]) -> None:
        from engine.data.errors import DataError
        from engine.data.readers import open_source

        worker = get_current_worker()
        try:
            source = open_source(self.path, **options)
        except (DataError, OSError) as exc:
            if not worker.is_cancelled:
                self.post_message(DataFailed(str(exc)))
            return
        if not worker.is_cancelled:  # a newer open (remap, encoding) replaced this one
            self.post_message(SourceOpened(source))

    @work(thread=True, exclusive=True, group="page")
    def _load_page(self, start_row: int) -> None:
        from engine.data.errors import DataError
        from engine.data.readers import read_page

        try:
            page = read_page(self.source, start_row, self.page_rows, index_dir=self.index_dir)
        except (DataError, OSError) as exc:
            self.post_message(DataFailed(str(exc)))
            return
        self.post_message(PageLoaded(page))

    @work(thread=True, exclusive=True, group="count")
    def _count_rows(self) -> None:
        from engine.data.errors import DataError
        from engine.data.readers import count_rows

        try:
            total = count_rows(self.source, index_dir=self.index_dir)
        except (DataError, OSError) as exc:
            self.post_message(DataFailed(str(exc)))
            return
        self.post_message(RowsCounted(total))

    @work(thread=True, exclusive=True, group="checks")
    def _checks_worker(self, source: Any, run: int) -> None:
        from engine.data.errors import DataError
        from engine.data.scan import report, scan

        worker = get_current_worker()

        def progress(stage: str, done: int, total: int | None, fraction: float | None) -> None:
            # A thread cannot be killed: the scan stops itself at the next chunk once cancelled.
            if worker.is_cancelled:
                raise _ChecksCancelled
            self.post_message(ChecksProgressed(stage, done, fraction, run))

        try:
            result = scan(
                source,
                rejects_path=None,
                tokenizer=self.tokenizer,
                max_length=self.max_length,
                on_chunk=progress,
            )
        except _ChecksCancelled:
            return
        except (DataError, OSError) as exc:
            self.post_message(DataFailed(str(exc), run))
            return
        if not worker.is_cancelled:
            self.post_message(ChecksFinished(report(result), run))

    @work(thread=True, exclusive=True, group="offending")
    def _offending_worker(self, test: str, rows: list[int]) -> None:
        from engine.data.errors import DataError
        from engine.data.readers import read_rows

        try:
            found = read_rows(self.source, rows, index_dir=self.index_dir)
        except (DataError, OSError) as exc:
            self.post_message(DataFailed(str(exc)))
            return
        self.post_message(OffendingLoaded(test, found))

    # ------------------------------------------------------------ messages from the workers

    @on(SourceOpened)
    @while_shown
    def _source_opened(self, message: SourceOpened) -> None:
        src = self.source = message.source
        enc = src.encoding or "binary"
        if src.encoding_note:
            enc += " (detected)"
        self.query_one("#ds-info", Static).update(
            f"{Path(src.path).name} · {src.format} · {enc} · {src.size:,} bytes"
        )
        self._mapping_ready = False
        choices = [(c, c) for c in src.columns]
        for sel_id, value in (("#ds-text", src.text_col), ("#ds-label", src.label_col)):
            select = self.query_one(sel_id, Select)
            select.set_options(choices)
            select.value = value
        self.call_after_refresh(self._enable_mapping)
        rows = self.query_one("#ds-rows", DataTable)
        rows.clear(columns=True)
        rows.add_columns("row", *src.columns)
        self.total_rows = src.n_rows
        self._load_page(self.start_row)
        self._count_rows()
        self.action_run_checks()

    def _enable_mapping(self) -> None:
        self._mapping_ready = True

    @on(PageLoaded)
    @while_shown
    def _page_loaded(self, message: PageLoaded) -> None:
        page = message.page
        if page.total_rows is not None:
            self.total_rows = page.total_rows
        table = self.query_one("#ds-rows", DataTable)
        table.clear()
        for row, cells in page.rows:
            table.add_row(Text(f"{row:,}", style="dim"), *(_cut(c) for c in cells), key=str(row))
        self.start_row = page.start_row
        self._show_position(len(page.rows))

    @on(RowsCounted)
    @while_shown
    def _rows_counted(self, message: RowsCounted) -> None:
        self.total_rows = message.total
        self._show_position(self.query_one("#ds-rows", DataTable).row_count)
        if self._want_last_page:
            self._want_last_page = False
            self.action_last_page()

    @on(ChecksProgressed)
    @while_shown
    def _checks_progressed(self, message: ChecksProgressed) -> None:
        if message.run != self._checks_run:
            return
        pct = f" {message.fraction:.0%}" if message.fraction is not None else ""
        self._set_status(f"running data tests… {message.done:,} rows{pct}")

    @on(ChecksFinished)
    @while_shown
    def _checks_finished(self, message: ChecksFinished) -> None:
        if message.run != self._checks_run:
            return  # a superseded run (the mapping or encoding changed since it started)
        self.report = doc = message.report
        table = self.query_one("#ds-tests", DataTable)
        table.clear()
        for test in doc["tests"]:
            status = test["status"]
            table.add_row(
                Text(status.upper(), style=STATUS_STYLE[status]),
                test["name"],
                test["figure"],
                key=test["name"],
            )
        rows = doc["rows"]
        word = Text(doc["status"].upper(), style=STATUS_STYLE[doc["status"]])
        self._set_status(
            Text.assemble(
                "data tests: ", word, f" · {rows['read']:,} rows, {rows['rejected']:,} rejected · o: rows"
            )
        )
        self._show_histograms(doc)
        self._show_detail()

    @on(OffendingLoaded)
    @while_shown
    def _offending_loaded(self, message: OffendingLoaded) -> None:
        table = self.query_one("#ds-offending", DataTable)
        table.clear(columns=True)
        columns = self.source.columns if self.source else []
        table.add_columns("row", *columns)
        for row, cells in message.rows:
            table.add_row(Text(f"{row:,}", style="dim"), *(_cut(c) for c in cells))
        table.display = True
        table.border_title = f"offending rows of {message.test} ({len(message.rows)})"
        self._set_status(f"{message.test}: {len(message.rows)} offending rows shown")

    @on(DataFailed)
    @while_shown
    def _data_failed(self, message: DataFailed) -> None:
        if message.run is not None and message.run != self._checks_run:
            return
        # The file name is in the title; the full path would push the row and offset off an 80-column line.
        text = message.text.replace(self.path, Path(self.path).name)
        self._set_status(Text(text + "  (e: try another encoding)", style="bold red"))

    # ------------------------------------------------------------ user actions

    @on(Select.Changed)
    def _mapping_changed(self, event: Select.Changed) -> None:
        # set_options blanks a select before its value is set again: that is not the user's choice.
        if not self._mapping_ready or self.source is None or event.value is Select.NULL:
            return
        key = "text_col" if event.select.id == "ds-text" else "label_col"
        if getattr(self.source, key) == event.value:
            return
        self.options[key] = str(event.value)
        other = "label_col" if key == "text_col" else "text_col"
        self.options[other] = getattr(self.source, other)
        self._open()

    @on(DataTable.RowHighlighted, "#ds-tests")
    def _test_highlighted(self) -> None:
        self._show_detail()

    def action_page(self, direction: int) -> None:
        if self.source is None:
            return
        start = max(1, self.start_row + direction * self.page_rows)
        if self.total_rows is not None:
            start = min(start, max(1, self.total_rows - self.page_rows + 1))
        self._load_page(start)

    def action_first_page(self) -> None:
        if self.source is not None:
            self._load_page(1)

    def action_last_page(self) -> None:
        if self.source is None:
            return
        if self.total_rows is None:
            self._want_last_page = True
            self._set_status("counting rows to find the end…")
            return
        self._load_page(max(1, self.total_rows - self.page_rows + 1))

    def action_run_checks(self) -> None:
        if self.source is None:
            return
        self.query_one("#ds-tests", DataTable).clear()
        self._set_status("running data tests…")
        self._cancel_checks()
        self._checks_worker(self.source, self._checks_run)

    def action_offending(self) -> None:
        test = self._selected_test()
        if test is None or self.source is None:
            return
        if not test["offending_rows"]:
            self._set_status(f"{test['name']}: no offending rows")
            return
        self.query_one(TabbedContent).active = "ds-tab-tests"
        self._offending_worker(test["name"], test["offending_rows"])

    def action_next_encoding(self) -> None:
        current = self.options.get("encoding") or "utf-8"
        nxt = ENCODINGS[(ENCODINGS.index(current) + 1) % len(ENCODINGS)] if current in ENCODINGS else "auto"
        self.options["encoding"] = nxt
        self._set_status(f"encoding: {nxt}")
        self._open()

    def action_next_tab(self) -> None:
        tabs = self.query_one(TabbedContent)
        order = ["ds-tab-tests", "ds-tab-preview", "ds-tab-hist"]
        tabs.active = order[(order.index(tabs.active) + 1) % len(order)] if tabs.active in order else order[0]
        focus = {"ds-tab-tests": "#ds-tests", "ds-tab-preview": "#ds-rows"}.get(tabs.active)
        if focus:
            self.query_one(focus).focus()

    # ------------------------------------------------------------ helpers

    def _selected_test(self) -> dict[str, Any] | None:
        if not self.report:
            return None
        table = self.query_one("#ds-tests", DataTable)
        if not table.row_count:
            return None
        index = min(max(table.cursor_row, 0), len(self.report["tests"]) - 1)
        test: dict[str, Any] = self.report["tests"][index]
        return test

    def _show_detail(self) -> None:
        test = self._selected_test()
        detail = self.query_one("#ds-detail", Static)
        if test is None:
            detail.update("")
            return
        rows = test["offending_rows"]
        more = f"; {len(rows)} offending rows (o to show)" if rows else ""
        detail.update(
            Text.assemble((test["name"], "bold"), f": {test['figure']}\n", f"→ {test['advice']}{more}")
        )

    def _show_position(self, shown: int) -> None:
        total = f"{self.total_rows:,}" if self.total_rows is not None else "?"
        end = self.start_row + max(shown, 1) - 1
        tabs = self.query_one(TabbedContent)
        tab = tabs.get_tab("ds-tab-preview")
        tab.label = f"Preview {self.start_row:,}-{end:,}/{total}"

    def _show_histograms(self, doc: dict[str, Any]) -> None:
        labels = doc["label_counts"]
        self.query_one("#ds-hist-labels", Static).update(_bars("labels", list(labels.items())))
        lengths = doc["text_lengths"]
        edges = lengths["edges"]
        names = [f"{a}-{b - 1}" if b < edges[-1] else f"{a}+" for a, b in itertools.pairwise(edges)]
        title = f"text length in characters (median {lengths['p50']}, p95 {lengths['p95']})"
        self.query_one("#ds-hist-lengths", Static).update(
            _bars(title, list(zip(names, lengths["counts"], strict=True)))
        )

    def _set_status(self, text: str | Text) -> None:
        self.query_one("#ds-status", Static).update(text)


def _cut(value: str) -> str:
    flat = value.replace("\r", " ").replace("\n", " ")
    return flat if len(flat) <= CELL_CHARS else flat[: CELL_CHARS - 1] + "…"


def _bars(title: str, items: list[tuple[str, int]]) -> Text:
    """A horizontal bar chart in plain text: readable over SSH, at any size, without a plot library."""
    out = Text(f"{title}\n", style="bold")
    peak = max((n for _, n in items), default=0) or 1
    width = max((len(name) for name, _ in items), default=0)
    total = sum(n for _, n in items) or 1
    for name, n in items:
        bar = "█" * max(1 if n else 0, round(BAR_WIDTH * n / peak))
        out.append(f"{name:>{width}} ")
        out.append(bar, style="cyan")
        out.append(f" {n:,} ({n / total:.1%})\n")
    return out
