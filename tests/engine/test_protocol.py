"""The wire protocol: every message round-trips; every bad message is rejected with a reason."""

from __future__ import annotations

import json

import pytest

from engine import protocol

SAMPLES: dict[str, protocol._Body] = {
    "ping": protocol.Ping(),
    "status": protocol.Status(),
    "pause": protocol.Pause(),
    "unpause": protocol.Unpause(),
    "checkpoint_now": protocol.CheckpointNow(),
    "stop": protocol.Stop(),
    "reply": protocol.Reply(status="error", error_name="X", error_text="why"),
    "engine_started": protocol.EngineStarted(pid=1, hostname="h", job="train"),
    "job_started": protocol.JobStarted(job="train", step=5, total_steps=10),
    "step_ended": protocol.StepEnded(step=3, loss=0.25, learning_rate=1e-5, grad_norm=1.5, eta_s=9.0),
    "schedule_planned": protocol.SchedulePlanned(
        steps=[0, 50, 100], learning_rates=[0.0, 5e-5, 0.0], head_lr_multiplier=10.0, lowest_lr_multiplier=0.2
    ),
    "phase_changed": protocol.PhaseChanged(phase="evaluating", step=40, done=3, total=12, unit="batches"),
    "workers_reported": protocol.WorkersReported(
        total=2,
        workers=[
            protocol.WorkerHealth(index=0, host="gpu1", pid=41, step=12, last_seen=1700000000.0),
            protocol.WorkerHealth(index=1, host="gpu2", pid=77, alive=False, note="exited with signal 9"),
        ],
    ),
    "resources_sampled": protocol.ResourcesSampled(
        cpu_percent=187.5,
        rss=2_000_000_000,
        host_memory_used=8_000_000_000,
        host_memory_total=16_000_000_000,
        cpu_count=2,
        gpus=[protocol.GpuSample(index=0, name="H200", utilization=93.0, memory_used=1, memory_total=2)],
        device="GPU:0",
        precision="mixed_bfloat16",
    ),
    "evaluation_ended": protocol.EvaluationEnded(
        step=3, metrics={"loss": 0.4, "macro_f1": 0.7}, per_class={"pos": {"f1": 0.8}}
    ),
    "checkpoint_saved": protocol.CheckpointSaved(step=3, path="/x", reason="stop", metric=0.5),
    "progress_reported": protocol.ProgressReported(
        stage="read",
        done=10,
        total=20,
        detail=protocol.ProgressDetail(label_counts={"pos": 2}, last_rows=[protocol.RowWritten(row=1)]),
    ),
    "paused": protocol.Paused(step=1),
    "unpaused": protocol.Unpaused(step=1),
    "log_recorded": protocol.LogRecorded(level="warning", text="careful"),
    "job_finished": protocol.JobFinished(step=9, summary=protocol.JobSummary(steps=9, best_metric=0.9)),
    "job_failed": protocol.JobFailed(step=9, error_name="OOM", error_text="out of memory"),
    "job_stopped": protocol.JobStopped(step=9, reason="signal SIGTERM"),
    "engine_stopped": protocol.EngineStopped(status="stopped", reason="signal SIGTERM"),
}


def test_every_message_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(protocol.BODIES)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_round_trip(kind: str) -> None:
    env = protocol.make(SAMPLES[kind], "sess-1", parent="abc", seq=7)
    back = protocol.decode(protocol.encode(env))
    assert back == env
    assert back.type == kind
    assert type(back.body) is type(SAMPLES[kind])
    assert back.body.model_dump() == SAMPLES[kind].model_dump()


def _valid(kind: str = "pause") -> dict:
    seq = 1 if kind in protocol.EVENTS else None
    return json.loads(protocol.encode(protocol.make(SAMPLES[kind], "s", seq=seq)))


@pytest.mark.parametrize(
    ("raw", "name", "fragment"),
    [
        (b"{not json", "MalformedMessage", "not valid JSON"),
        (b"\xff\xfe", "MalformedMessage", "not valid JSON"),
        (b"[1, 2]", "MalformedMessage", "JSON object"),
        (json.dumps({**_valid(), "type": "explode"}).encode(), "UnknownType", "'explode'"),
        (json.dumps({**_valid(), "v": 99}).encode(), "VersionMismatch", "99"),
        (json.dumps({k: v for k, v in _valid().items() if k != "v"}).encode(), "VersionMismatch", "None"),
        (json.dumps({**_valid(), "surprise": 1}).encode(), "InvalidMessage", "surprise"),
        (json.dumps({**_valid(), "body": {"force": True}}).encode(), "InvalidMessage", "force"),
        (json.dumps({**_valid("step_ended"), "body": {"step": "three"}}).encode(), "InvalidMessage", "step"),
        (
            json.dumps({k: v for k, v in _valid().items() if k != "session"}).encode(),
            "InvalidMessage",
            "session",
        ),
        # Near misses that a lax validator would coerce into something valid:
        (json.dumps({**_valid(), "v": True}).encode(), "VersionMismatch", "True"),
        (json.dumps({**_valid(), "v": 1.0}).encode(), "VersionMismatch", "1.0"),
        (json.dumps({**_valid(), "session": ""}).encode(), "InvalidMessage", "session"),
        (json.dumps({**_valid("paused"), "body": {"step": "1"}}).encode(), "InvalidMessage", "step"),
        (json.dumps({**_valid("paused"), "seq": None}).encode(), "InvalidMessage", "seq"),
        (json.dumps({**_valid("paused"), "seq": 0}).encode(), "InvalidMessage", "seq"),
        (json.dumps({**_valid("paused"), "seq": "3"}).encode(), "InvalidMessage", "seq"),
    ],
)
def test_rejections_say_what_is_wrong(raw: bytes, name: str, fragment: str) -> None:
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode(raw)
    assert info.value.name == name
    assert fragment in info.value.text


def test_rejection_keeps_the_correlation_id() -> None:
    data = {**_valid(), "body": {"force": True}}
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode(json.dumps(data))
    assert info.value.parent == data["id"]


def test_commands_only_accepts_commands() -> None:
    raw = protocol.encode(protocol.make(protocol.Paused(step=1), "s"))
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode(raw, kinds=protocol.COMMANDS)
    assert info.value.name == "UnknownType"


def test_names_follow_the_convention() -> None:
    # Events are past tense, commands imperative: no command ends in -ed, every event does.
    assert all(not k.endswith("ed") for k in protocol.COMMANDS)
    assert all(k.endswith("ed") for k in protocol.EVENTS)


# ---------------------------------------------------------------- compatibility across releases


def test_release_0_1_envelopes_read_as_1_0() -> None:
    """ftc 0.1.0 wrote v as the integer 1: still read, as version 1.0."""
    data = {**_valid("paused"), "v": 1}
    env = protocol.decode(json.dumps(data))
    assert env.v == "1.0"
    assert env.ignored == ()


def _from_newer_minor(kind: str = "progress_reported") -> dict:
    data = _valid(kind)
    return {**data, "v": f"{protocol.MAJOR}.{protocol.MINOR + 1}"}


def test_newer_minor_fields_are_ignored_and_named() -> None:
    data = _from_newer_minor()
    data["trace_id"] = "abc"
    data["body"]["gpu_util"] = 0.9
    data["body"]["detail"]["last_rows"][0]["tokens"] = 12  # nested, inside a list
    env = protocol.decode(json.dumps(data))
    assert isinstance(env.body, protocol.ProgressReported)
    assert env.body.detail.label_counts == {"pos": 2}
    assert set(env.ignored) == {"trace_id", "body.gpu_util", "body.detail.last_rows.0.tokens"}


def test_the_same_fields_from_this_minor_are_refused() -> None:
    data = _valid("progress_reported")
    data["body"]["gpu_util"] = 0.9
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode(json.dumps(data))
    assert info.value.name == "InvalidMessage"
    assert "gpu_util" in info.value.text


def test_newer_minor_event_types_are_ignorable_and_ours_are_not() -> None:
    data = {**_from_newer_minor("paused"), "type": "gpu_sampled"}
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode(json.dumps(data))
    assert (info.value.name, info.value.ignorable) == ("UnknownType", True)
    assert "newer ftc" in info.value.text
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode(json.dumps({**data, "v": protocol.PROTOCOL_VERSION}))
    assert info.value.ignorable is False


def test_a_newer_major_is_refused_naming_both_versions() -> None:
    data = {**_valid("paused"), "v": f"{protocol.MAJOR + 1}.0"}
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.decode(json.dumps(data))
    assert info.value.name == "VersionMismatch"
    assert f"{protocol.MAJOR + 1}.0" in info.value.text
    assert protocol.PROTOCOL_VERSION in info.value.text
    assert "upgrade ftc" in info.value.text
