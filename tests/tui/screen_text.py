"""What a person sees: the text of the console's current frame."""

from __future__ import annotations

import html
import re

from textual.app import App


def screen_text(app: App[object]) -> str:
    svg = app.export_screenshot()
    text = re.sub(r"<[^>]+>", "", svg.split("</style>", 1)[-1])
    return html.unescape(text).replace("\xa0", " ")
