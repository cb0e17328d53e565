"""The job's phases: what it does and for how long, a pause or stop said at once, the ETA with evaluations."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from engine import client, protocol
from engine.data import job as data_job
from engine.jobs.base import PROGRESS_EVERY_S, Control, JobContext, Phases
from engine.journal import read_all
from engine.session import SessionPaths, read_state
from engine.train.callbacks import StepReport
from engine.train.reporting import Events, evaluations_left
from tests.conftest import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _phases() -> tuple[Phases, list[protocol.PhaseChanged], Clock]:
    clock, events = Clock(), []
    return Phases(events.append, clock=clock), events, clock


def _said(events: list[Any]) -> list[tuple[str, str]]:
    return [(e.phase, e.detail) for e in events if isinstance(e, protocol.PhaseChanged)]


def test_each_phase_carries_how_long_the_one_before_took() -> None:
    phases, events, clock = _phases()
    phases.enter("loading_model")
    clock.now += 12.5
    phases.enter("compiling", step=0)
    clock.now += 3.0
    phases.enter("training", step=1)
    assert [(e.phase, e.seconds) for e in events] == [
        ("loading_model", None),
        ("compiling", 12.5),
        ("training", 3.0),
    ]
    clock.now += 2.0
    with phases.during("evaluating", total=40, done=0, unit="batches"):
        clock.now += 7.0
    assert [(e.phase, e.seconds, e.total) for e in events[3:]] == [
        ("evaluating", 2.0, 40),
        ("training", 7.0, None),
    ]
    assert phases.away_s() == pytest.approx(12.5 + 3.0 + 7.0)


def test_progress_in_a_phase_is_throttled() -> None:
    phases, events, clock = _phases()
    phases.enter("evaluating", done=0, total=1000, unit="batches")
    for done in range(1, 1001):
        clock.now += 0.01  # 10 s of batches
        phases.progress(done, 1000, unit="batches")
    updates = [e.done for e in events[1:]]
    assert 10 / PROGRESS_EVERY_S - 2 <= len(updates) <= 10 / PROGRESS_EVERY_S + 1
    assert updates == sorted(updates) and all(e.phase == "evaluating" for e in events)


def test_a_stop_mid_evaluation_is_said_at_once_and_the_job_phases_hold_until_it_lands() -> None:
    phases, events, clock = _phases()
    phases.enter("training", step=40)
    phases.enter("evaluating", done=0, total=100)
    replies: list[Any] = []
    phases.notice("stopping", replies.append)  # the command thread's emit, with the command as parent
    assert _said(replies) == [("stopping", "after the evaluation")] and replies[0].step == 40
    clock.now += 1.0
    phases.progress(50, 100)  # the evaluation goes on, unsaid: the console keeps "stopping"
    with phases.during("checkpointing", detail="stop"):
        clock.now += 2.0
    assert _said(events) == [("training", ""), ("evaluating", ""), ("stopping", "saving a checkpoint")]
    assert events[-1].seconds == 1.0  # the evaluation's time still counts
    phases.notice("pausing")  # a pause after a stop changes nothing
    assert len(events) == 3


def test_a_stop_while_compiling_waits_for_the_first_step_or_for_this_one() -> None:
    phases, _, _ = _phases()
    phases.enter("compiling", step=0)
    said: list[Any] = []
    phases.notice("stopping", said.append)
    assert _said(said) == [("stopping", "after the first step")]
    later, _, _ = _phases()
    later.enter("compiling", step=10, detail="the optimizer update (XLA)")  # step 11 compiles the update
    said.clear()
    later.notice("stopping", said.append)
    assert _said(said) == [("stopping", "after this step")]


def test_a_pause_is_said_then_lands_and_unpausing_says_the_phase_again() -> None:
    phases, events, _ = _phases()
    phases.enter("training", step=3)
    phases.notice("pausing")
    phases.paused()  # at the boundary: the Paused event says the rest
    phases.unpaused()
    assert _said(events) == [("training", ""), ("pausing", "after this step"), ("training", "")]
    phases.notice("pausing")
    phases.withdraw()  # unpaused before the pause landed
    assert _said(events)[-2:] == [("pausing", "after this step"), ("training", "")]
    assert phases.pending is None


def test_evaluations_left_count_epoch_ends_and_every_n_steps_once_each() -> None:
    assert evaluations_left(1, 100, None, 25) == 4
    assert evaluations_left(1, 100, 10, 25) == 10 + 4 - 2  # 50 and 100 are both
    assert evaluations_left(26, 100, None, 25) == 3
    assert evaluations_left(25, 100, None, 25) == 4  # step 25's own evaluation is still to come
    assert evaluations_left(101, 100, 10, 25) == 0
    assert evaluations_left(1, 90, None, 25) == 3 + 1  # and the last step, 90, which ends no epoch
    assert evaluations_left(90, 90, 7, 25) == 1


def _trainer(phases: Phases, *, total: int = 100, every: int | None = None) -> Any:
    t = SimpleNamespace(batch_size=8, grad_accum_steps=1, eval_every_steps=every)
    evaluator = SimpleNamespace(has=lambda split: split == "validation")
    return SimpleNamespace(
        state=SimpleNamespace(step=0, total_steps=total),
        t=t,
        ctx=SimpleNamespace(phases=phases, hardware={}),
        manifest={"splits": {"validation": {"rows": 240}, "train": {"rows": 800}}},
        evaluator=evaluator,
        steps_per_epoch=50,
        epoch=0.2,
        predictions=None,
    )


def _step(events: Events, sink: list[Any], trainer: Any, step: int) -> float:
    trainer.state.step = step
    batch = SimpleNamespace(size=8, tokens=256)
    report = StepReport(step, step / 50, step % 50 == 0, 0.5, 1.0, 1e-4, 1.0, [batch])
    events.on_step_end(trainer, report)
    eta: float = sink[-1].eta_s
    return eta


def test_the_eta_leaves_out_evaluations_and_adds_those_to_come() -> None:
    clock = Clock()
    phases = Phases(lambda body: None, clock=clock)
    sink: list[Any] = []
    events = Events(sink.append, clock=clock)
    trainer = _trainer(phases)
    phases.enter("compiling")
    clock.now += 30  # tracing
    _step(events, sink, trainer, 1)
    assert sink[-1].eta_s is None  # the first step is mostly tracing: no rate yet
    for step in range(2, 11):
        clock.now += 2.0  # 2 s a training step
        eta = _step(events, sink, trainer, step)
    # 90 steps at 2 s, 2 evaluations (steps 50, 100) of 240 rows estimated at half a training
    # step's time per example: 240 * 2 / (2 * 8) = 30 s each, and the final label-noise scoring of
    # the 800 training rows at that rate: 100 s.
    assert eta == pytest.approx(90 * 2 + 2 * 30 + 100)
    # A slow evaluation (120 s) is left out of the time per step and counted per evaluation instead.
    events.on_evaluate_batch(trainer, "validation", 0, 30)
    clock.now += 120
    events.on_evaluate(trainer, "validation", SimpleNamespace(payload=lambda: {}))  # type: ignore[arg-type]
    assert phases.phase == "training"
    clock.now += 2.0
    eta = _step(events, sink, trainer, 11)
    assert eta == pytest.approx(89 * 2 + 2 * 120 + 800 * 0.5)  # 0.5 s a row, measured
    # A pause is left out too.
    phases.paused()
    clock.now += 600
    phases.unpaused()
    clock.now += 2.0
    assert _step(events, sink, trainer, 12) == pytest.approx(88 * 2 + 2 * 120 + 400)


def _csv(path: Path, rows: int) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(rows):
            writer.writerow(
                [f"review number {i} says {'good' if i % 2 else 'bad'} things {i * 7 % 13}", i % 2]
            )
    return path


def test_a_preparation_says_preparing_then_testing_data(tmp_path: Path) -> None:
    paths = SessionPaths(tmp_path / "session")
    paths.create()
    events: list[Any] = []
    ctx = JobContext(
        paths=paths,
        config={"data": {"source": str(_csv(tmp_path / "r.csv", 400)), "shard_rows": 100}},
        resume=False,
        control=Control(),
        emit=events.append,  # type: ignore[arg-type]
        update_state=lambda **_: None,
    )
    data_job.run_prepare(ctx)
    said = [e for e in events if isinstance(e, protocol.PhaseChanged)]
    assert said[0].phase == "preparing_data" and said[0].done == 0
    assert [e.phase for e in said if e.seconds is not None] == ["testing_data"]
    assert said[-1].phase == "testing_data" and said[-1].unit == "shards"


# ---------------------------------------------------------------- the engine, with the selftest job

EVAL = {"steps": 1000, "step_s": 0.02, "eval_every": 5, "eval_s": 30.0, "eval_batches": 300}


def _phase_events(paths: SessionPaths) -> list[protocol.Envelope]:
    return [e for e in read_all(paths.events) if e.type == "phase_changed"]


def _mid_evaluation(paths: SessionPaths) -> None:
    wait_for(
        lambda: any(e.body.phase == "evaluating" and (e.body.done or 0) > 0 for e in _phase_events(paths)),
        what="an evaluation under way",
    )


def test_the_selftest_job_says_its_phases(start_selftest) -> None:
    paths = start_selftest(steps=12, step_s=0.01, eval_every=5, eval_s=0.3, eval_batches=3)
    wait_for(lambda: read_state(paths)["status"] == "finished", what="the end")
    said = [(e.body.phase, e.body.done) for e in _phase_events(paths)]
    assert said[:3] == [("loading_model", None), ("training", None), ("evaluating", 0)]
    assert said.count(("evaluating", 0)) == 2 and said[-1] == ("training", None)
    kinds = [e.type for e in read_all(paths.events)]
    assert kinds.count("evaluation_ended") == 2
    eta = {e.body.step: e.body.eta_s for e in read_all(paths.events) if e.type == "step_ended"}
    assert eta[10] >= 0.3 > eta[11]  # step 10's evaluation (0.3 s) is still to come; then none is


@pytest.mark.parametrize("command", ["stop", "pause"])
def test_a_command_mid_evaluation_is_said_within_a_second(start_selftest, command: str) -> None:
    paths = start_selftest(**EVAL)
    _mid_evaluation(paths)
    asked = time.monotonic()
    reply = client.request(paths, protocol.Stop() if command == "stop" else protocol.Pause())
    answered = time.monotonic() - asked
    assert reply.changed and answered < 1.0
    word = "stopping" if command == "stop" else "pausing"
    notice = [e for e in _phase_events(paths) if e.body.phase == word]
    assert [e.body.detail for e in notice] == ["after the evaluation"]  # journalled before the reply
    kinds = [e.type for e in read_all(paths.events)]
    assert "evaluation_ended" not in kinds, "the evaluation still runs"
    assert read_state(paths)["status"] == ("stopping" if command == "stop" else "running")
    assert notice[0].parent is not None
    if command == "pause":
        client.request(paths, protocol.Unpause())  # taken back before it landed: the phase is said again
        wait_for(lambda: _phase_events(paths)[-1].body.phase == "evaluating", what="the phase said again")


def test_a_stop_during_start_up_says_it_stops_now(start_selftest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTC_SELFTEST_START_S", "120")  # loading, as slowly as a cold TensorFlow import
    paths = start_selftest()
    wait_for(lambda: [e.body.phase for e in _phase_events(paths)] == ["loading_model"], what="loading")
    client.request(paths, protocol.Stop())
    wait_for(lambda: read_state(paths)["status"] == "stopped", what="stopped")
    said = [(e.body.phase, e.body.detail) for e in _phase_events(paths)]
    assert said == [("loading_model", ""), ("stopping", "now")]
