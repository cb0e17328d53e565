"""The error-analysis screen: an evaluation's misclassified examples, and the likely label noise.

It reads an evaluation's per-example predictions (engine.train.examples) and shows the
misclassified examples, or one confusion cell's, with their text, true and predicted labels and
the probability of each, sorted by the model's confidence. The texts come from the session's
prepared shards a page at a time (only the rows shown, only their shards), so a 1M-row split
opens at once; a search scans them page after page. The second list, likely label noise, is the
training examples the final model disagrees with, by loss (the cleanlab idea); either list can be
exported as CSV.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Resize
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Header, Input, Label, Static

from tui import keymap
from tui.live import on_stack, while_shown
from tui.screens.log import TextScreen
from tui.widgets.confirm import ask
from tui.widgets.footer import KeyFooter

PAGE = 100  # rows read and shown at a time; the next page loads as the cursor nears the end
SCAN = 1000  # texts searched per read while a search looks for a page of matches
SCAN_REPORT = 10 * SCAN  # texts searched before the count on screen is brought up to date (about 1 s)
MORE_AT = 10  # rows from the end at which the next page is fetched
LABEL_CHARS = 10
ERRORS, NOISE = "errors", "noise"


@dataclass
class ListOpened(Message):
    """A list's predictions are read (or why not) and ordered: the first page can be fetched."""

    mode: str
    source: Any  # _Source | None
    error: str | None = None


@dataclass
class PageFetched(Message):
    """The next rows of the list shown (index into the predictions, text), or why they cannot be read."""

    generation: int
    rows: list[tuple[int, str]]
    scanned: int
    done: bool
    error: str | None = None


class _Source:
    """One list's predictions, its texts and the order shown (kept off the UI thread while read)."""

    def __init__(self, preds: Any, texts: Any, session_root: Path) -> None:
        self.preds, self.texts, self.session_root = preds, texts, session_root
        self.lock = threading.Lock()


def one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


class SavePathScreen(ModalScreen[str | None]):
    """Ask for the path of a CSV file to write; dismiss with it, or None on escape."""

    KEYMAP = keymap.OPEN_FILE
    BINDINGS = keymap.bindings(KEYMAP)
    DEFAULT_CSS = """
    SavePathScreen { align: center middle; }
    SavePathScreen > Vertical {
        width: 72; height: auto; border: round $primary; background: $surface; padding: 0 1;
    }
    SavePathScreen #save-error { color: $error; height: auto; }
    """

    def __init__(self, title: str, default: str) -> None:
        super().__init__()
        self.title_text, self.default = title, default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Input(value=self.default, id="save-path")
            yield Label("", id="save-error")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if not value:
            return
        path = Path(value).expanduser()
        if path.is_dir():
            self.query_one("#save-error", Label).update(f"{path}: is a folder; give a file name")
            return
        if not path.parent.is_dir():
            self.query_one("#save-error", Label).update(f"{path.parent}: no such folder; create it first")
            return
        self.dismiss(str(path.resolve()))

    def action_cancel(self) -> None:
        self.dismiss(None)


class SearchBox(Input):
    """The search field: enter searches, escape clears the search and closes the field."""

    BINDINGS = [("escape", "close", "Close search")]

    def action_close(self) -> None:
        self.value = ""
        self.post_message(self.Submitted(self, ""))


class ErrorsScreen(Screen[None]):
    """An evaluation's misclassified examples (or one confusion cell's), and the likely label noise."""

    KEYMAP = keymap.ERRORS
    BINDINGS = keymap.bindings(KEYMAP)
    DEFAULT_CSS = """
    ErrorsScreen #errors-title { height: 1; padding: 0 1; text-style: bold; }
    ErrorsScreen #errors-summary { height: auto; padding: 0 1; color: $text-muted; }
    ErrorsScreen #errors-table { height: 1fr; }
    ErrorsScreen #errors-search { display: none; height: 1; border: none; padding: 0 1; }
    ErrorsScreen.-searching #errors-search { display: block; }
    ErrorsScreen #errors-notice { height: auto; padding: 0 1; color: $warning; }
    """

    def __init__(
        self,
        root: Path,
        session: str,
        *,
        step: int | None = None,
        split: str = "validation",
        true_label: str | None = None,
        predicted_label: str | None = None,
        predictions: str | None = None,
    ) -> None:
        super().__init__()
        self.root, self.session_id = root, session
        self.step, self.split, self.predictions = step, split, predictions
        self.cell = (true_label, predicted_label)
        self.mode = ERRORS
        self.descending = True  # most confident first
        self.search_text = ""
        self.sources: dict[str, _Source] = {}
        self.errors: dict[str, str] = {}  # a list that cannot be shown: why
        self.order: np.ndarray = np.zeros(0, np.int64)
        self.shown: list[int] = []  # indices into the predictions, in table order
        self.texts: dict[int, str] = {}
        self.scanned = 0
        self.done = False
        self.loading = False
        self.generation = 0
        self.text_chars, self._fixed = 40, 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="errors-title")
        yield Static("reading the predictions…", id="errors-summary")
        yield DataTable(id="errors-table", cursor_type="row", zebra_stripes=True)
        yield SearchBox(placeholder="search the texts: type, enter; escape clears", id="errors-search")
        yield Static("", id="errors-notice")
        yield KeyFooter(self.KEYMAP)

    def on_mount(self) -> None:
        self.query_one("#errors-notice", Static).display = False
        self.table.focus()
        self._open(ERRORS)

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#errors-table", DataTable)

    @property
    def source(self) -> _Source | None:
        return self.sources.get(self.mode)

    # ---------------------------------------------------------------- reading

    def _predictions_path(self, mode: str, session_root: Path) -> Path | None:
        from engine.train import examples

        if mode == NOISE:
            return examples.latest(session_root, "train")
        if self.predictions:
            return session_root / self.predictions
        if self.step is not None:
            return session_root / examples.relative_path(self.split, self.step)
        return examples.latest(session_root, self.split)

    @work(thread=True, group="open")
    def _open(self, mode: str) -> None:
        from engine.errors import FtcError
        from engine.session import resolve
        from engine.train import examples

        try:
            session_root = resolve(self.root, self.session_id).root
            path = self._predictions_path(mode, session_root)
            if path is None:
                why = (
                    "no likely-label-noise scores: ftc scores the training examples when a run ends "
                    "(runs before protocol 1.4 did not)"
                    if mode == NOISE
                    else f"no per-example predictions of the {self.split} split are kept in this session "
                    "(ftc keeps them since protocol 1.4); evaluate with this ftc"
                )
                self.post_message(ListOpened(mode, None, why))
                return
            preds = examples.load(path)
            texts = examples.Texts(examples.data_dir_of(preds, session_root), preds.split)
            self.post_message(ListOpened(mode, _Source(preds, texts, session_root)))
        except FtcError as exc:
            self.post_message(ListOpened(mode, None, str(exc)))
        except OSError as exc:
            from engine.errors import os_error_text

            self.post_message(ListOpened(mode, None, os_error_text(exc, "open it again")))

    @on(ListOpened)
    @while_shown
    def list_opened(self, message: ListOpened) -> None:
        if message.source is not None:
            self.sources[message.mode] = message.source
        else:
            self.errors[message.mode] = message.error or "cannot be read"
        if message.mode == self.mode:
            self.restart()

    def _ordered(self) -> np.ndarray:
        from engine.train import examples

        src = self.source
        if src is None:
            return np.zeros(0, np.int64)
        p = src.preds
        if self.mode == NOISE:
            return examples.by_loss(p)
        true, pred = (p.label_id(name) if name is not None else None for name in self.cell)
        return examples.by_confidence(p, examples.select(p, true, pred), descending=self.descending)

    def restart(self) -> None:
        """Show the list from its start: new order, a cleared table, the first page fetched."""
        self.generation += 1
        self.shown, self.scanned, self.done, self.loading = [], 0, False, False
        self.texts = {}
        notice = ""
        try:
            self.order = self._ordered()
        except Exception as exc:  # a label the file does not have (another run's cell)
            self.order, notice = np.zeros(0, np.int64), str(exc)
        self._columns()
        self._describe()
        self._notice(notice or self.errors.get(self.mode, ""))
        if self.source is not None and len(self.order):
            self.fetch()
        else:
            self.done = True
            self._describe()

    def fetch(self) -> None:
        if self.loading or self.done or self.source is None:
            return
        self.loading = True
        self._fetch(self.source, self.generation, self.order, self.scanned, self.search_text)

    @work(thread=True, group="page")
    def _fetch(self, src: _Source, generation: int, order: np.ndarray, start: int, query: str) -> None:
        """The list's next PAGE rows; with a search, SCAN texts at a time are read until PAGE match."""
        rows: list[tuple[int, str]] = []
        pos = start
        needle = query.lower()
        try:
            # A rare search reports back after SCAN_REPORT texts, so the count searched moves on screen.
            while pos < len(order) and len(rows) < PAGE and pos - start < SCAN_REPORT:
                chunk = order[pos : pos + (SCAN if needle else PAGE - len(rows))]
                with src.lock:
                    texts = src.texts.get(src.preds.position[chunk])
                pos += len(chunk)
                rows += [(int(i), t) for i, t in zip(chunk, texts, strict=True) if needle in t.lower()]
                if generation != self.generation:
                    return
        except Exception as exc:  # DataError from a moved or damaged shard: said, rows stay without text
            self.post_message(PageFetched(generation, [], pos, True, str(exc)))
            return
        self.post_message(PageFetched(generation, rows, pos, pos >= len(order)))

    @on(PageFetched)
    @while_shown
    def page_fetched(self, message: PageFetched) -> None:
        if message.generation != self.generation:
            return  # for a list, order or search since replaced
        self.loading = False
        self.scanned, self.done = message.scanned, message.done
        for index, text in message.rows:
            self.texts[index] = text
            self.shown.append(index)
            self.table.add_row(*self._cells(index, text), key=str(index))
        if message.error:
            self._notice(message.error)
        self._describe()
        if self.search_text and not self.done and self.table.row_count - self.table.cursor_row < PAGE:
            self.fetch()  # searching on until a page of matches is shown

    # ---------------------------------------------------------------- display

    def _text_width(self, fixed: int) -> int:
        # Less the other columns, the text column's own padding (2) and the vertical scrollbar (2).
        return max((self.size.width or 80) - fixed - 5, 20)

    def on_resize(self, event: Resize) -> None:
        # The text column takes the width the others leave: laid out again for a new width.
        if self.source is not None and self.text_chars != self._text_width(self._fixed):
            self.restart()

    def _columns(self) -> None:
        table = self.table
        table.clear(columns=True)
        if self.mode == NOISE:
            heads = [
                ("rank", 4),
                ("loss", 5),
                ("given", LABEL_CHARS),
                ("p", 4),
                ("predicted", LABEL_CHARS),
                ("p", 4),
            ]
        else:
            heads = [("conf", 4), ("true", LABEL_CHARS), ("p", 4), ("predicted", LABEL_CHARS)]
        self._fixed = sum(w + 2 for _, w in heads)
        for name, width in heads:
            table.add_column(name, width=width)
        self.text_chars = self._text_width(self._fixed)
        table.add_column("text", width=self.text_chars)

    def _cells(self, index: int, text: str) -> list[Any]:
        p = self.source.preds if self.source else None
        assert p is not None
        true, pred = int(p.label[index]), int(p.pred[index])
        p_true, p_pred = float(p.p_true[index]), float(p.p_pred[index])
        names = [one_line(p.labels[true], LABEL_CHARS), one_line(p.labels[pred], LABEL_CHARS)]
        body = one_line(text, self.text_chars)
        if self.mode == NOISE:
            rank = len(self.shown)
            return [
                str(rank),
                f"{p.loss[index]:.2f}",
                names[0],
                f"{p_true:.2f}",
                names[1],
                f"{p_pred:.2f}",
                body,
            ]
        return [f"{p_pred:.2f}", names[0], f"{p_true:.2f}", names[1], body]

    def _describe(self) -> None:
        title = self.query_one("#errors-title", Static)
        summary = self.query_one("#errors-summary", Static)
        src = self.source
        if src is None:
            title.update(f"{self.session_id} · {'likely label noise' if self.mode == NOISE else 'errors'}")
            summary.update("reading the predictions…" if self.mode not in self.errors else "")
            return
        p = src.preds
        epoch = f" (epoch {p.epoch:.2f})" if p.epoch is not None else ""
        if self.mode == NOISE:
            title.update(f"{self.session_id} · likely label noise · step {p.step}{epoch}")
            what = (
                f"{len(self.order):,} of {len(p):,} scored training examples disagree with the final model, "
                "by loss (highest first)"
            )
        else:
            title.update(f"{self.session_id} · {p.split} errors · step {p.step}{epoch}")
            true, pred = self.cell
            if true is None and pred is None:
                what = f"{len(self.order):,} misclassified of {len(p):,}"
            elif true is not None and pred is not None:
                what = f"cell true {true} → predicted {pred}: {len(self.order):,} of {len(p):,}"
            else:
                what = (
                    f"true {true}, misclassified: {len(self.order):,}"
                    if true is not None
                    else f"predicted {pred}, misclassified: {len(self.order):,}"
                )
            what += " · most confident first" if self.descending else " · least confident first"
        if self.search_text:
            found = f"{len(self.shown):,} found in {self.scanned:,} of {len(self.order):,} searched"
            what += f" · search {self.search_text!r}: {found}" + (
                "" if self.done else " (more as you scroll)"
            )
        elif not self.done and len(self.order):
            what += f" · showing {len(self.shown):,}, more as you scroll"
        summary.update(what)

    def _notice(self, text: str) -> None:
        notice = self.query_one("#errors-notice", Static)
        notice.update(Text(text))
        notice.display = bool(text)

    @on(DataTable.RowHighlighted, "#errors-table")
    def row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= self.table.row_count - MORE_AT:
            self.fetch()

    @on(DataTable.RowSelected, "#errors-table")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_show_example()

    def selected(self) -> int | None:
        row = self.table.cursor_row
        return self.shown[row] if self.shown and 0 <= row < len(self.shown) else None

    # ---------------------------------------------------------------- actions

    def action_show_example(self) -> None:
        index = self.selected()
        if index is None or self.source is None:
            return
        p = self.source.preds
        true, pred = int(p.label[index]), int(p.pred[index])
        tops = ", ".join(
            f"{p.labels[int(c)]} {float(q):.3f}"
            for c, q in zip(p.top_ids[index], p.top_probs[index], strict=True)
        )
        lines = [
            self.texts.get(index, ""),
            "",
            f"{'given' if self.mode == NOISE else 'true'} label: {p.labels[true]} "
            f"(p {float(p.p_true[index]):.3f})",
            f"predicted: {p.labels[pred]} (p {float(p.p_pred[index]):.3f})",
            f"top classes: {tops}",
            f"data row {int(p.row[index])} · {p.split} split position {int(p.position[index])}",
        ]
        self.app.push_screen(TextScreen(f"{p.split} example, data row {int(p.row[index])}", "\n".join(lines)))

    def action_toggle_sort(self) -> None:
        if self.mode == NOISE:
            self.notify("the label-noise list is ranked by loss", timeout=2)
            return
        self.descending = not self.descending
        self.restart()

    def action_search(self) -> None:
        self.add_class("-searching")
        box = self.query_one(SearchBox)
        box.value = self.search_text
        box.focus()

    @on(Input.Submitted, "#errors-search")
    def search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.search_text = event.value.strip()
        if not self.search_text:
            self.remove_class("-searching")
        self.table.focus()
        self.restart()

    def action_clear(self) -> None:
        self.cell = (None, None)
        self.search_text = ""
        self.query_one(SearchBox).value = ""
        self.remove_class("-searching")
        self.restart()

    def action_toggle_noise(self) -> None:
        self.mode = NOISE if self.mode == ERRORS else ERRORS
        if self.mode not in self.sources and self.mode not in self.errors:
            self._columns()
            self.table.clear()
            self._describe()
            self._notice("")
            self._open(self.mode)
            return
        self.restart()

    def action_export(self) -> None:
        src = self.source
        if src is None:
            self.notify("nothing to export yet", timeout=2)
            return
        p = src.preds
        kind = "label-noise" if self.mode == NOISE else f"{p.split}-errors"
        default = str(Path.cwd() / f"{self.session_id}-{kind}-step{p.step}.csv")

        def chosen(path: str | None) -> None:
            if not path:
                return

            def export() -> None:
                self._export(src, path, self.mode, self.order, self.search_text)

            if Path(path).exists():
                ask(self, f"Replace {path}?", export)  # never replaced without a yes
            else:
                export()

        self.app.push_screen(
            SavePathScreen(f"Export the list shown ({len(self.order):,} rows) as CSV to:", default), chosen
        )

    @work(thread=True, group="export")
    def _export(self, src: _Source, path: str, mode: str, order: np.ndarray, query: str) -> None:
        from engine.errors import FtcError
        from engine.train import examples

        p = src.preds
        guarded = [src.texts.data_dir, src.session_root / "data"]
        try:
            texts: list[str] = []
            for lo in range(0, len(order), SCAN):
                with src.lock:
                    texts += src.texts.get(p.position[order[lo : lo + SCAN]])
            needle = query.lower()
            rows = []
            for rank, (i, text) in enumerate(zip(order.tolist(), texts, strict=True), start=1):
                if needle and needle not in text.lower():
                    continue
                base = [int(p.row[i]), p.labels[int(p.label[i])], round(float(p.p_true[i]), 4)]
                base += [p.labels[int(p.pred[i])], round(float(p.p_pred[i]), 4)]
                if mode == NOISE:
                    rows.append([rank, round(float(p.loss[i]), 4), *base, text])
                else:
                    rows.append([*base, text])
            head = ["row", "true", "p_true", "predicted", "p_predicted", "text"]
            if mode == NOISE:
                head = ["rank", "loss", "row", "given", "p_given", "predicted", "p_predicted", "text"]
            count = examples.write_csv(
                Path(path), head, rows, protect=guarded + _data_sources(src.session_root)
            )
        except FtcError as exc:
            self.app.call_from_thread(self._exported, str(exc), True)
            return
        self.app.call_from_thread(self._exported, f"exported {count:,} rows to {path}", False)

    def _exported(self, text: str, failed: bool) -> None:
        if not on_stack(self):
            return
        if failed:
            self._notice(text)
        else:
            self.notify(text, timeout=4)


def _data_sources(session_root: Path) -> list[Path]:
    """The raw data file a session's config names ([data] source), which an export must never replace."""
    try:
        from engine.config import load_toml

        source = load_toml(session_root / "config.toml").get("data", {}).get("source")
    except Exception:
        return []
    return [Path(str(source))] if source else []
