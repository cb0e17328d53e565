"""A one-line footer: a screen's keys that fit the width, in keymap order, then `? more` for the rest."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.events import Resize
from textual.widget import Widget

from tui import keymap

GAP = "  "
KEY_STYLE = "bold"
MORE = ("?", "more")


def footer_items(keymap_name: str, app_keymap: str = keymap.APP) -> list[tuple[str, str]]:
    """(key, label) for each footer action of a screen, then the app's own (help), in keymap order."""
    offered = keymap.actions(keymap_name) + keymap.actions(app_keymap)
    return [(a.footer_key(), a.label) for a in offered if a.footer]


def fit(items: list[tuple[str, str]], width: int) -> tuple[list[tuple[str, str]], bool]:
    """The leading items that fit ``width`` cells; True when some were left out and `? more` follows.

    `? more` only where ? opens the help (the items offer it); elsewhere the keys that fit.
    """

    def cells(pairs: list[tuple[str, str]]) -> int:
        return sum(len(k) + 1 + len(v) for k, v in pairs) + len(GAP) * max(len(pairs) - 1, 0)

    if cells(items) <= width:
        return items, False
    more = any(key == MORE[0] for key, _ in items)
    shown: list[tuple[str, str]] = []
    for item in items:
        if item[0] == MORE[0]:
            continue  # the help key is what `? more` opens
        if cells([*shown, item, *([MORE] if more else [])]) > width:
            break
        shown.append(item)
    return shown, more


class KeyFooter(Widget):
    """The keys of the screen it is on; redrawn only when its width changes."""

    DEFAULT_CSS = """
    KeyFooter { dock: bottom; height: 1; width: 1fr; background: $panel; color: $foreground; padding: 0 1; }
    """

    def __init__(self, keymap_name: str, **kwargs: str) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.keymap_name = keymap_name
        self.items: list[tuple[str, str]] = []

    def on_mount(self) -> None:
        # The app's own keys: the console's help, or none in ftc predict's window.
        self.items = footer_items(self.keymap_name, getattr(self.app, "KEYMAP", keymap.APP))
        self.refresh()

    def text(self, width: int) -> Text:
        shown, more = fit(self.items, width)
        out = Text(no_wrap=True, overflow="crop")
        for i, (key, label) in enumerate([*shown, MORE] if more else shown):
            if i:
                out.append(GAP)
            out.append(key, style=KEY_STYLE)
            out.append(" " + label, style="dim" if (key, label) == MORE else "")
        return out

    def render(self) -> RenderResult:
        return self.text(self.content_size.width)

    def on_resize(self, _event: Resize) -> None:
        self.refresh()
