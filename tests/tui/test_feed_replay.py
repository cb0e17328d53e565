"""The summarised replay (tui/replay.py): the same events as the journal reader, steps as columns;
the monitor takes a long history in runs, its event log keeps every line and shows earlier ones on
enter, and live events after the replay arrive once each."""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine import protocol
from engine.journal import JournalReader
from engine.protocol import StepEnded
from engine.session import SessionPaths, write_state
from tests.tui.pilot import until
from tui.app import FtcApp
from tui.replay import LINE, JournalReplay, StepRun
from tui.screens.monitor import MonitorScreen
from tui.widgets.eventlog import EARLIER, EventLog

SIZE = (80, 24)


def _line(body: protocol._Body, seq: int, session: str = "s1", v: object = None) -> bytes:
    env = protocol.make(body, session, seq=seq)
    data = json.loads(protocol.encode(env))
    if v is not None:
        data["v"] = v
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def _flatten(items: list[protocol.Envelope | StepRun]) -> list[tuple[int, str, object]]:
    out: list[tuple[int, str, object]] = []
    for item in items:
        if isinstance(item, StepRun):
            out += [(item.seqs[i], "step_ended", item.body(i)) for i in range(len(item))]
        else:
            assert item.seq is not None
            out.append((item.seq, item.type, item.body))
    return out


def test_a_full_step_line_is_read_by_the_fast_path() -> None:
    """What protocol.encode writes for a StepEnded with every field: a protocol change that adds a
    field fails here (the replay would quietly decode every step in full, seconds at 100k)."""
    body = StepEnded(
        step=7, total_steps=40, epoch=0.5, loss=0.25, learning_rate=5e-5, grad_norm=1.5,
        examples_per_s=61.5, tokens_per_s=7872.0, eta_s=12.0,
    )  # fmt: skip
    rows = LINE.findall(_line(body, 9))
    assert rows[0][0], "a valid step line did not match the fast path"
    run = StepRun._of_matches([rows[0]])
    assert (run.seqs, run.steps, run.losses, run.learning_rates, run.total_steps, run.examples_per_s) == (
        [9],
        [7],
        [0.25],
        [5e-5],
        40,
        [61.5],  # the compare screen's throughput column
    )
    assert run.body(0) == body
    bare = StepRun._of_matches([LINE.findall(_line(StepEnded(step=8), 10))[0]])
    assert (bare.losses, bare.examples_per_s, bare.total_steps) == ([None], [None], None)


def test_the_replay_gives_what_the_journal_reader_gives(tmp_path: Path) -> None:
    """Every event once, in order, bodies equal; odd lines decoded in full and named, as the reader does."""
    events = tmp_path / "events.jsonl"
    lines = [_line(protocol.JobStarted(job="train", step=0, total_steps=30), 1)]
    seq = 1
    for step in range(1, 31):
        seq += 1
        loss = None if step == 5 else 1.0 / step  # a step without a loss
        lines.append(_line(StepEnded(step=step, total_steps=30, loss=loss, learning_rate=1e-4), seq))
        if step == 10:
            seq += 1
            lines.append(_line(protocol.EvaluationEnded(step=10, metrics={"loss": 0.5}), seq))
    seq += 1
    newer = json.loads(_line(StepEnded(step=31, loss=0.1), seq))
    newer["v"], newer["body"]["new_field"] = f"1.{protocol.MINOR + 1}", 3  # a newer ftc's field
    lines.append(json.dumps(newer, separators=(",", ":")).encode() + b"\n")
    lines.append(b'{"v":"1.5","type":"step_ended" this line is damaged\n')
    seq += 1
    lines.append(_line(StepEnded(step=32, loss=0.1), seq))
    lines.append(_line(StepEnded(step=3, loss=0.1), 3))  # a repeated seq: dropped by both
    seq += 1
    lines.append(_line(protocol.JobFinished(step=32), seq))
    events.write_bytes(b"".join(lines))

    reader = JournalReader(events)
    expected = [(e.seq, e.type, e.body) for e in reader.read_new() if e.seq is not None]
    expected = [e for i, e in enumerate(expected) if e[0] > max((x[0] for x in expected[:i]), default=0)]
    replay = JournalReplay(events)
    items: list[protocol.Envelope | StepRun] = []
    while page := replay.read_page(max_bytes=2000):  # small pages: runs cut at page ends too
        items += page
    assert _flatten(items) == expected
    assert replay.last_seq == seq and replay.offset == events.stat().st_size
    assert sum(isinstance(item, StepRun) for item in items) >= 2
    notices = reader.notices.take()
    assert len(notices) == 2 and replay.notices.take() == notices  # the newer field, the damaged line


def _long_session(root: Path, steps: int) -> SessionPaths:
    paths = SessionPaths(root / "20260101-000000-train-long")
    paths.create()
    paths.config.write_text('[job]\nkind = "train"\n')
    write_state(paths, status="finished", job="train", step=steps, total_steps=steps, created=time.time())
    lines = [_line(protocol.JobStarted(job="train", step=0, total_steps=steps), 1, paths.id)]
    for step in range(1, steps + 1):
        if step == 1234:  # ftc 0.1.0 wrote v=1: not the fast path's, decoded in full, still a step
            lines.append(
                _line(StepEnded(step=step, total_steps=steps, loss=1 / step), step + 1, paths.id, v=1)
            )
            continue
        lines.append(
            _line(
                StepEnded(step=step, total_steps=steps, loss=1 / step, learning_rate=1e-4), step + 1, paths.id
            )
        )
    paths.events.write_bytes(b"".join(lines))
    return paths


async def test_a_long_history_comes_in_runs_and_every_log_line_can_be_reached(tmp_path: Path) -> None:
    steps = 3000
    paths = _long_session(tmp_path, steps)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
        monitor = app.screen
        assert isinstance(monitor, MonitorScreen)
        feed, log = monitor.feed, monitor.query_one(EventLog)
        await until(pilot, lambda: feed.events_seen == steps + 1, what="the whole journal")
        assert feed.summarised
        assert monitor.loss_panel.steps == list(range(1, steps + 1))
        assert monitor.lr_panel.steps[-1] == steps
        # Every 10th step in the log (300 lines and the job's start), none dropped; the list shows
        # the last LOG_LINES, and its first line offers the earlier ones.
        assert len(log.lines) == steps // 10 + 1
        await until(pilot, lambda: log.options.option_count > 0, what="the list")
        first = log.options.get_option_at_index(0)
        assert first.id == EARLIER and "101 earlier lines" in str(first.prompt), first.prompt
        assert "step 1010/3000" in log.shown()[0]
        log.options.focus()
        log.options.highlighted = 0
        await pilot.press("enter")
        await until(pilot, lambda: not log.hidden, what="the earlier lines")
        assert log.shown()[0].endswith("job train started at step 0")
        assert any("step 10/3000" in line for line in log.shown())

        # Live events after the replay: once each, in order (appended by another writer).
        with paths.events.open("ab") as fh:
            for step in range(steps + 1, steps + 6):
                fh.write(_line(StepEnded(step=step, total_steps=steps + 5, loss=0.01), step + 1, paths.id))
        await until(pilot, lambda: feed.events_seen == steps + 6, what="the appended steps")
        assert monitor.loss_panel.steps == list(range(1, steps + 6))
        assert monitor.last_step is not None and monitor.last_step.step == steps + 5
