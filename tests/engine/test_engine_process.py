"""The engine as a real detached process: survival, control, clean ends, crashes and file modes."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine import client, protocol
from engine.client import EventFollower
from engine.journal import read_all
from engine.launcher import create_session, start_engine
from engine.session import SessionPaths, list_sessions, live_status, pid_alive, read_state
from tests.conftest import REPO, selftest_config, wait_for


def _pid(paths: SessionPaths) -> int:
    return int(read_state(paths)["pid"])


def _follow_to_end(follower: EventFollower, timeout: float = 60) -> list[protocol.Envelope]:
    events: list[protocol.Envelope] = []
    deadline = time.monotonic() + timeout
    while not follower.ended:
        assert time.monotonic() < deadline, "engine did not end in time"
        events += follower.poll(timeout=0.2)
    return events


def test_engine_is_detached_and_survives_its_launcher_being_killed(sessions_root: Path) -> None:
    paths = create_session(sessions_root, selftest_config(), name="orphan")
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib; from engine.launcher import start_engine;"
            "from engine.session import SessionPaths;"
            "start_engine(SessionPaths(pathlib.Path(sys.argv[1]))); print('up', flush=True); time.sleep(600)",
            str(paths.root),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert launcher.stdout is not None
    assert launcher.stdout.readline().strip() == "up"
    engine_pid = _pid(paths)
    assert os.getsid(engine_pid) == engine_pid, "engine must lead its own process session"
    assert os.getsid(engine_pid) != os.getsid(launcher.pid)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    os.kill(engine_pid, signal.SIGHUP)  # what a dropped SSH connection sends
    time.sleep(0.5)
    reply = client.request(paths, protocol.Ping())
    assert reply.status == "running"
    step_before = reply.step
    wait_for(lambda: client.request(paths, protocol.Status()).step > step_before, what="steps after SIGHUP")
    assert "/dev/null" in os.readlink(f"/proc/{engine_pid}/fd/0")
    assert os.readlink(f"/proc/{engine_pid}/fd/1") == str(paths.log)


def test_bad_messages_get_error_replies_and_the_engine_keeps_serving(start_selftest) -> None:
    paths = start_selftest()
    endpoint = read_state(paths)["endpoints"]["commands"]
    good = json.loads(protocol.encode(protocol.make(protocol.Pause(), paths.id)))
    cases = {
        b"not json at all": "MalformedMessage",
        json.dumps({**good, "type": "format_disk"}).encode(): "UnknownType",
        json.dumps({**good, "v": 0}).encode(): "VersionMismatch",
        json.dumps({**good, "extra": 1}).encode(): "InvalidMessage",
        json.dumps({**good, "type": "paused", "body": {"step": 1}}).encode(): "UnknownType",
        json.dumps({**good, "session": "someone-else"}).encode(): "WrongSession",
    }
    for raw, name in cases.items():
        reply = client.send_raw(endpoint, raw)
        assert reply.body.status == "error", raw
        assert reply.body.error_name == name, (raw, reply.body)
    # Nothing above paused it, and it still answers.
    assert client.request(paths, protocol.Ping()).status == "running"


def test_events_while_detached_are_replayed_once_in_order(start_selftest) -> None:
    paths = start_selftest(steps=60, step_s=0.01)
    wait_for(lambda: read_state(paths).get("step", 0) >= 30, what="30 steps with nobody watching")
    seen_first = _follow_to_end(EventFollower(paths))
    journal = read_all(paths.events)
    assert [e.seq for e in seen_first] == list(range(1, len(journal) + 1))
    assert [e.id for e in seen_first] == [e.id for e in journal]
    steps = [e.body.step for e in seen_first if e.type == "step_ended"]
    assert steps == list(range(1, 61))
    assert seen_first[-1].type == "engine_stopped"


def test_two_consoles_following_at_once_see_the_same_events(start_selftest) -> None:
    paths = start_selftest(steps=400, step_s=0.01)
    wait_for(lambda: read_state(paths).get("step", 0) >= 20, what="20 steps with nobody watching")
    followers = [EventFollower(paths), EventFollower(paths)]
    seen: list[list[Any]] = [[], []]
    live_steps = set()
    # Interleave the two, as two consoles attached at the same time would poll.
    deadline = time.monotonic() + 60
    while not all(f.ended for f in followers) and time.monotonic() < deadline:
        for i, follower in enumerate(followers):
            if not follower.ended:
                seen[i].extend(follower.poll(timeout=0.05))
        live_steps.add(read_state(paths).get("step", 0))
    assert all(f.ended for f in followers), "both followers reach the engine's end"
    journal = read_all(paths.events)
    assert [e.id for e in seen[0]] == [e.id for e in seen[1]] == [e.id for e in journal]
    assert len(live_steps) > 10, "the followers were attached while the engine was still stepping"


def test_live_follower_matches_journal_exactly(start_selftest) -> None:
    paths = start_selftest(steps=300, step_s=0.0)  # as fast as it goes: a flood of events
    follower = EventFollower(paths)
    events = _follow_to_end(follower)
    journal = read_all(paths.events)
    assert [e.seq for e in events] == [e.seq for e in journal] == list(range(1, len(journal) + 1))


def test_sigterm_checkpoints_and_ends_cleanly(start_selftest) -> None:
    paths = start_selftest()
    wait_for(lambda: read_state(paths).get("step", 0) >= 5, what="some steps")
    pid = _pid(paths)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), what="engine exit after SIGTERM")
    state = read_state(paths)
    assert state["status"] == "stopped"
    kinds = [e.type for e in read_all(paths.events)]
    assert kinds[-3:] == ["checkpoint_saved", "job_stopped", "engine_stopped"]
    last = read_all(paths.events)[-1].body
    assert last.status == "stopped" and "SIGTERM" in last.reason
    saved = json.loads((paths.checkpoints / f"ckpt-{state['step']}" / "selftest.json").read_text())["step"]
    assert saved == state["step"] >= 5
    assert not Path(state["endpoints"]["commands"][len("ipc://") :]).exists(), "socket files are removed"


def test_kill_9_shows_crashed_and_resume_continues(start_selftest) -> None:
    paths = start_selftest(steps=400, checkpoint_every=10)
    wait_for(lambda: read_state(paths).get("step", 0) >= 25, what="25 steps")
    pid = _pid(paths)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="death")
    assert [s.status for s in list_sessions(paths.root.parent)] == ["crashed"]
    with pytest.raises(client.EngineUnavailable, match=r"crashed.*ftc resume"):
        client.request(paths, protocol.Pause())
    checkpoint = max(int(p.name[5:]) for p in paths.checkpoints.glob("ckpt-*"))
    seq_before = read_all(paths.events)[-1].seq
    start_engine(paths, resume=True)
    events = _follow_to_end(EventFollower(paths), timeout=90)
    after = [e for e in events if e.seq > seq_before]
    assert after[0].type == "engine_started" and after[0].body.resumed
    job_started = next(e for e in after if e.type == "job_started")
    assert job_started.body.step == checkpoint
    assert read_state(paths)["status"] == "finished"
    seqs = [e.seq for e in read_all(paths.events)]
    assert seqs == list(range(1, len(seqs) + 1)), "the resumed engine continues the journal's numbering"


def test_pause_holds_the_step_and_is_idempotent(start_selftest) -> None:
    paths = start_selftest()
    wait_for(lambda: read_state(paths).get("step", 0) >= 3, what="steps")
    assert client.request(paths, protocol.Pause()).changed is True
    assert client.request(paths, protocol.Pause()).changed is False
    wait_for(lambda: read_state(paths)["status"] == "paused", what="paused state")
    held = read_state(paths)["step"]
    time.sleep(0.6)
    assert read_state(paths)["step"] == held
    assert client.request(paths, protocol.CheckpointNow()).changed is True
    wait_for(lambda: any(e.type == "checkpoint_saved" for e in read_all(paths.events)), what="checkpoint")
    assert client.request(paths, protocol.Unpause()).changed is True
    wait_for(lambda: read_state(paths)["step"] > held, what="progress after unpause")
    kinds = [e.type for e in read_all(paths.events)]
    assert kinds.count("paused") == 1 and kinds.count("unpaused") == 1


def test_stop_command_ends_cleanly_and_later_commands_say_why(start_selftest) -> None:
    paths = start_selftest()
    wait_for(lambda: read_state(paths).get("step", 0) >= 2, what="steps")
    client.request(paths, protocol.Stop())
    wait_for(lambda: read_state(paths)["status"] == "stopped", what="stopped")
    with pytest.raises(client.EngineUnavailable, match="status: stopped"):
        client.request(paths, protocol.Pause())


def test_a_failing_job_is_reported_and_the_engine_exits(start_selftest) -> None:
    paths = start_selftest(fail_at=5)
    wait_for(lambda: read_state(paths)["status"] == "failed", what="failed status")
    state = read_state(paths)
    assert "selftest failure requested at step 5" in state["message"]
    failed = [e for e in read_all(paths.events) if e.type == "job_failed"]
    assert len(failed) == 1 and failed[0].body.step == 4
    assert "Traceback" in paths.log.read_text()
    wait_for(lambda: not pid_alive(state["pid"]), what="engine exit")
    assert live_status(read_state(paths)) == "failed"


def test_session_folder_and_sockets_are_private(start_selftest) -> None:
    paths = start_selftest()
    state = read_state(paths)
    sockets = [Path(state["endpoints"][k][len("ipc://") :]) for k in ("commands", "events")]
    for path in [paths.root.parent, paths.root, sockets[0].parent]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in [paths.state, paths.events, paths.config, paths.log, *sockets]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert all(stat.S_ISSOCK(p.stat().st_mode) for p in sockets)


def test_long_session_paths_use_a_short_private_socket_dir(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / ("deep" * 20) / "sessions"
    monkeypatch.setenv("FTC_SESSIONS_DIR", str(root))
    paths = create_session(root, selftest_config(steps=5, step_s=0.01), name="deep")
    start_engine(paths)
    endpoint = read_state(paths)["endpoints"]["commands"]
    assert len(endpoint) <= 107 and not endpoint.startswith(f"ipc://{paths.root}")
    events = _follow_to_end(EventFollower(paths))
    assert events[-1].body.status == "finished"


def test_starting_a_running_session_twice_is_refused(start_selftest) -> None:
    paths = start_selftest()
    with pytest.raises(Exception, match="already has a running engine"):
        start_engine(paths)


def test_events_caused_by_a_command_carry_its_id(start_selftest) -> None:
    paths = start_selftest(checkpoint_every=100000)

    def send(body: Any) -> str:
        env = protocol.make(body, paths.id)
        reply = client.send_raw(read_state(paths)["endpoints"]["commands"], protocol.encode(env))
        assert reply.parent == env.id and reply.body.status == "ok"
        return env.id

    def caused_by(cmd_id: str, kind: str) -> Any:
        return wait_for(
            lambda: next((e for e in read_all(paths.events) if e.type == kind and e.parent == cmd_id), None),
            what=f"{kind} answering {cmd_id}",
        )

    wait_for(lambda: read_state(paths).get("step", 0) >= 3, what="some steps")
    caused_by(send(protocol.Pause()), "paused")
    caused_by(send(protocol.CheckpointNow()), "checkpoint_saved")  # checkpoints while paused
    caused_by(send(protocol.Unpause()), "unpaused")
    stop_id = send(protocol.Stop())
    caused_by(stop_id, "checkpoint_saved")
    caused_by(stop_id, "job_stopped")
    # Events nobody asked for have no parent.
    assert all(e.parent is None for e in read_all(paths.events) if e.type == "step_ended")


def test_a_second_engine_for_a_served_session_refuses_to_start(start_selftest) -> None:
    paths = start_selftest()
    wait_for(lambda: read_state(paths).get("step", 0) >= 3, what="some steps")
    first_pid = _pid(paths)
    seq_before = read_all(paths.events)[-1].seq
    # Bypass the launcher's own check, as a second 'ftc resume' racing the first could.
    proc = subprocess.run(
        [sys.executable, "-m", "engine", str(paths.root), "--resume"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert "already served by another engine" in proc.stderr
    assert read_state(paths)["pid"] == first_pid, "the state still names the serving engine"
    assert client.request(paths, protocol.Ping()).status == "running"
    kinds = [e.type for e in read_all(paths.events) if e.seq > seq_before]
    assert "engine_started" not in kinds, "the refused engine wrote nothing to the journal"
