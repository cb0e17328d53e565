"""How a session's status word looks wherever the console shows it."""

from __future__ import annotations

from rich.text import Text

STATUS_STYLE = {
    "running": "bold green",
    "paused": "bold yellow",
    "stopping": "yellow",
    "starting": "cyan",
    "finished": "blue",
    "stopped": "magenta",
    "failed": "bold red",
    "crashed": "bold red reverse",
    "damaged": "red",
}


def status_text(status: str, default: str = "") -> Text:
    """The status word in its colour (an unknown word in ``default``)."""
    return Text(status, style=STATUS_STYLE.get(status, default))
