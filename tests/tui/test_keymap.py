"""Every key a screen binds is in the ? help and in its screen's command palette, and does the same there."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Markdown

from engine import protocol
from engine.journal import Journal
from engine.session import SessionPaths, write_state
from tests.tui.screen_text import screen_text
from tui import keymap
from tui.app import FtcApp, palette_commands
from tui.screens.dataset import DatasetScreen
from tui.screens.help import HelpScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.open_file import OpenFileScreen
from tui.screens.predict import PredictApp, PredictScreen
from tui.screens.sessions import SessionsScreen
from tui.widgets.footer import footer_items


def _session(root: Path, job: str) -> SessionPaths:
    paths = SessionPaths(root / f"20260101-000000-{job}-beef")
    paths.create()
    paths.config.write_text(f'[job]\nkind = "{job}"\n')
    write_state(paths, status="finished", job=job, step=0, created=time.time())
    journal = Journal(paths.events, paths.id)
    journal.append(protocol.JobStarted(job=job, step=0))
    journal.close()
    return paths


def _bindings(screen: Screen[object] | FtcApp | PredictApp) -> list[Binding]:
    bindings = [b for b in type(screen).BINDINGS if isinstance(b, Binding)]
    assert len(bindings) == len(type(screen).BINDINGS), "every binding comes from the keymap"
    return bindings


def _help_rows(help_text: str, heading: str) -> list[str]:
    section = help_text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]


def _assert_documented_and_offered(app: FtcApp | PredictApp, screen: Screen[object], help_text: str) -> None:
    name = getattr(screen, "KEYMAP", None)
    assert name in keymap.SECTIONS, f"{type(screen).__name__} has no keymap"
    rows = _help_rows(help_text, keymap.SECTIONS[name])
    commands = palette_commands(screen)
    for binding in _bindings(screen):
        for key in binding.key.split(","):
            shown = keymap.KEY_NAMES.get(key, key)
            assert any(row.split(" | ")[0].lstrip("| ").split(" / ").count(shown) for row in rows), (
                f"{type(screen).__name__}: key {shown!r} ({binding.description}) missing from the help"
            )
        offered = [c for c in commands if c.title == binding.description]
        assert offered, f"{type(screen).__name__}: {binding.description!r} missing from the palette"


async def test_every_binding_is_in_the_help_and_the_palette_of_its_screen(tmp_path: Path) -> None:
    train, predict = _session(tmp_path, "train"), _session(tmp_path, "predict")
    data = tmp_path / "tweets.csv"
    data.write_text("text,label\nhello there,pos\nawful day,neg\n")
    app = FtcApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        # The help the person reads: the Markdown on the screen, not a string in the module.
        help_text = app.screen.query_one(Markdown).source
        _assert_documented_and_offered(app, app.screen, help_text)
        await pilot.press("escape")
        for make in (
            lambda: SessionsScreen(tmp_path),
            lambda: MonitorScreen(tmp_path, train.id),
            lambda: PredictScreen(tmp_path, predict.id),
            lambda: DatasetScreen(data),
            lambda: OpenFileScreen("a file?"),
        ):
            screen = make()
            await app.push_screen(screen)
            await pilot.pause(0.1)
            _assert_documented_and_offered(app, screen, help_text)
        for binding in _bindings(app):
            for key in binding.key.split(","):
                assert any(
                    keymap.KEY_NAMES.get(key, key) in row for row in _help_rows(help_text, "Everywhere")
                )
    standalone = PredictApp(tmp_path, predict.id)
    for binding in _bindings(standalone):
        rows = _help_rows(help_text, keymap.SECTIONS[keymap.PREDICT_APP])
        assert any(row.startswith(f"| {keymap.KEY_NAMES.get(binding.key, binding.key)} |") for row in rows)


@pytest.mark.parametrize(("key", "title"), [("p", "Pause"), ("c", "Checkpoint")])
async def test_a_palette_command_does_what_its_key_does(tmp_path: Path, key: str, title: str) -> None:
    # No engine runs: the key and the palette entry both end in the same refusal for the selected session.
    paths = _session(tmp_path, "train")
    app = FtcApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:

        async def next_notice(seen: int) -> str:
            for _ in range(200):
                if len(app._notifications) > seen:
                    return list(app._notifications)[-1].message
                await pilot.pause(0.05)
            raise AssertionError("no notification")

        screen = app.screen
        for _ in range(200):
            if getattr(screen, "sessions", None):
                break
            await pilot.pause(0.05)
        await pilot.press(key)
        by_key = await next_notice(0)
        entry = next(c for c in app.get_system_commands(screen) if c.title == title)
        await entry.callback()  # type: ignore[misc]
        by_palette = await next_notice(1)
    assert f"session {paths.id} has no running engine" in by_key
    assert by_palette == by_key


def _footer(app: FtcApp) -> str:
    """The bottom line with text: the footer."""
    lines = [line for line in screen_text(app).splitlines() if line.strip()]
    return lines[-1]


def _labels(name: str) -> list[str]:
    return [f"{key} {label}" for key, label in footer_items(name)]


async def test_footers_show_the_keys_that_fit_then_more(tmp_path: Path) -> None:
    train = _session(tmp_path, "train")
    data = tmp_path / "tweets.csv"
    data.write_text("text,label\nhello there,pos\nawful day,neg\n")
    for size in ((60, 20), (80, 24), (200, 50)):
        app = FtcApp(tmp_path, attach=train.id)
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.3)
            for screen, name in (
                (None, keymap.MONITOR),
                ("pop", keymap.SESSIONS),
                (DatasetScreen(data), keymap.DATASET),
            ):
                if screen == "pop":
                    await pilot.press("escape")
                elif screen is not None:
                    await app.push_screen(screen)
                await pilot.pause(0.3)
                assert name == app.screen.KEYMAP  # type: ignore[attr-defined]
                footer = _footer(app).strip()
                wanted = _labels(name)
                assert len(footer) <= size[0], footer
                if size[0] == 200:
                    assert footer == "  ".join(wanted), f"{name} at {size}: {footer!r}"
                else:
                    # In keymap order, as many as fit, then `? more` (the help lists the rest).
                    assert footer.endswith("? more"), f"{name} at {size}: {footer!r}"
                    shown = footer.removesuffix("? more").strip()
                    assert shown and "  ".join(wanted).startswith(shown), f"{name} at {size}: {footer!r}"


@pytest.mark.parametrize("key", ["q", "escape"])
async def test_q_and_escape_go_back_on_every_screen_and_quit_at_the_top(tmp_path: Path, key: str) -> None:
    train = _session(tmp_path, "train")
    data = tmp_path / "tweets.csv"
    data.write_text("text,label\nhello there,pos\n")
    app = FtcApp(tmp_path, attach=train.id)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert isinstance(app.screen, MonitorScreen)
        await pilot.press(key)
        await pilot.pause(0.1)
        assert isinstance(app.screen, SessionsScreen)
        await app.push_screen(DatasetScreen(data))
        await pilot.pause(0.2)
        await pilot.press(key)
        await pilot.pause(0.1)
        assert isinstance(app.screen, SessionsScreen)
        await pilot.press(key)
        await pilot.pause(0.1)
        assert app.return_code == 0, "the sessions screen quits"
    alone = PredictApp(tmp_path, _session(tmp_path, "predict").id)
    async with alone.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert "? " not in _footer(alone), "no help to offer in this window"  # type: ignore[arg-type]
        await pilot.press(key)
        await pilot.pause(0.1)
        assert alone.return_code == 0, "ftc predict's own window quits"
