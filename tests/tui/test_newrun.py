"""The new-run screen driven with the keyboard at 80x24: a run from a data file, clone and edit, save.

The form is checked live by the CLI's own config; each error sits next to its field. Start runs the
data tests, creates the session as ``ftc train`` would and opens its monitor.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import pytest
from textual import on
from textual.widgets import Input, Select, Static

import tui.app
from engine.config import dump_toml, load_toml
from engine.jobs import validate
from engine.launcher import create_session
from engine.session import list_sessions, read_state, resolve, write_state
from engine.train.config import TrainSection, load_config
from tests.support.tiny import make_tiny_model, synthetic_texts
from tests.tui.screen_text import screen_text
from tui.app import FtcApp
from tui.messages import LearningRateSuggested, LrFindRequested
from tui.screens.monitor import MonitorScreen
from tui.screens.newrun import NewRunScreen, all_specs
from tui.screens.open_file import OpenFileScreen
from tui.screens.sessions import SessionsScreen
from tui.widgets.confirm import ConfirmScreen

SIZE = (80, 24)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("newrun") / "model", fmt="tf", seed=0)


def write_csv(path: Path, n: int = 160, seed: int = 1, sort: bool = False) -> Path:
    """A labelled CSV with its own column names (review, sentiment) the form must detect."""
    rows = synthetic_texts(n, ["neg", "pos"], seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "review", "sentiment"])
        for i, (text, label) in enumerate(sorted(rows, key=lambda r: r[1]) if sort else rows):
            writer.writerow([i, text, ["neg", "pos"][label]])
    return path


@pytest.fixture
def data_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> Path:
    """reviews.csv in the current folder, with the tiny model as ./model: short paths to type."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").symlink_to(tiny_model)
    return write_csv(tmp_path / "reviews.csv")


def digest(folder: Path) -> dict[str, str]:
    """Every file under a folder with the hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


async def _until(pilot, predicate, timeout: float = 30.0, what: str = "condition") -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{screen_text(pilot.app)}")


async def _type(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch)


async def _focus(pilot, field: str) -> None:
    """Tab through the form until the field has the focus (as a person would)."""
    for _ in range(120):
        if getattr(pilot.app.focused, "id", None) == f"f-{field}":
            return
        await pilot.press("tab")
    raise AssertionError(f"tab never reached {field}")


async def _set(pilot, field: str, text: str) -> None:
    await _focus(pilot, field)
    await pilot.press("end", "ctrl+u")
    await _type(pilot, text)


def _err(form: NewRunScreen, field: str) -> str:
    return str(form.query_one(f"#e-{field}", Static).render())


def _notice(form: NewRunScreen) -> str:
    return str(form.query_one("#nr-notice", Static).render())


async def _start_and_open_monitor(pilot) -> MonitorScreen:
    await pilot.press("ctrl+s")
    app = pilot.app
    await _until(pilot, lambda: isinstance(app.screen, (MonitorScreen, ConfirmScreen)), 90, "the start")
    if isinstance(app.screen, ConfirmScreen):  # a data test failed: go on, as --allow-failing-checks
        await pilot.press("y")
        await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), 60, "the monitor")
    monitor = app.screen
    assert isinstance(monitor, MonitorScreen)
    await _until(pilot, lambda: monitor.feed.status != "?", 30, "the monitor's first status")
    return monitor


async def test_a_new_run_from_a_data_file_fix_a_field_start_and_see_it_run(
    tiny_model: Path, data_csv: Path, sessions_root: Path
) -> None:
    app = FtcApp(sessions_root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await _until(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the new-run screen")
        form = app.screen
        assert "give a data file" in _err(form, "data-path")
        # The data file through the console's file picker; its format, encoding and columns come back.
        await pilot.press("ctrl+o")
        await _until(pilot, lambda: isinstance(app.screen, OpenFileScreen), what="the file picker")
        await _type(pilot, data_csv.name)  # relative: the current folder's, as for ftc train
        await pilot.press("enter")
        await _until(pilot, lambda: form.source is not None, what="the data file opened")
        assert "csv · utf-8 · 3 columns" in _err(form, "data-path")
        assert form.query_one("#f-data-text_col", Select).value == "review"
        assert form.query_one("#f-data-label_col", Select).value == "sentiment"
        # The model, checked as typed: a local folder's config.json, weights and tokenizer.
        await _set(pilot, "model-source", "./nowhere")
        await _until(pilot, lambda: "no such folder" in _err(form, "model-source"), what="a missing model")
        await _set(pilot, "model-source", "model")
        await _until(pilot, lambda: "local folder" in _err(form, "model-source"), what="the model checked")
        # An invalid field: its error sits next to it, Start refuses, fixing it clears it.
        await _set(pilot, "train-batch_size", "0")
        await _until(pilot, lambda: "greater than or equal to 1" in _err(form, "train-batch_size"))
        row = [ln for ln in screen_text(app).splitlines() if "batch_size" in ln]
        assert row and "Input should be greater" in row[0], screen_text(app)  # beside it (wrapped)
        await pilot.press("ctrl+s")
        assert "not started" in _notice(form) and app.screen is form
        await _set(pilot, "train-batch_size", "8")
        await _until(pilot, lambda: _err(form, "train-batch_size") == "", what="the error cleared")
        await _set(pilot, "train-max_length", "32")
        await _set(pilot, "train-max_steps", "12")
        monitor = await _start_and_open_monitor(pilot)
        paths = resolve(sessions_root, monitor.session_id)
        await _until(
            pilot,
            lambda: read_state(paths).get("step", 0) >= 1 or read_state(paths).get("status") == "finished",
            120,
            "the run's first step",
        )
        assert read_state(paths)["status"] in ("running", "finished", "stopping")
    # The session's config.toml is one ftc train accepts, with the form's values and absolute paths.
    config = load_config(paths.config)
    assert (config.train.batch_size, config.train.max_length, config.train.max_steps) == (8, 32, 12)
    assert config.data.source == str(data_csv.resolve()) and config.model.source == str(tiny_model.resolve())
    assert (config.data.text_col, config.data.label_col) == ("review", "sentiment")
    validate("train", load_toml(paths.config))


def _failed_session(root: Path, model: Path, data: Path) -> Any:
    """A training session that failed at its start: its max_length is more than the model takes."""
    config = {
        "job": {"kind": "train"},
        "model": {"source": str(model)},
        "data": {"source": str(data), "text_col": "review", "label_col": "sentiment"},
        "train": {"max_steps": 12, "batch_size": 8, "max_length": 32, "learning_rate": 2e-3},
    }
    paths = create_session(root, config, name="broken")
    config["train"]["max_length"] = 512  # as an older ftc, or a hand edit, let through
    config["train"]["class_weights"] = {"neg": 2.0, "pos": 1.0}
    config["train"]["gone_key"] = 1  # a key of another ftc: the form says it leaves it out
    paths.config.write_text(dump_toml(config), encoding="utf-8")
    write_state(paths, status="failed", error="[train] max_length: 512 is more than the model takes")
    return paths


async def test_clone_a_failed_run_fix_it_and_retry(
    tiny_model: Path, data_csv: Path, sessions_root: Path
) -> None:
    old = _failed_session(sessions_root, tiny_model, data_csv)
    before = digest(old.root)
    app = FtcApp(sessions_root)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: len(getattr(app.screen, "sessions", [])) == 1, what="the session listed")
        await pilot.press("N")
        await _until(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the form")
        form = app.screen
        assert form.origin == old.id and old.id in screen_text(app)
        await _until(pilot, lambda: form.source is not None and "local folder" in _err(form, "model-source"))
        assert form.config()["train"] == {
            "max_steps": 12,
            "batch_size": 8,
            "max_length": 512,
            "learning_rate": 2e-3,
            "class_weights": {"neg": 2.0, "pos": 1.0},
        }
        assert "left out): [train] gone_key" in _notice(form)
        # The limit is the model's (ftc train checks it): said next to max_length, and Start refuses.
        assert "max_position_embeddings" in _err(form, "train-max_length")
        await pilot.press("ctrl+s")
        await _until(pilot, lambda: "not started" in _notice(form), what="the start refused")
        await _set(pilot, "train-max_length", "64")
        monitor = await _start_and_open_monitor(pilot)
        assert monitor.session_id != old.id
    new = resolve(sessions_root, monitor.session_id)
    assert load_config(new.config).train.max_length == 64
    assert load_config(new.config).train.class_weights == {"neg": 2.0, "pos": 1.0}
    assert {s.id for s in list_sessions(sessions_root)} == {old.id, new.id}
    assert digest(old.root) == before, "cloning must not change the old session"


async def test_save_the_config_to_a_file_ftc_train_accepts(
    tiny_model: Path, data_csv: Path, sessions_root: Path, tmp_path: Path
) -> None:
    data_before = data_csv.read_bytes()
    model_before = digest(tiny_model)
    app = FtcApp(sessions_root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await _until(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the form")
        form = app.screen
        await _type(pilot, data_csv.name)  # the data file's field has the focus: typed, not picked
        await _set(pilot, "model-source", "model")
        await _set(pilot, "train-learning_rate", "3e-4")
        await _until(pilot, lambda: form.source is not None and "local folder" in _err(form, "model-source"))
        # The tiny model takes 64 tokens: the default max_length (128) is refused, beside its field.
        await _until(pilot, lambda: "64 or less" in _err(form, "train-max_length"), what="max_length refused")
        await _set(pilot, "train-max_length", "32")

        async def save_to(path: Path) -> None:
            await pilot.press("f2")
            await _until(
                pilot, lambda: getattr(app.focused, "id", None) == "nr-save-path", what="the save path"
            )
            await pilot.press("end", "ctrl+u")
            await _type(pilot, str(path))
            await pilot.press("enter")

        target = tmp_path / "run.toml"
        await save_to(Path("run.toml"))
        await _until(pilot, lambda: target.is_file(), what="the saved file")
        assert "saved" in _notice(form)
        saved = target.read_bytes()
        # An existing file: asked first; no leaves it as it was.
        await save_to(Path("run.toml"))
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the overwrite question")
        await pilot.press("n")
        assert target.read_bytes() == saved
        # Never over the data file or into the model folder, even when asked.
        await save_to(Path(data_csv.name))
        assert "not saved" in _notice(form) and "data source" in _notice(form)
        await save_to(Path("model/config.json"))
        assert "not saved" in _notice(form) and "model source" in _notice(form)
        assert not isinstance(app.screen, ConfirmScreen)
    assert data_csv.read_bytes() == data_before and digest(tiny_model) == model_before
    raw = load_toml(target)
    validate("train", raw)  # what ftc train checks before it creates a session
    config = load_config(target)
    assert config.train.learning_rate == 3e-4 and config.data.source == str(data_csv.resolve())
    assert raw["train"] == {"learning_rate": 3e-4, "max_length": 32}, (
        "keys not set are left to their defaults"
    )


class _LrApp(FtcApp):
    CSS_PATH = str(Path(tui.app.__file__).with_name("ftc.tcss"))  # a subclass reads it beside itself

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.asked: list[dict[str, Any]] = []

    @on(LrFindRequested)
    def _lr_find(self, message: LrFindRequested) -> None:
        self.asked.append(message.config)
        message.prevent_default()  # the app's own handler would start a range test


async def test_find_lr_sends_the_config_and_a_suggestion_fills_the_rate(
    tiny_model: Path, data_csv: Path, sessions_root: Path
) -> None:
    app = _LrApp(sessions_root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await _until(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the form")
        form = app.screen
        await pilot.press("ctrl+f")  # the form is not valid yet: nothing asked
        assert app.asked == [] and "fix the fields" in _notice(form)
        await _type(pilot, data_csv.name)
        await _set(pilot, "model-source", "model")
        await _set(pilot, "train-max_length", "64")
        await _until(pilot, lambda: not form.errors, what="a valid form")
        await pilot.press("ctrl+f")
        await _until(pilot, lambda: app.asked, what="LrFindRequested")
        assert app.asked[0]["data"]["source"] == str(data_csv.resolve())
        form.post_message(LearningRateSuggested(3.2e-4))
        await _until(pilot, lambda: form.config()["train"].get("learning_rate") == 3.2e-4)
        # escape asks before it drops an edited form: no keeps it, yes goes back.
        await pilot.press("escape")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("n")
        await _until(pilot, lambda: app.screen is form, what="the form again")
        await pilot.press("escape")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("y")
        await _until(pilot, lambda: isinstance(app.screen, SessionsScreen), what="the sessions screen")


async def test_a_failing_data_test_stops_the_start_unless_accepted(
    tiny_model: Path, tmp_path: Path, sessions_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").symlink_to(tiny_model)
    sorted_csv = write_csv(tmp_path / "sorted.csv", sort=True)  # every neg row, then every pos row
    app = FtcApp(sessions_root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await _until(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the form")
        form = app.screen
        await _type(pilot, sorted_csv.name)
        await _set(pilot, "model-source", "model")
        await _set(pilot, "train-max_length", "32")
        await _until(pilot, lambda: form.source is not None and not form.errors, what="a valid form")
        await pilot.press("ctrl+s")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 60, "the question")
        assert "Data test failed (order)" in screen_text(app)
        await pilot.press("n")
        await _until(pilot, lambda: "not started" in _notice(form), what="not started")
        assert "FAIL order" in str(form.query_one("#nr-checks", Static).render())
        assert list_sessions(sessions_root) == []
        monitor = await _start_and_open_monitor(pilot)  # this time: y
    config = load_toml(resolve(sessions_root, monitor.session_id).config)
    assert config["data"]["on_fail"] == "warn", "as ftc train --allow-failing-checks writes it"


def test_every_train_key_has_a_field() -> None:
    main, advanced = all_specs()
    keys = {s.key for s in main + advanced if s.section == "train"}
    wanted = set(TrainSection.model_fields) - {"early_stopping"}
    wanted |= {
        f"early_stopping.{k}" for k in TrainSection.model_fields["early_stopping"].annotation.model_fields
    }
    assert keys == wanted


async def test_a_latin_1_file_is_detected_and_its_encoding_written_into_the_form(
    data_csv: Path, sessions_root: Path
) -> None:
    """An unset encoding is detected (as --encoding auto) and filled in, so the run reads the file so."""
    latin = data_csv.with_name("tweets.csv")
    rows = "id,review,sentiment\n1,Caf\xe9 ma\xf1ana was great,pos\n2,awful,neg\n"
    latin.write_bytes(rows.encode("latin-1"))
    app = FtcApp(sessions_root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await _until(pilot, lambda: isinstance(app.screen, NewRunScreen), what="the new-run screen")
        form = app.screen
        await _set(pilot, "data-path", latin.name)
        await _until(pilot, lambda: form.source is not None, what="the data file opened")
        assert "(detected)" in _err(form, "data-path")
        encoding = form.query_one("#f-data-encoding", Input).value
        assert encoding in ("latin-1", "cp1252", "iso8859-1"), encoding
        assert form.query_one("#f-data-label_col", Select).value == "sentiment"
