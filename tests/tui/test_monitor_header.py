"""The monitor's header: each phase in words, the resumed step at once, and nothing cut at any size."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget

from engine import protocol
from engine.protocol import EngineStarted, JobStarted, PhaseChanged, StepEnded
from tests.tui.frame import region_rows, screen_rows
from tests.tui.journals import TOTAL, events_in_phase, session_in_phase, write_journal
from tui.app import FtcApp
from tui.feed import SessionFeed
from tui.messages import EventsReceived
from tui.screens.monitor import MonitorScreen
from tui.widgets.header import RunHeader, fit

SIZES = ((80, 24), (60, 20), (200, 50))

# What each phase's header says (whole words as a person reads them).
PHASE_WORDS = {
    "loading": ["running", "loading model bert-base-uncased", "step 0/40"],
    "preparing": ["running", "preparing data 12,000/38,158 rows"],
    "training": ["running", "step 24/40", "60%", "ETA 1m12s", "lr 2.1e-5", "loss 0.1227"],
    "evaluating": ["running", "evaluating 3/12 batches", "step 24/40", "ETA 1m12s"],
    "pausing": ["running", "pausing after the evaluation…", "step 24/40"],
    "paused": ["paused", "step 24/40"],
    "stopped": ["stopped", "step 24/40"],
    "failed": ["failed", "step 27/40"],
}


async def _until(pilot, predicate, timeout: float = 15.0, what: str = "condition") -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _open(pilot, app: FtcApp, events: int) -> tuple[MonitorScreen, RunHeader]:
    await _until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
    monitor = app.screen
    assert isinstance(monitor, MonitorScreen)
    await _until(
        pilot, lambda: monitor.feed.events_seen >= events and monitor.feed.status != "?", what="the journal"
    )
    await pilot.pause(0.1)
    return monitor, monitor.query_one(RunHeader)


def _header_rows(app: FtcApp, header: RunHeader) -> list[str]:
    return [row.strip() for row in region_rows(app, header.content_region)]


def _every_field(header: RunHeader) -> set[str]:
    """Each field the header could show, whole (its lines at a width where nothing is dropped)."""
    groups = (header.summary_fields(), header.progress_fields(), header.resource_fields())
    return {text.plain for fields in groups for _, text in fields}


def _cut_fields(rows: list[str], whole: set[str]) -> list[str]:
    """Pieces of the header rows that are not a whole field (a bar is whole at any length)."""
    pieces = [p for row in rows for p in re.split(r" {2,}", row.strip()) if p]
    return [p for p in pieces if p not in whole and not re.fullmatch(r"━+", p)]


@pytest.mark.parametrize("phase", list(PHASE_WORDS))
async def test_each_phase_is_said_in_the_header(tmp_path: Path, phase: str) -> None:
    paths = session_in_phase(tmp_path, phase)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        _monitor, header = await _open(pilot, app, len(events_in_phase(phase)))
        text = "\n".join(_header_rows(app, header))
        for words in PHASE_WORDS[phase]:
            assert words in text, f"{words!r} not in the {phase} header:\n{text}"
        if phase not in ("training", "evaluating"):
            assert "ETA" not in text or phase in ("loading", "preparing", "pausing"), text
        if phase in ("paused", "stopped", "failed"):
            assert "ETA" not in text and "evaluating" not in text and "pausing" not in text, text


async def test_a_resumed_run_shows_its_step_at_once(tmp_path: Path) -> None:
    """A resume from step 16 of a run that reached 40: never the old 40, 100% and ETA 0s.

    While the new engine loads the model the step is not known yet ("step ?/40 resuming"); its
    job_started says 16, and the header shows 16/40 at once.
    """
    paths = session_in_phase(tmp_path, "training")
    old = events_in_phase("training")
    finished = [StepEnded(step=s, total_steps=TOTAL, loss=0.1, eta_s=0.0) for s in range(25, TOTAL + 1)]
    resumed = [
        EngineStarted(pid=4343, hostname="gpu-box", job="train", resumed=True),
        PhaseChanged(phase="loading_model"),
    ]
    write_journal(paths, [*old, *finished, *resumed])
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor, header = await _open(pilot, app, len(old) + len(finished) + len(resumed))
        text = "\n".join(_header_rows(app, header))
        assert "loading model" in text and "step ?/40" in text and "resuming" in text, text
        assert "100%" not in text and "ETA" not in text and "step 40" not in text, text
        seq = len(old) + len(finished) + len(resumed) + 1
        started = protocol.make(JobStarted(job="train", step=16, total_steps=TOTAL), paths.id, seq=seq)
        monitor.feed._events_received(EventsReceived([started]))
        await _until(pilot, lambda: "step 16/40" in "\n".join(_header_rows(app, header)), what="step 16")
        text = "\n".join(_header_rows(app, header))
        assert "40%" in text and "resuming" not in text and "100%" not in text and "ETA" not in text, text


async def test_phases_arriving_live_change_the_header(tmp_path: Path) -> None:
    """A stop asked for mid-evaluation reads 'stopping after the evaluation…' as soon as its event arrives."""
    paths = session_in_phase(tmp_path, "evaluating")
    events = events_in_phase("evaluating")
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor, header = await _open(pilot, app, len(events))
        seq = len(events)

        def deliver(*bodies: protocol._Body) -> None:
            nonlocal seq
            envs = []
            for body in bodies:
                seq += 1
                envs.append(protocol.make(body, paths.id, seq=seq))
            monitor.feed._events_received(EventsReceived(envs))

        deliver(PhaseChanged(phase="evaluating", step=24, done=9, total=12, unit="batches"))
        await _until(
            pilot, lambda: "evaluating 9/12 batches" in "\n".join(_header_rows(app, header)), what="9/12"
        )
        deliver(PhaseChanged(phase="stopping", step=24))
        await _until(
            pilot,
            lambda: "stopping after the evaluation…" in "\n".join(_header_rows(app, header)),
            what="stopping after the evaluation",
        )
        deliver(protocol.EvaluationEnded(step=24, metrics={"loss": 0.4}))
        await pilot.pause(0.1)
        text = "\n".join(_header_rows(app, header))
        assert "stopping after the evaluation…" in text and "evaluating" not in text, text


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("phase", ["training", "pausing", "failed"])
async def test_nothing_in_the_header_or_footer_is_cut(
    tmp_path: Path, size: tuple[int, int], phase: str
) -> None:
    paths = session_in_phase(tmp_path, phase)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=size) as pilot:
        monitor, header = await _open(pilot, app, len(events_in_phase(phase)))
        width, height = size
        rows = _header_rows(app, header)
        # The header is on screen, whole: not scrolled away, not covered by the plots or the footer.
        region = header.region
        footer = _footer(monitor).region
        assert region.y >= 0 and region.bottom <= footer.y <= height - 1, (region, footer)
        assert monitor.scroll_y == 0 and monitor.max_scroll_y == 0, "the monitor itself scrolls"
        assert len(rows) == 3, rows
        cut = _cut_fields(rows, _every_field(header))
        assert not cut, f"cut fields {cut} at {width}x{height}:\n" + "\n".join(rows)
        text = "\n".join(rows)
        assert "step 24/40" in text or "step 27/40" in text
        if phase == "training":
            assert "ETA 1m12s" in text, f"the ETA is missing at {width}x{height}:\n{text}"
            assert "lr 2.1e-5" in text or width < 80
        # The plots and the tabs take what is left, and both are still there.
        plots = monitor.query_one("#monitor-plots").region
        tabs = monitor.query_one("#monitor-tabs").region
        assert plots.y >= region.bottom and plots.height >= 4 and tabs.height >= 4, (plots, tabs)
        assert tabs.bottom <= footer.y
        # The footer: its last row is the keys, each shown whole or not at all.
        last = screen_rows(app)[height - 1]
        pieces = [p for p in re.split(r" {2,}", last.strip()) if p]
        keys = _footer_keys(monitor)
        assert pieces and all(p in keys for p in pieces), (
            f"a key is cut in the footer at {width}x{height}:\n{last}"
        )


def _footer_keys(monitor: MonitorScreen) -> set[str]:
    """Every "key label" the footer may show, whole."""
    keys = {"? more"}
    for binding in monitor.active_bindings.values():
        b = binding.binding
        keys.add(f"{monitor.app.get_key_display(b)} {b.description}")
    footer = _footer(monitor)
    keys.update(f"{key} {label}" for key, label in getattr(footer, "items", ()))
    return keys


def _footer(monitor: MonitorScreen) -> Widget:
    docked = [w for w in monitor.children if w.styles.dock == "bottom"]
    assert docked, "no footer"
    return docked[-1]


def test_fields_are_dropped_whole_least_important_first() -> None:
    fields = [
        (0, Text("running")),
        (3, Text("loss 0.1227")),
        (7, Text("events 32")),
        (1, Text("evaluating 3/12")),
    ]
    assert fit(fields, 200).plain == "running  loss 0.1227  events 32  evaluating 3/12"
    assert fit(fields, 40).plain == "running  loss 0.1227  evaluating 3/12"
    assert fit(fields, 30).plain == "running  evaluating 3/12"
    assert fit(fields, 10).plain == "running"
    assert fit(fields, 3).plain == ""


@pytest.mark.parametrize("phase", list(PHASE_WORDS))
def test_every_width_from_24_to_200_fits_whole_fields(tmp_path: Path, phase: str) -> None:
    """The header's lines at each width: never wider than the terminal, no field cut, step and ETA kept."""
    paths = session_in_phase(tmp_path, phase)
    feed = SessionFeed(tmp_path, paths.id)
    header = RunHeader(feed)
    for seq, body in enumerate(events_in_phase(phase), start=1):
        feed._dispatch(protocol.make(body, paths.id, seq=seq))
    feed.status = {"paused": "paused", "stopped": "stopped", "failed": "failed"}.get(phase, "running")
    whole = _every_field(header)
    for width in range(24, 201):
        lines = [line.plain for line in header.lines(width)]
        assert all(cell_len(line) <= width for line in lines), (width, lines)
        assert not _cut_fields(lines, whole), (width, lines)
        assert feed.status in lines[0] and re.search(r"step \d+/40", lines[1]), (width, lines)
        if phase in ("training", "evaluating"):
            assert "ETA 1m12s" in lines[1], (width, lines)


async def test_a_resumed_engine_that_names_its_checkpoint_step_shows_it_before_loading(
    tmp_path: Path,
) -> None:
    """Since 1.4 engine_started carries the checkpoint's step: shown while the model still loads."""
    paths = session_in_phase(tmp_path, "training")
    old = events_in_phase("training")
    finished = [StepEnded(step=s, total_steps=TOTAL, loss=0.1, eta_s=0.0) for s in range(25, TOTAL + 1)]
    resumed = [
        EngineStarted(pid=4343, hostname="gpu-box", job="train", resumed=True, step=16),
        PhaseChanged(phase="loading_model"),
    ]
    write_journal(paths, [*old, *finished, *resumed])
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        _monitor, header = await _open(pilot, app, len(old) + len(finished) + len(resumed))
        text = "\n".join(_header_rows(app, header))
        assert "step 16/40" in text and "resuming" in text and "loading model" in text, text
        assert "100%" not in text and "step 40" not in text, text


def test_a_resume_names_the_step_of_the_checkpoint_it_starts_from() -> None:
    from engine.server import resume_step

    assert resume_step(None, {"last_checkpoint_step": 30}) == 30
    assert resume_step("ckpt-20", {"last_checkpoint_step": 30}) == 20
    assert resume_step(None, {}) is None
