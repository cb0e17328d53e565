"""A one-line question at the bottom of the screen before a destructive key acts (as k9s asks).

``ask(node, "Stop session X?", then)`` shows "Stop session X? y/enter yes, esc no" in place of the
footer; ``then()`` runs only on y or enter; escape or n closes it and nothing happens.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Static

from tui import keymap

HINT = "y/enter yes, esc no"


class ConfirmScreen(ModalScreen[bool]):
    """The question, one line high, over the footer; the screen above stays visible."""

    KEYMAP = keymap.CONFIRM
    BINDINGS = keymap.bindings(KEYMAP)
    DEFAULT_CSS = """
    ConfirmScreen { align: left bottom; background: $background 20%; }
    ConfirmScreen > #confirm-line {
        dock: bottom; height: auto; width: 1fr; padding: 0 1; background: $warning 40%; text-style: bold;
    }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(self.question, " ", (HINT, "not bold")), id="confirm-line")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def ask(node: Widget, question: str, then: Callable[[], None]) -> None:
    """Ask ``question``; call ``then`` if the person accepts, and do nothing otherwise."""

    def answered(yes: bool | None) -> None:
        if yes:
            then()

    node.app.push_screen(ConfirmScreen(question), answered)
