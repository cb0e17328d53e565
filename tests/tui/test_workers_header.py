"""A multi-worker run in the monitor: 'workers 2/2' in the header, a warning colour and the dead
worker's note (event log) once one is not alive; a single-worker run says nothing of workers."""

from __future__ import annotations

from pathlib import Path

from engine.protocol import EngineStarted, WorkerHealth, WorkersReported
from tests.tui.frame import region_rows
from tests.tui.journals import events_in_phase, session_in_phase, write_journal
from tests.tui.pilot import until
from tui.app import FtcApp
from tui.screens.monitor import MonitorScreen
from tui.widgets.eventlog import EventLog
from tui.widgets.header import RunHeader

SIZES = ((80, 24), (60, 20))


def _group(*alive: bool, note: str = "") -> WorkersReported:
    return WorkersReported(
        total=len(alive),
        workers=[
            WorkerHealth(index=i, host=f"node{i}", pid=100 + i, alive=a, step=24, note="" if a else note)
            for i, a in enumerate(alive)
        ],
    )


def _events(*reports: WorkersReported) -> list:
    events = events_in_phase("training")
    assert isinstance(events[0], EngineStarted)
    events[0] = EngineStarted(pid=4242, hostname="gpu-box", job="train", workers=2)
    return [*events, *reports]


async def _header(
    app: FtcApp, pilot, events: int, size: tuple[int, int]
) -> tuple[MonitorScreen, RunHeader, str]:
    await until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
    monitor = app.screen
    assert isinstance(monitor, MonitorScreen)
    await until(
        pilot, lambda: monitor.feed.events_seen >= events and monitor.feed.status != "?", what="journal"
    )
    await pilot.pause(0.1)
    header = monitor.query_one(RunHeader)
    return monitor, header, "\n".join(row.strip() for row in region_rows(app, header.content_region))


async def test_a_whole_group_shows_workers_alive_of_total(tmp_path: Path) -> None:
    paths = session_in_phase(tmp_path, "training")
    events = _events(_group(True, True))
    write_journal(paths, events)
    for size in SIZES:
        app = FtcApp(tmp_path, attach=paths.id)
        async with app.run_test(size=size) as pilot:
            _monitor, header, text = await _header(app, pilot, len(events), size)
            assert "workers 2/2" in text, (size, text)
            assert header.group == (2, 2)


async def test_a_dead_worker_turns_the_count_yellow_and_its_note_is_logged(tmp_path: Path) -> None:
    paths = session_in_phase(tmp_path, "training")
    note = "exited with signal 9 (killed)"
    events = _events(_group(True, True), _group(True, True), _group(True, False, note=note))
    write_journal(paths, events)
    for size in SIZES:
        app = FtcApp(tmp_path, attach=paths.id)
        async with app.run_test(size=size) as pilot:
            monitor, header, text = await _header(app, pilot, len(events), size)
            assert "workers 1/2" in text, (size, text)
            line = header.lines(size[0])[0]
            start = line.plain.index("workers 1/2")
            assert any("yellow" in str(span.style) for span in line.spans if span.start <= start < span.end)
            logged = [entry for entry in monitor.query_one(EventLog).shown() if "workers" in entry]
            # The repeated whole report is not logged twice; the change is, with the note.
            assert len(logged) == 2, logged
            assert logged[0].endswith("workers 2/2 alive")
            assert f"worker 1 on node1 pid 101 is not alive: {note}" in logged[1]


async def test_one_worker_says_nothing_of_workers(tmp_path: Path) -> None:
    paths = session_in_phase(tmp_path, "training")
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        _monitor, header, text = await _header(app, pilot, len(events_in_phase("training")), (80, 24))
        assert "workers" not in text and header.group is None


async def test_a_worker_that_finished_with_the_group_is_no_warning(tmp_path: Path) -> None:
    """At the end a worker exits before the chief's test evaluation: found showing 'workers 1/2' in yellow."""
    from engine.protocol import WORKER_FINISHED

    paths = session_in_phase(tmp_path, "training")
    events = _events(_group(True, True), _group(True, False, note=WORKER_FINISHED))
    write_journal(paths, events)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor, header, text = await _header(app, pilot, len(events), (80, 24))
        assert "workers 2/2" in text and header.group == (2, 2), text
        logged = [entry for entry in monitor.query_one(EventLog).shown() if "not alive" in entry]
        assert logged == [], logged
