"""A scrollable view of a long text: one event of the log in full, or the engine's log file."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui import keymap

TAIL_BYTES = 256 * 1024  # an engine log's last part: its traceback is at the end


def engine_log_text(path: Path) -> str:
    """The end of an engine's log file, or one line saying why there is none."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            data = fh.read()
    except FileNotFoundError:
        return f"{path}: no engine log yet (the engine writes it when it starts)"
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror}); check its permissions"
    text = data.decode("utf-8", errors="replace")
    if size > TAIL_BYTES:
        text = f"… (the first {size - TAIL_BYTES:,} bytes are in {path})\n" + text.split("\n", 1)[-1]
    return fold_noise(text) or f"{path}: empty"


# TensorFlow logs two ERROR lines per kernel it loads from XLA's compile cache on some CPUs (AMD
# EPYC: XLA adds tuning flags to the compile's feature list that the host's never has), each ending
# "could lead to SIGILL". The cache folder is per CPU model and flags (engine/cache.py), so they
# are harmless, and hundreds of them would hide what the log is opened for.
NOISE = "cpu_aot_loader.cc"


def fold_noise(text: str) -> str:
    """The log with each run of XLA's compile-cache notices folded into one line saying how many."""
    if NOISE not in text:
        return text
    out: list[str] = []
    run = 0
    for line in text.split("\n"):
        if NOISE in line:
            run += 1
            continue
        if run:
            out.append(
                f"… {run} lines of XLA's compile-cache notices ('could lead to SIGILL'), folded: harmless"
            )
            run = 0
        out.append(line)
    if run:
        out.append(f"… {run} lines of XLA's compile-cache notices ('could lead to SIGILL'), folded: harmless")
    return "\n".join(out)


class TextScreen(ModalScreen[None]):
    """A title and a text, scrolled with the arrow and page keys; escape or q closes it."""

    KEYMAP = keymap.DETAIL
    BINDINGS = keymap.bindings(KEYMAP)
    DEFAULT_CSS = """
    TextScreen { align: center middle; }
    TextScreen > VerticalScroll {
        width: 95%; height: 90%; border: round $primary; background: $surface; padding: 0 1;
    }
    TextScreen #text-body { width: 1fr; height: auto; }
    """

    def __init__(self, title: str, text: str, *, end: bool = False) -> None:
        super().__init__()
        self.title_text, self.text, self.end = title, text, end

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="text-scroll"):
            yield Static(Text(self.text), id="text-body")

    def on_mount(self) -> None:
        scroll = self.query_one(VerticalScroll)
        scroll.border_title = self.title_text
        scroll.border_subtitle = "↑ ↓ page up/down scroll · esc close"
        scroll.focus()
        if self.end:
            self.call_after_refresh(scroll.scroll_end, animate=False)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
