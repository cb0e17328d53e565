"""The Textual console: a thin App that owns the screens and decides which one shows a session."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.screen import Screen

from engine.session import read_state, resolve
from tui import keymap, messages
from tui.messages import ComparisonRequested, DataFileRequested, ErrorsRequested, SessionOpened
from tui.notify import Notifier
from tui.screens.help import HelpScreen
from tui.screens.sessions import SessionsScreen

PREDICT_JOB = "predict"  # the [job] kind of sessions that open on the prediction screen
LR_FIND_JOB = "lr_find"  # ... and of those that open on the range test's curve


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
        # The bell and desktop notifications when a session seen live ends (tui/notify.py; FTC_NOTIFY=0: off).
        self.notifier = Notifier(self.write_terminal)

    def on_mount(self) -> None:
        self.push_screen(SessionsScreen(self.sessions_root))
        if self.attach:
            self.open_session(self.attach, session_job(self.sessions_root, self.attach))
        if self.dataset:
            from tui.screens.dataset import DatasetScreen

            self.push_screen(DatasetScreen(**self.dataset))

    def open_session(self, session: str, job: str | None) -> None:
        """A prediction session opens on its throughput, labels and last rows; others on the monitor."""
        if job == LR_FIND_JOB:
            from tui.screens.lrfind import LrFindScreen

            self.push_screen(LrFindScreen(self.sessions_root, session))
            return
        if job == PREDICT_JOB:
            from tui.screens.predict import PredictScreen

            self.push_screen(PredictScreen(self.sessions_root, session))
        else:
            from tui.screens.monitor import MonitorScreen

            self.push_screen(MonitorScreen(self.sessions_root, session))

    @on(SessionOpened)
    def session_opened(self, message: SessionOpened) -> None:
        self.open_session(message.session, message.job)

    @on(messages.SessionsListed)
    def sessions_listed(self, message: messages.SessionsListed) -> None:
        """Every listing of the sessions screen (bubbled up): ring for each session that has just ended."""
        for text in self.notifier.listed(message.sessions):
            self.notify(text, title="ftc")

    def write_terminal(self, data: str) -> None:
        """Bytes for the terminal itself (a bell, an OSC notification), through Textual's driver."""
        if self._driver is not None:
            self._driver.write(data)

    @on(messages.LrFindRequested)
    def lr_find_requested(self, message: messages.LrFindRequested) -> None:
        """A range test of the new-run form's config: a new lr_find session, then its screen."""
        self.notify("Starting the learning-rate range test...")
        self._start_lr_find(copy.deepcopy(message.config))

    @work(thread=True, group="lr-find")
    def _start_lr_find(self, config: dict[str, Any]) -> None:
        from engine.errors import FtcError, brief
        from tui.commands.train import start_run

        config["job"] = {"kind": LR_FIND_JOB}
        try:
            paths = start_run(self.sessions_root, config, name="lr-find")
        except FtcError as exc:
            self.call_from_thread(self.notify, brief(exc, 300), severity="error")
            return
        self.call_from_thread(self._open_lr_find, paths.id)

    def _open_lr_find(self, session: str) -> None:
        from tui.screens.lrfind import LrFindScreen

        asking = self.screen  # the new-run form: the suggestion goes back to it

        def used(rate: float | None) -> None:
            if rate is not None:
                asking.post_message(messages.LearningRateSuggested(rate))

        self.push_screen(LrFindScreen(self.sessions_root, session, from_form=True), used)

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

    @on(ErrorsRequested)
    def errors_requested(self, message: ErrorsRequested) -> None:
        from tui.screens.errors import ErrorsScreen

        self.push_screen(
            ErrorsScreen(
                self.sessions_root,
                message.session,
                step=message.step,
                split=message.split,
                true_label=message.true_label,
                predicted_label=message.predicted_label,
                predictions=message.predictions,
            )
        )

    def action_errors(self) -> None:
        """The monitor's key: the session's latest validation evaluation, every misclassified example."""
        session = getattr(self.screen, "session_id", None)
        if session:
            from tui.screens.errors import ErrorsScreen

            self.push_screen(ErrorsScreen(self.sessions_root, session))

    @on(DataFileRequested)
    def data_file_requested(self, _message: DataFileRequested) -> None:
        from tui.screens.open_file import OpenFileScreen

        def opened(path: str | None) -> None:
            if path:
                from tui.screens.dataset import DatasetScreen

                self.push_screen(DatasetScreen(path))

        ask = OpenFileScreen("Inspect and test a data file (CSV, TSV, JSONL, Parquet, HDF5):")
        self.push_screen(ask, opened)

    @on(messages.NewRunRequested)
    def new_run_requested(self, message: messages.NewRunRequested) -> None:
        """The new-run form; for a session (clone and edit), filled from its config.toml."""
        from engine.config import job_kind, load_toml
        from engine.errors import FtcError
        from tui.screens.newrun import NewRunScreen

        prefill = None
        if message.session is not None:
            try:
                prefill = load_toml(resolve(self.sessions_root, message.session).config)
                kind = job_kind(prefill)
            except FtcError as exc:
                self.notify(f"{message.session}: {exc}", severity="error")
                return
            if kind != "train":
                self.notify(f"{message.session} is a {kind} session: only a training run can be cloned")
                return
        self.push_screen(NewRunScreen(self.sessions_root, prefill, origin=message.session))

    @on(messages.DataFileWanted)
    def data_file_wanted(self, _message: messages.DataFileWanted) -> None:
        from tui.screens.open_file import OpenFileScreen

        asking = self.screen

        def chosen(path: str | None) -> None:
            if path:
                asking.post_message(messages.DataFileChosen(path))

        self.push_screen(OpenFileScreen("The run's data file (CSV, TSV, JSONL, Parquet, HDF5):"), chosen)

    def action_toggle_notifications(self) -> None:
        self.notifier.on = not self.notifier.on
        self.notify(f"Notifications when a session ends: {'on' if self.notifier.on else 'off'}")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        ours = palette_commands(screen)
        titles = {command.title for command in ours}
        yield from ours
        # Textual's own (theme, keys, screenshot), less those the keymap already offers (Quit).
        yield from (c for c in super().get_system_commands(screen) if c.title not in titles)
