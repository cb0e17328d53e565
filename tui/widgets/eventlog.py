"""The monitor's event log: one line per event, wrapped; enter shows a line in full; / filters.

Every line is kept (none is dropped), cheaply: a line may be written as a function that makes
it, called only when the line is shown or filtered (a reattach writes thousands). The list shows
the last ``max_lines`` lines that pass the filter (up to a fifth more between trims); above them
a first line says how many are earlier, and enter on it shows ``max_lines`` more. The filter
keeps the lines containing the text typed, case-insensitively, and escape clears it. The list
is updated once per batch of writes, so a reattach's replay is a few updates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from tui.live import on_stack


class FailureNote(Static):
    """Why a run failed before its first step, in full, above everything else (hidden otherwise)."""

    DEFAULT_CSS = "FailureNote { display: none; height: auto; padding: 0 1; }"


EARLIER = "earlier"  # the id of the first line while earlier lines are hidden
Line = Text | Callable[[], Text]


class EventLog(Vertical):
    """A filterable, selectable log of lines (rich Text)."""

    DEFAULT_CSS = """
    EventLog { height: 1fr; }
    EventLog > #event-filter { display: none; height: 1; border: none; padding: 0 1; }
    EventLog.-filtering > #event-filter { display: block; }
    EventLog > OptionList { height: 1fr; max-height: 100%; border: none; padding: 0; }
    EventLog > OptionList:focus { border: none; }
    """
    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=False)]

    @dataclass
    class Selected(Message):
        """Enter on a line: its whole text, to show in full."""

        text: str

    def __init__(self, max_lines: int = 1000, **kwargs: str) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.max_lines = max_lines
        self._lines: list[Line] = []  # every line written, made (and kept made) when first needed
        self.filter = ""
        self._matches: list[int] = []  # indices of the lines that pass the filter, in order
        self._window = max_lines  # how many of the last matching lines the list may show
        self._listed = 0  # matching lines in the list now (the last ones)
        self._rebuild = False
        self._flush_scheduled = False

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: type text, enter to browse, escape to clear", id="event-filter")
        yield OptionList(id="event-lines", compact=True)

    @property
    def options(self) -> OptionList:
        return self.query_one("#event-lines", OptionList)

    @property
    def lines(self) -> list[Text]:
        """Every line written, each made now if it was written as a function."""
        return [self.text(i) for i in range(len(self._lines))]

    def text(self, index: int) -> Text:
        """Line ``index``, made now if it was written as a function."""
        line = self._lines[index]
        if not isinstance(line, Text):
            line = self._lines[index] = line()
        return line

    def matches(self, line: Text) -> bool:
        return not self.filter or self.filter.lower() in line.plain.lower()

    @property
    def hidden(self) -> int:
        """Matching lines above the list's first (enter on the first line shows more of them)."""
        return len(self._matches) - self._listed

    def shown(self) -> list[str]:
        """The plain text of the lines the list holds now (after the filter), earlier ones not shown."""
        self._flush()
        return [self.text(i).plain for i in self._matches[len(self._matches) - self._listed :]]

    def write(self, line: Text) -> None:
        """Add a line; the list is updated once per batch of writes (a reattach replays thousands)."""
        self._add(line)

    def write_lazy(self, make: Callable[[], Text]) -> None:
        """Add a line that ``make()`` returns when it is first shown or filtered."""
        self._add(make)

    def _add(self, line: Line) -> None:
        index = len(self._lines)
        self._lines.append(line)
        if not self.filter or self.matches(self.text(index)):
            self._matches.append(index)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.call_later(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not (self.is_mounted and on_stack(self.screen)):
            return
        new = len(self._matches) - self._listed
        if not new and not self._rebuild:
            return
        options = self.options
        at_end = options.highlighted is None or options.highlighted >= options.option_count - 1
        # Past the window (a fifth more between refills) the list is made again with the last lines
        # only: measuring a wrapped line costs a third of a millisecond, so never more than a window.
        if self._rebuild or self._listed + new > self._window + self._window // 5:
            self._fill(options)
        else:
            options.add_options([self.text(i) for i in self._matches[len(self._matches) - new :]])
            self._listed += new
        if at_end and not options.has_focus:
            options.scroll_end(animate=False)

    def _fill(self, options: OptionList) -> None:
        """The list again: the marker of earlier lines, if any, then the last ``_window`` matching lines."""
        self._rebuild = False
        self._listed = min(self._window, len(self._matches))
        shown: list[Option | Text] = [
            self.text(i) for i in self._matches[len(self._matches) - self._listed :]
        ]
        if self.hidden:
            marker = Text(
                f"  ▲ {self.hidden:,} earlier lines: enter shows {self.max_lines:,} more", style="dim"
            )
            shown.insert(0, Option(marker, id=EARLIER))
        options.clear_options()
        options.add_options(shown)

    def show_earlier(self) -> None:
        """Show ``max_lines`` more of the earlier lines, the cursor on the last of them."""
        before = self.hidden
        self._window = self._listed + self.max_lines
        options = self.options
        self._fill(options)
        options.highlighted = max(0, before - self.hidden - 1 + (1 if self.hidden else 0))
        options.scroll_to_highlight(top=True)

    # ---------------------------------------------------------------- filter

    def start_filter(self) -> None:
        self.add_class("-filtering")
        self.query_one("#event-filter", Input).focus()

    def set_filter(self, text: str) -> None:
        self.filter = text
        self._matches = [i for i in range(len(self._lines)) if not text or self.matches(self.text(i))]
        self._window = self.max_lines
        self._fill(self.options)
        self.options.scroll_end(animate=False)

    @on(Input.Changed, "#event-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.set_filter(event.value)

    @on(Input.Submitted, "#event-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        options = self.options
        options.focus()
        if options.option_count:
            options.highlighted = options.option_count - 1

    @on(OptionList.OptionSelected, "#event-lines")
    def _line_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_id == EARLIER:
            self.show_earlier()
            return
        text = self.selected()
        if text is not None:
            self.post_message(self.Selected(text))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # escape clears an active filter; without one, it goes back as on every screen.
        if action == "clear_filter":
            return self.has_class("-filtering")
        return True

    def action_clear_filter(self) -> None:
        field = self.query_one("#event-filter", Input)
        field.value = ""
        self.remove_class("-filtering")
        self.set_filter("")
        self.options.focus()

    def selected(self) -> str | None:
        options = self.options
        if options.highlighted is None:
            return None
        prompt = options.get_option_at_index(options.highlighted).prompt
        return prompt.plain if isinstance(prompt, Text) else str(prompt)
