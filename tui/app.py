"""The Textual console: a thin App that owns the screens; screens own their state."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.screens.help import HelpScreen
from tui.screens.sessions import SessionsScreen


class FtcApp(App[None]):
    """ftc: the fine-tuning console."""

    TITLE = "ftc"
    SUB_TITLE = "fine-tuning console"
    CSS_PATH = "ftc.tcss"
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        sessions_root: Path,
        attach: str | None = None,
        *,
        dataset: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.sessions_root = sessions_root
        self.attach = attach
        self.dataset = dataset

    def on_mount(self) -> None:
        self.push_screen(SessionsScreen(self.sessions_root))
        if self.attach:
            from tui.screens.predict import PredictScreen, is_predict_session

            if is_predict_session(self.sessions_root, self.attach):
                self.push_screen(PredictScreen(self.sessions_root, self.attach))
            else:
                from tui.screens.monitor import MonitorScreen

                self.push_screen(MonitorScreen(self.sessions_root, self.attach))
        if self.dataset:
            from tui.screens.dataset import DatasetScreen

            self.push_screen(DatasetScreen(**self.dataset))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Keys and concepts of ftc", self.action_help)
        for name, text in (
            ("pause", "Pause the selected session between steps"),
            ("unpause", "Continue the selected session"),
            ("checkpoint", "Write a checkpoint of the selected session now"),
            ("stop", "Checkpoint, then stop the selected session"),
            ("resume", "Resume the selected crashed or stopped session"),
        ):
            if hasattr(screen, "action_control"):
                yield SystemCommand(
                    f"Session: {name}",
                    text,
                    lambda n=name: screen.action_control(n),
                )
