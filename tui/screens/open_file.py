"""A small modal that asks for a file path (tab completes nothing; it is a plain input)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from tui import keymap


class OpenFileScreen(ModalScreen[str | None]):
    """Ask for the path of an existing file; dismiss with it, or None on escape."""

    KEYMAP = keymap.OPEN_FILE
    BINDINGS = keymap.bindings(KEYMAP)
    DEFAULT_CSS = """
    OpenFileScreen { align: center middle; }
    OpenFileScreen > Vertical {
        width: 72; height: auto; border: round $primary; background: $surface; padding: 0 1;
    }
    OpenFileScreen #open-error { color: $error; height: auto; }
    """

    def __init__(self, title: str, placeholder: str = "path/to/data.csv") -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Input(placeholder=self.placeholder, id="open-path")
            yield Label("", id="open-error")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if not event.value.strip():
            return
        if not path.is_file():
            self.query_one("#open-error", Label).update(f"{path}: no such file; type the path of a data file")
            return
        self.dismiss(str(path.resolve()))

    def action_cancel(self) -> None:
        self.dismiss(None)
