"""The monitor's event log: one line per event, wrapped; enter shows a line in full; / filters.

Lines are kept in memory (the last ``max_lines``, up to a fifth more between trims); the filter
shows those containing the text typed, case-insensitively, and escape clears it. The list is
updated once per batch of writes, so a reattach's replay of thousands of lines is one update.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList, Static

from tui.live import on_stack


class FailureNote(Static):
    """Why a run failed before its first step, in full, above everything else (hidden otherwise)."""

    DEFAULT_CSS = "FailureNote { display: none; height: auto; padding: 0 1; }"


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
        self.lines: list[Text] = []
        self.filter = ""
        self._follow = True
        self._pending: list[Text] = []  # written, not yet in the list
        self._rebuild = False
        self._flush_scheduled = False

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: type text, enter to browse, escape to clear", id="event-filter")
        yield OptionList(id="event-lines", compact=True)

    @property
    def options(self) -> OptionList:
        return self.query_one("#event-lines", OptionList)

    def matches(self, line: Text) -> bool:
        return not self.filter or self.filter.lower() in line.plain.lower()

    def shown(self) -> list[str]:
        """The plain text of the lines shown now (after the filter)."""
        return [line.plain for line in self.lines if self.matches(line)]

    def write(self, line: Text) -> None:
        """Add a line; the list is updated once per batch of writes (a reattach replays thousands)."""
        self.lines.append(line)
        if self.matches(line):
            self._pending.append(line)
        if len(self.lines) > self.max_lines + self.max_lines // 5:
            # Trimmed in blocks, rebuilt once: removing the first option per line costs a refresh each.
            del self.lines[: len(self.lines) - self.max_lines]
            self._rebuild = True
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.call_later(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not (self.is_mounted and on_stack(self.screen)):
            return
        options = self.options
        at_end = options.highlighted is None or options.highlighted >= options.option_count - 1
        if self._rebuild:
            options.clear_options()
            options.add_options([line for line in self.lines if self.matches(line)])
        elif self._pending:
            options.add_options(self._pending)
        self._rebuild = False
        self._pending = []
        if at_end and not options.has_focus:
            options.scroll_end(animate=False)

    # ---------------------------------------------------------------- filter

    def start_filter(self) -> None:
        self.add_class("-filtering")
        self.query_one("#event-filter", Input).focus()

    def set_filter(self, text: str) -> None:
        self.filter = text
        self._pending = []
        self._rebuild = False
        options = self.options
        options.clear_options()
        options.add_options([line for line in self.lines if self.matches(line)])
        options.scroll_end(animate=False)

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
