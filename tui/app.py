"""The Textual console: a thin App that owns the screens and decides which one shows a session."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, SystemCommand
from textual.screen import Screen

from engine.session import read_state, resolve
from tui import keymap
from tui.messages import ComparisonRequested, DataFileRequested, SessionOpened
from tui.screens.help import HelpScreen
from tui.screens.sessions import SessionsScreen

PREDICT_JOB = "predict"  # the [job] kind of sessions that open on the prediction screen


def session_job(root: Path, session_id: str) -> str | None:
    """A session's job kind (state.json says, else its config.toml); None if it cannot be read."""
    try:
        paths = resolve(root, session_id)
        job = read_state(paths).get("job")
        if job is None and paths.config.is_file():
            from engine.config import job_kind, load_toml

            job = job_kind(load_toml(paths.config))
    except Exception:  # a damaged or vanished session opens on the monitor, which explains it
        return None
    return job


def palette_commands(screen: Screen[Any]) -> list[SystemCommand]:
    """The keymap's actions for a screen (and the app's own), each run exactly as its key runs it."""
    offered = keymap.actions(getattr(screen, "KEYMAP", "")) + keymap.actions(keymap.APP)
    return [
        SystemCommand(a.label, f"{a.description} ({a.key_text()})", lambda run=a.run: screen.run_action(run))
        for a in offered
    ]


class FtcApp(App[None]):
    """ftc: the fine-tuning console."""

    TITLE = "ftc"
    SUB_TITLE = "fine-tuning console"
    CSS_PATH = "ftc.tcss"
    KEYMAP = keymap.APP
    BINDINGS = keymap.bindings(KEYMAP)

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
            self.open_session(self.attach, session_job(self.sessions_root, self.attach))
        if self.dataset:
            from tui.screens.dataset import DatasetScreen

            self.push_screen(DatasetScreen(**self.dataset))

    def open_session(self, session: str, job: str | None) -> None:
        """A prediction session opens on its throughput, labels and last rows; others on the monitor."""
        if job == PREDICT_JOB:
            from tui.screens.predict import PredictScreen

            self.push_screen(PredictScreen(self.sessions_root, session))
        else:
            from tui.screens.monitor import MonitorScreen

            self.push_screen(MonitorScreen(self.sessions_root, session))

    @on(SessionOpened)
    def session_opened(self, message: SessionOpened) -> None:
        self.open_session(message.session, message.job)

    @on(ComparisonRequested)
    def comparison_requested(self, message: ComparisonRequested) -> None:
        from engine.errors import FtcError
        from tui.screens.compare import CompareScreen

        try:
            screen = CompareScreen(self.sessions_root, message.sessions)
        except FtcError as exc:  # a session that vanished, or lost its config.toml, since it was listed
            self.notify(str(exc), severity="error")
            return
        self.push_screen(screen)

    @on(DataFileRequested)
    def data_file_requested(self, _message: DataFileRequested) -> None:
        from tui.screens.open_file import OpenFileScreen

        def opened(path: str | None) -> None:
            if path:
                from tui.screens.dataset import DatasetScreen

                self.push_screen(DatasetScreen(path))

        ask = OpenFileScreen("Inspect and test a data file (CSV, TSV, JSONL, Parquet, HDF5):")
        self.push_screen(ask, opened)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        ours = palette_commands(screen)
        titles = {command.title for command in ours}
        yield from ours
        # Textual's own (theme, keys, screenshot), less those the keymap already offers (Quit).
        yield from (c for c in super().get_system_commands(screen) if c.title not in titles)
