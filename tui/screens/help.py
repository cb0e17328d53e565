"""The help screen: what ftc does and every key, reachable with ? from anywhere."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# ftc — fine-tuning console

Sessions live in the sessions folder; each has one **engine** process that keeps
running when you quit this console or lose your SSH connection.

## Sessions screen
| key | action |
|---|---|
| ↑ ↓ | select a session |
| enter | open its monitor (replays its history, then follows live) |
| p / u | pause / unpause between steps |
| c | write a checkpoint now |
| s | stop: checkpoint, then end the engine |
| r | resume a crashed or stopped session from its last checkpoint |
| d | inspect and test a data file (preview, label and length histograms, data tests) |
| ctrl+p | command palette (every action by name) |
| ? | this help |
| q | quit the console (engines keep running) |

## Monitor screen
| key | action |
|---|---|
| p / u / c / s | pause, unpause, checkpoint, stop this session |
| r | resume this session if it is crashed or stopped |
| t | next tab: events, evaluation, checkpoints |
| enter | on a checkpoint: resume from it (the session must not be running) |
| escape | back to the sessions list |

## Status words
**running**, **paused**, **stopping**, **finished**, **failed** (the job raised; see the
event log), **stopped** (on request), **crashed** (the engine is gone without a clean end:
resume it with `r` or `ftc resume SESSION`).

From a shell: `ftc ls`, `ftc attach SESSION`, `ftc pause|unpause|checkpoint|stop SESSION`.

Press escape, q or ? to close.
"""


class HelpScreen(ModalScreen[None]):
    """Keys and concepts; closes with escape, q or ?."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("q", "dismiss", "Close", show=False),
        Binding("question_mark", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(HELP)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
