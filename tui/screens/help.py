"""The help screen: what ftc does and every key (from the keymap), reachable with ? from anywhere."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from tui import keymap

INTRO = """\
# ftc — fine-tuning console

Sessions live in the sessions folder; each has one **engine** process that keeps
running when you quit this console or lose your SSH connection.

On the sessions screen, ↑ ↓ select a session; opening it shows its monitor (or, for a
prediction, its progress), which replays its history, then follows live. On the monitor's
checkpoints tab, enter on a checkpoint resumes from it (the session must not be running).
ctrl+p opens the command palette: every action below, by name.
"""

CONCEPTS = """\
## Status words
**running**, **paused**, **stopping**, **finished**, **failed** (the job raised; see the
event log, and v on the monitor for the engine's log), **stopped** (on request), **crashed**
(the engine is gone without a clean end: resume it with `r` or `ftc resume SESSION`).

## Keys
**q** and **escape** do the same everywhere: back to the screen before; on the sessions screen
(and in `ftc predict`'s own window) they quit. Stop, a resume from an earlier checkpoint and
delete ask first on one line: **y** or enter does it, escape or **n** does nothing. Each footer
shows the keys that fit; `? more` opens this help.

From a shell: `ftc ls`, `ftc attach SESSION`, `ftc pause|unpause|checkpoint|stop SESSION`.

Press escape, q or ? to close.
"""


def help_text() -> str:
    """The whole help: the concepts, and a table of keys for each screen drawn from the keymap."""
    return f"{INTRO}\n{keymap.help_tables()}\n{CONCEPTS}"


class HelpScreen(ModalScreen[None]):
    """Keys and concepts; closes with escape, q or ?."""

    KEYMAP = keymap.HELP
    BINDINGS = keymap.bindings(KEYMAP)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(help_text())

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
