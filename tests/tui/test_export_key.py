"""The console exports the selected session (key e, or the palette's Export) and shows the result line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.export.sessions import copy_session, trained_session
from tui import actions
from tui.app import FtcApp
from tui.screens.sessions import SessionsScreen


async def test_export_key_writes_the_hf_folder_beside_the_sessions_and_says_where(
    tmp_path_factory: pytest.TempPathFactory, sessions_root: Path
) -> None:
    session = copy_session(trained_session(tmp_path_factory), sessions_root)
    out = actions.export_folder(sessions_root, session.id)
    assert out == sessions_root.parent / "exports" / f"{session.id}-hf"
    app = FtcApp(sessions_root)
    async with app.run_test(size=(80, 24)) as pilot:

        async def until(predicate, what: str, timeout: float = 240) -> None:
            for _ in range(int(timeout / 0.1)):
                if predicate():
                    return
                await pilot.pause(0.1)
            raise AssertionError(f"timed out waiting for {what}")

        def notices() -> list[str]:
            return [n.message for n in app._notifications]

        screen = app.screen
        assert isinstance(screen, SessionsScreen)
        await until(lambda: screen.sessions, "the session listed")
        assert any(c.title == "Export" for c in app.get_system_commands(screen)), "the palette offers it"
        await pilot.press("e")
        await until(lambda: any("exporting (hf)" in m for m in notices()), "the export announced")
        await until(lambda: any("exported to" in m for m in notices()), "the export's result line")
        assert f"{session.id}: exported to {out}" in notices()
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    assert 'library_name: "transformers"' in (out / "README.md").read_text()


def test_a_refused_export_comes_back_as_its_one_line(
    tmp_path_factory: pytest.TempPathFactory, sessions_root: Path
) -> None:
    session = copy_session(trained_session(tmp_path_factory), sessions_root)
    shutil.rmtree(session.model)
    shutil.rmtree(session.checkpoints)
    ok, text = actions.export_session(sessions_root, session.id)
    assert not ok
    assert text.startswith("ftc export: ") and "no trained model" in text and session.id in text
    assert not actions.export_folder(sessions_root, session.id).exists()
