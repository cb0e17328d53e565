"""The range test's screen: loss against LR with the suggestion, and its rate into the new-run form."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from textual import on
from textual.app import ComposeResult
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Static

from engine.config import dump_toml
from engine.protocol import (
    EngineStarted,
    EngineStopped,
    JobFinished,
    JobStarted,
    JobSummary,
    LogRecorded,
    PhaseChanged,
    StepEnded,
)
from engine.session import SessionPaths, write_state
from tests.support.tiny import make_tiny_model, write_dataset
from tests.tui.journals import ENGINE_HOST, T0, write_journal
from tests.tui.screen_text import screen_text
from tui.app import FtcApp
from tui.messages import LearningRateSuggested, LrFindRequested
from tui.screens.lrfind import LrFindScreen
from tui.widgets.curves import rate_text

STEPS = 60
SUGGESTED = 1.234e-3  # shown, and given to the form, as 1.2e-3


def _rate(i: int) -> float:
    return 1e-7 * (1e7) ** (i / (STEPS - 1))


def _loss(rate: float) -> float:
    # Flat, falling fastest near 1e-3, lowest near 3e-2, then up (the shape of a real sweep).
    x = math.log10(rate)
    return round(0.7 - 0.3 * math.tanh(1.5 * (x + 3)) + (0.0 if x < -1.5 else 2.0 * (x + 1.5) ** 2), 4)


def lr_find_session(root: Path, name: str = "lr-done", finished: bool = True) -> SessionPaths:
    """An lr_find session as its engine leaves it: a whole sweep and the suggestion (or halfway, running)."""
    paths = SessionPaths(root / name)
    paths.create()
    config = {"job": {"kind": "lr_find"}, "model": {"source": "bert-base-uncased"}, "data": {"dir": "data"}}
    paths.config.write_text(dump_toml(config), encoding="utf-8")
    last = STEPS if finished else STEPS // 2
    events: list[Any] = [
        EngineStarted(pid=4242, hostname=ENGINE_HOST, job="lr_find"),
        JobStarted(job="lr_find", step=0, total_steps=STEPS),
        PhaseChanged(phase="training", step=1, seconds=3.0),
        *[
            StepEnded(step=i + 1, total_steps=STEPS, loss=_loss(_rate(i)), learning_rate=_rate(i))
            for i in range(last)
        ],
    ]
    if finished:
        events += [
            LogRecorded(
                text="suggested learning rate 0.00123 (steepest descent of the smoothed loss); "
                "the lowest loss was at 0.0301"
            ),
            JobFinished(step=STEPS, summary=JobSummary(steps=STEPS, suggested_learning_rate=SUGGESTED)),
            EngineStopped(status="finished"),
        ]
    write_journal(paths, events)
    write_state(
        paths,
        status="finished" if finished else "running",
        job="lr_find",
        name=name,
        step=last,
        total_steps=STEPS,
        hostname=ENGINE_HOST,
        created=T0,
        started=T0,
        heartbeat=time.time(),
    )
    return paths


async def _until(pilot: Pilot[None], predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _settled(screen: Any, steps: int, suggested: bool = True) -> bool:
    return (
        isinstance(screen, LrFindScreen)
        and len(screen.curve.rates) >= steps
        and (screen.suggested is not None or not suggested)
        and screen.feed.status != "?"
    )


async def test_a_finished_test_shows_its_curve_and_suggestion(tmp_path: Path) -> None:
    paths = lr_find_session(tmp_path)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: _settled(app.screen, STEPS), what="the sweep replayed")
        screen = app.screen
        assert isinstance(screen, LrFindScreen)
        screen.redraw()
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "Suggested learning rate 1.2e-3" in text, text
        assert "Set [train] learning_rate = 1.2e-3" in text  # opened from the list, not from the form
        assert "suggested 1.2e-3" in text  # the plot's legend names the marked rate
        assert "1e-7" in text and "1e-1" in text  # the x axis in decades of the learning rate
        # The curve is the journal's: every step's rate and loss, rising rates.
        assert screen.curve.rates == pytest.approx([_rate(i) for i in range(STEPS)])
        await pilot.press("enter")  # "use it": here, with no form below, the rate is shown to copy
        await _until(
            pilot,
            lambda: any("set [train] learning_rate" in str(n.message) for n in app._notifications),
            what="the suggestion shown",
        )
        assert isinstance(app.screen, LrFindScreen)


class FakeForm(Screen[None]):
    """Stands in for the new-run screen: it asks for a range test and keeps the rate it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def compose(self) -> ComposeResult:
        yield Static("the new-run form")

    @on(LearningRateSuggested)
    def suggested(self, message: LearningRateSuggested) -> None:
        self.rates.append(message.learning_rate)


async def test_use_it_fills_the_rate_into_the_form_that_asked(tmp_path: Path) -> None:
    paths = lr_find_session(tmp_path)
    app = FtcApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        form = FakeForm()
        await app.push_screen(form)
        app._open_lr_find(paths.id)  # what the App does once the session of a form's test has started
        await _until(pilot, lambda: _settled(app.screen, STEPS), what="the sweep replayed")
        assert "use it in the new-run form" in screen_text(app)
        await pilot.press("enter")
        await _until(pilot, lambda: form.rates == [1.2e-3], what="the form given the rate")
        assert app.screen is form


async def test_no_suggestion_while_the_sweep_runs(tmp_path: Path) -> None:
    paths = lr_find_session(tmp_path, "lr-running", finished=False)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: _settled(app.screen, STEPS // 2, suggested=False), what="half a sweep")
        await pilot.pause(0.2)
        assert "Sweeping: step 30/60" in screen_text(app)
        await pilot.press("enter")
        await _until(
            pilot,
            lambda: any("No suggestion yet" in str(n.message) for n in app._notifications),
            what="no suggestion yet",
        )


@pytest.mark.slow  # an engine process with TensorFlow: ~25-50 s on 2 busy cores
@pytest.mark.timeout(240)
async def test_a_range_test_of_the_form_on_the_tiny_model(tmp_path: Path, sessions_root: Path) -> None:
    """The whole path: the form asks (LrFindRequested), an engine sweeps the tiny model, enter fills it."""
    tiny_tf = make_tiny_model(tmp_path / "model", fmt="tf", seed=0)
    tiny_data = write_dataset(tmp_path / "data", n_train=128, n_validation=16, n_test=16, shard_rows=64)
    config = {
        "model": {"source": str(tiny_tf)},
        "data": {"dir": str(tiny_data)},
        "train": {"batch_size": 16, "max_length": 32, "jit_optimizer": False},
        "lr_find": {"start_lr": 1e-5, "end_lr": 1.0, "steps": 12},
    }
    app = FtcApp(sessions_root)
    async with app.run_test(size=(80, 24)) as pilot:
        form = FakeForm()
        await app.push_screen(form)
        form.post_message(LrFindRequested(config))
        await _until(pilot, lambda: isinstance(app.screen, LrFindScreen), timeout=60, what="the screen")
        await _until(pilot, lambda: _settled(app.screen, 2), timeout=180, what="a suggestion")
        screen = app.screen
        assert isinstance(screen, LrFindScreen)
        rate = screen.suggested
        assert rate is not None and 1e-6 <= rate <= 1.0
        assert not any((sessions_root / screen.session_id / "checkpoints").iterdir())
        await pilot.press("enter")
        await _until(pilot, lambda: form.rates == [float(rate_text(rate))], what="the form given the rate")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_snapshot(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    paths = lr_find_session(tmp_path)

    async def settled(pilot: Pilot[None]) -> None:
        await _until(pilot, lambda: _settled(pilot.app.screen, STEPS), what="the sweep replayed")
        pilot.app.screen.redraw()  # type: ignore[attr-defined]
        await pilot.pause(0.2)

    assert snap_compare(FtcApp(tmp_path, attach=paths.id), terminal_size=size, run_before=settled)
