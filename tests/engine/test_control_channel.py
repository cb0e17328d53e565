"""The control channel stays honest: every command answered once, clear errors, sockets that come back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import zmq

from engine import client, protocol
from engine.journal import read_all
from engine.session import ENDED_STATUSES, SessionPaths, read_state
from tests.conftest import wait_for

# The names an error reply may carry: the protocol's own, never a Python exception class.
ERROR_NAMES = {
    "MalformedMessage",
    "UnknownType",
    "VersionMismatch",
    "InvalidMessage",
    "WrongSession",
    "MessageTooLarge",
    "Busy",
    "InternalError",
}


def _dealer(endpoint: str, rcvhwm: int = 1000) -> zmq.Socket[bytes]:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.connect(endpoint)
    return sock


def _burst(
    paths: SessionPaths, n: int, rcvhwm: int = 1000, timeout: float = 120
) -> dict[str, protocol.Reply]:
    """Send n status/ping commands without reading, then read every reply; reply per command id."""
    sock = _dealer(read_state(paths)["endpoints"]["commands"], rcvhwm)
    sent = []
    try:
        for i in range(n):
            env = protocol.make(protocol.Status() if i % 2 else protocol.Ping(), paths.id)
            sent.append(env.id)
            sock.send(protocol.encode(env))
        replies: dict[str, protocol.Reply] = {}
        twice = []
        deadline = time.monotonic() + timeout
        while len(replies) < n:
            assert time.monotonic() < deadline, f"{len(replies)} of {n} replies within {timeout}s"
            if not sock.poll(5000):
                break  # nothing more is coming: the count below says what was lost
            env = protocol.decode(sock.recv(), kinds={"reply": protocol.Reply})
            assert isinstance(env.body, protocol.Reply) and env.parent is not None
            if env.parent in replies:
                twice.append(env.parent)
            replies[env.parent] = env.body
    finally:
        sock.close()
    assert not twice, f"{len(twice)} commands answered twice"
    assert set(replies) == set(sent), f"{len(set(sent) - set(replies))} of {n} commands got no reply"
    return replies


def test_a_burst_of_10000_commands_gets_10000_replies(start_selftest) -> None:
    paths = start_selftest()
    started = time.monotonic()
    replies = _burst(paths, 10_000)
    seconds = time.monotonic() - started
    kinds = Counter(r.status if r.status == "ok" else r.error_name for r in replies.values())
    assert kinds == {"ok": 10_000}, kinds
    assert seconds < 120
    print(f"10,000 commands answered in {seconds:.1f}s")
    # The engine kept its job going and still answers.
    step = client.request(paths, protocol.Status()).step
    wait_for(lambda: client.request(paths, protocol.Status()).step > step, what="steps after the burst")


def test_a_client_that_does_not_read_gets_busy_for_what_was_not_done(
    sessions_root: Path, monkeypatch
) -> None:
    """Replies wait for a client that does not read; past a bound its commands are answered Busy, not lost."""
    from engine.launcher import create_session, start_engine
    from tests.conftest import selftest_config

    monkeypatch.setenv("FTC_ENGINE_PENDING_REPLIES", "50")
    monkeypatch.setenv("FTC_ENGINE_REPLY_HWM", "10")
    paths = create_session(sessions_root, selftest_config(), name="busy")
    start_engine(paths)
    replies = _burst(paths, 6000, rcvhwm=10)
    kinds = Counter(r.status if r.status == "ok" else r.error_name for r in replies.values())
    assert set(kinds) == {"ok", "Busy"}, kinds
    busy = next(r for r in replies.values() if r.error_name == "Busy")
    assert "retry" in (busy.error_text or "") and "was not done" in (busy.error_text or "")


def test_error_replies_name_the_field_briefly_and_never_an_exception_class(start_selftest) -> None:
    paths = start_selftest()
    endpoint = read_state(paths)["endpoints"]["commands"]
    good = json.loads(protocol.encode(protocol.make(protocol.Pause(), paths.id)))
    huge = "x" * 20_000
    cases = {
        "huge type": (json.dumps({**good, "type": huge}), "UnknownType"),
        "huge version": (json.dumps({**good, "v": huge}), "VersionMismatch"),
        "huge session": (json.dumps({**good, "session": huge}), "WrongSession"),
        "huge field name": (json.dumps({**good, "body": {huge: 1}}), "InvalidMessage"),
        "huge id": (json.dumps({**good, "id": huge}), "InvalidMessage"),
        "deeply nested": ("[" * 30_000 + "]" * 30_000, "MalformedMessage"),
        "too large": (json.dumps({**good, "body": {"x": "y" * 1_000_000}}), "MessageTooLarge"),
        "wrong type of body": (json.dumps({**good, "body": [1, 2]}), "InvalidMessage"),
        "not utf-8": (b"\xff\xfe{}", "MalformedMessage"),
    }
    for what, (raw, name) in cases.items():
        data = raw if isinstance(raw, bytes) else raw.encode()
        reply = client.send_raw(endpoint, data)
        assert isinstance(reply.body, protocol.Reply)
        body = reply.body
        assert body.status == "error" and body.error_name == name, (what, body)
        text = body.error_text or ""
        assert len(text) <= 300, (what, len(text))
        for cls in ("TypeError", "RecursionError", "ValueError", "KeyError", "Traceback"):
            assert cls not in text, (what, text)
        assert body.error_name in ERROR_NAMES
    extra = client.send_raw(endpoint, json.dumps({**good, "body": {"colour": 1}}).encode()).body
    assert isinstance(extra, protocol.Reply) and "field 'colour'" in (extra.error_text or "")
    assert client.request(paths, protocol.Ping()).status == "running", "the engine keeps serving"


def test_a_deleted_socket_folder_is_recreated_and_control_works_again(start_selftest) -> None:
    paths = start_selftest()
    endpoint = read_state(paths)["endpoints"]["commands"]
    folder = Path(endpoint.removeprefix("ipc://")).parent
    shutil.rmtree(folder)
    assert client.request(paths, protocol.Pause()).changed, "the command waits for the socket to come back"
    wait_for(lambda: read_state(paths)["status"] == "paused", what="paused")
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    assert client.request(paths, protocol.Unpause()).changed
    notes = [e.body.text for e in read_all(paths.events) if e.type == "log_recorded"]
    assert any("socket folder" in n and "recreated" in n for n in notes), notes


def test_a_socket_that_stays_gone_says_how_to_restore_control(start_selftest) -> None:
    paths = start_selftest()
    pid = read_state(paths)["pid"]
    folder = Path(read_state(paths)["endpoints"]["commands"].removeprefix("ipc://")).parent
    os.kill(pid, signal.SIGSTOP)  # a hung engine: it cannot bind again
    try:
        shutil.rmtree(folder)
        with pytest.raises(client.EngineUnavailable) as err:
            client.request(paths, protocol.Pause())
        text = str(err.value)
        assert "gone" in text and f"kill {pid}" in text and f"ftc resume {paths.id}" in text
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: (folder / "cmd.sock").exists(), what="socket bound again once the engine runs")
    assert client.request(paths, protocol.Ping()).status == "running"


def test_state_says_the_final_status_before_the_last_events_are_published(start_selftest) -> None:
    """Whoever sees engine_stopped (live or journal) finds state.json final; step events follow the state."""
    paths = start_selftest(steps=40, step_s=0.01)
    follower = client.EventFollower(paths)
    deadline = time.monotonic() + 60
    late = []
    try:
        while not follower.ended:
            assert time.monotonic() < deadline, "engine did not end in time"
            for env in follower.poll(timeout=0.2):
                state = read_state(paths)
                if env.type == "step_ended" and state.get("step", 0) < env.body.step:  # type: ignore[union-attr]
                    late.append((env.body.step, state.get("step")))  # type: ignore[union-attr]
                if env.type in ("engine_stopped", "job_finished"):
                    assert state["status"] in ENDED_STATUSES, (
                        f"{env.type} seen while state says {state['status']}"
                    )
    finally:
        follower.close()
    assert not late, f"step events seen before the state had the step: {late[:5]}"
    assert read_state(paths)["status"] == "finished"
