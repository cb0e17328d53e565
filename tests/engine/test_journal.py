"""The journal: seq numbering, continuation after a restart, and a half-written last line."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from engine import protocol
from engine.journal import Journal, JournalReader, read_all


def test_seq_continues_across_writers_and_a_torn_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = Journal(path, "s")
    for step in range(1, 4):
        first.append(protocol.StepEnded(step=step))
    first.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with open(path, "a") as fh:  # a crash in the middle of writing event 4
        fh.write('{"v":1,"type":"step_ended","session":"s","se')
    reader = JournalReader(path)
    assert [e.seq for e in reader.read_new()] == [1, 2, 3], "a torn line is never read"
    second = Journal(path, "s")
    env = second.append(protocol.StepEnded(step=4))
    second.close()
    assert env.seq == 4
    assert [e.seq for e in read_all(path)] == [1, 2, 3, 4]
    assert [e.seq for e in reader.read_new()] == [4], "an incremental reader resumes at its offset"


def test_reader_waits_for_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    journal = Journal(path, "s")
    reader = JournalReader(path)
    assert list(reader.read_new()) == []
    line = protocol.encode(protocol.make(protocol.Paused(step=1), "s", seq=1)).decode()
    with open(path, "a") as fh:  # as a writer caught half-way would leave it
        fh.write(line[:20])  # half a line, flushed: not yet an event
        fh.flush()
        assert list(reader.read_new()) == []
        fh.write(line[20:] + "\n")
        fh.flush()
    assert [e.type for e in reader.read_new()] == ["paused"]
    journal.close()


def test_reader_says_once_what_a_newer_ftc_added_and_what_was_damaged(tmp_path: Path) -> None:
    """Events from a newer minor are kept (unknown fields dropped, unknown types skipped), each said once."""
    journal = Journal(tmp_path / "events.jsonl", "s")
    for step in (1, 2):
        journal.append(protocol.StepEnded(step=step, loss=0.5))
    journal.close()
    newer = f"{protocol.MAJOR}.{protocol.MINOR + 1}"
    lines = []
    for seq in (3, 4):
        lines.append({"v": newer, "type": "step_ended", "session": "s", "seq": seq,
                      "body": {"step": seq, "loss": 0.4, "gpu_util": 0.9}})  # fmt: skip
    for seq in (5, 6):
        lines.append({"v": newer, "type": "gpu_sampled", "session": "s", "seq": seq, "body": {"util": 1}})
    with open(tmp_path / "events.jsonl", "a") as fh:
        for line in lines:
            fh.write(json.dumps(line) + "\n")
        fh.write('{"v":"1.1","type":"step_ended","session":"s","seq":7,"body":{"step":"x"}}\n')
    reader = JournalReader(tmp_path / "events.jsonl")
    steps = [e.body.step for e in reader.read_new() if isinstance(e.body, protocol.StepEnded)]
    assert steps == [1, 2, 3, 4]
    notices = reader.notices.take()
    assert len(notices) == 3, notices
    assert any("gpu_util" in n for n in notices)
    assert any("gpu_sampled" in n and "line 5" in n for n in notices)
    assert any("line 7" in n and "'step'" in n for n in notices)
    assert reader.notices.take() == []


def test_a_failed_append_leaves_no_half_line_and_no_gap_in_seq(tmp_path: Path, monkeypatch) -> None:
    """A full disk part-way through a line: the file is cut back to the last whole line, the seq not used."""
    path = tmp_path / "events.jsonl"
    journal = Journal(path, "s")
    journal.append(protocol.StepEnded(step=1))
    before = path.read_bytes()
    real_write = os.write
    calls = []

    def full_disk(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data)[:10])  # the disk takes 10 bytes...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...and then no more

    monkeypatch.setattr("engine.journal.os.write", full_disk)
    try:
        journal.append(protocol.StepEnded(step=2))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC and exc.filename == str(path)
    else:
        raise AssertionError("the append should have failed")
    monkeypatch.undo()
    assert calls == [calls[0], calls[0] - 10], "the rest of the line was tried once"
    assert path.read_bytes() == before, "cut back to the last whole line"
    env = journal.append(protocol.StepEnded(step=2))
    journal.close()
    assert env.seq == 2
    assert [e.seq for e in read_all(path)] == [1, 2]


def test_a_follower_replays_10k_events_once_each_in_order_while_more_are_appended(tmp_path: Path) -> None:
    """A reattach to a long history: every event once, in seq order, though the journal grows meanwhile."""
    import threading
    import time

    from engine.client import EventFollower
    from engine.session import SessionPaths, write_state

    paths = SessionPaths(tmp_path / "20261130-000000-long-abcd")
    paths.create()
    write_state(paths, status="finished", job="selftest")
    journal = Journal(paths.events, paths.id)
    for step in range(1, 5001):
        journal.append(protocol.StepEnded(step=step, loss=1.0 / step))

    def more() -> None:  # the rest arrives while the follower reads (as a live engine's would)
        for step in range(5001, 10000):
            journal.append(protocol.StepEnded(step=step, loss=1.0 / step))
        journal.append(protocol.EngineStopped(status="finished"))

    writer = threading.Thread(target=more)
    writer.start()
    follower = EventFollower(paths, page_bytes=64 * 1024)  # paged, as the console reads it
    seqs: list[int] = []
    deadline = time.monotonic() + 60
    try:
        while not follower.ended and time.monotonic() < deadline:
            seqs.extend(env.seq or 0 for env in follower.poll(timeout=0.05))
    finally:
        follower.close()
        writer.join()
        journal.close()
    assert seqs == list(range(1, 10001))
    assert follower.poll(timeout=0) == [], "nothing twice"


def test_a_reader_pages_through_a_journal_without_losing_or_repeating_a_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    journal = Journal(path, "s")
    journal.append(protocol.LogRecorded(text="x" * 5000))  # one line longer than a page
    for step in range(1, 201):
        journal.append(protocol.StepEnded(step=step, loss=0.5))
    journal.close()
    reader = JournalReader(path)
    pages = []
    while reader.pending():
        pages.append([env.seq for env in reader.read_new(max_bytes=1000)])
    assert pages[0][0] == 1 and len(pages[0]) < 20, "a line longer than the page comes whole, few after it"
    assert len(pages) > 10 and all(pages)
    assert [seq for page in pages for seq in page] == list(range(1, 202))


def test_a_stop_during_start_up_never_cuts_a_journal_append(tmp_path: Path) -> None:
    """The start-up interrupt raised just after a line is written waits for append to count its seq.

    Found in a full suite: SIGTERM during start-up gave the journal seqs 1, 2, 2, 3.
    """
    import _thread
    import signal
    import time

    from engine.jobs.base import StartupInterrupted
    from engine.server import SignalWatcher

    watcher = SignalWatcher.__new__(SignalWatcher)  # its handler alone: no signal thread, no mask
    watcher.reason = "signal SIGTERM"
    previous = signal.signal(signal.SIGINT, watcher._interrupt_main)
    journal = Journal(tmp_path / "events.jsonl", "s")
    real = journal._write_line

    def write_then_interrupt(line: bytes, durable: bool) -> None:
        real(line, durable)
        _thread.interrupt_main(signal.SIGINT)  # the stop arrives right after the line is out

    try:
        journal._write_line = write_then_interrupt  # type: ignore[method-assign]
        with pytest.raises(StartupInterrupted):
            journal.append(protocol.LogRecorded(text="a"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the deferred interrupt comes in a few ms
                time.sleep(0.001)
        journal._write_line = real  # type: ignore[method-assign]
        journal.append(protocol.LogRecorded(text="b"))
    finally:
        signal.signal(signal.SIGINT, previous)
        journal.close()
    assert [e.seq for e in read_all(tmp_path / "events.jsonl")] == [1, 2]
