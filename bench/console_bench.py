"""Console speed: ``ftc --help``, the TUI's first frame, and how far the monitor lags a live engine.

Run: ``.venv/bin/python -m bench.console_bench [--runs N] [--seconds S] [--rate R] [--step-s T]
[--terminal] [--only help frame lag reattach idle compare] [--events N ...] [--write]`` (``--write``:
bench/results/console.md; ``--only reattach --write``: console_reattach.md; ``--only idle
--write``: console_idle.md; ``--only compare --write``: console_compare.md).

- ``ftc --help`` is timed as a fresh interpreter, ``-m tui --help``.
- The first frame is timed from launching ``ftc`` inside tmux until its sessions screen is on
  the terminal (capture-pane polled every 5 ms): interpreter start, imports, first paint.
- The lag: a real engine runs the built-in selftest job at ``--rate`` steps per second (one
  ``step_ended`` event each); the real console is attached to it headless
  (``App.run_test``). For every ``step_ended`` the monitor screen's handler receives, the lag is
  now minus the event's ``ts`` (the engine's wall clock when it journalled the event). Events
  the console replays from the journal when it opens are counted but not timed. The engine
  sleeps 1/rate per step plus its own per-step work, so check the achieved rate in the table
  and shorten ``--step-s`` to reach the rate you want.
- ``--terminal`` adds the same run seen through a real terminal: ``ftc attach`` in tmux, the
  status line's ``step N`` read with capture-pane every 10 ms, lag = first sight of step N minus
  its ``ts``. This includes painting, but the polling costs CPU and adds up to ~10 ms.
- Reattach: a finished training session whose journal holds ``--events`` events (a realistic
  mix: a step_ended per step, an evaluation every 500 steps, a checkpoint every 1,000, a log line
  every 100) is opened in the headless console (``App.run_test``, 80x24); the time runs from
  creating the app until the monitor's feed has dispatched every journal event and both plots
  have been drawn with the last step. Checked: every seq once, in order.
- Compare: two such finished sessions of ``--events`` events each, opened side by side on the
  compare screen (headless, 120x40); the time runs from creating the app until both feeds have
  dispatched every event, cold and warm in a fresh child process.
- Idle CPU: ``ftc attach`` in tmux (80x24) on a finished session and on a paused one, side by
  side; after the first frame and 2 s to settle, each console's own CPU time (psutil: user +
  system, all threads) over ``--idle-s`` seconds, as % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # also runnable as ``python bench/console_bench.py``
    sys.path.insert(0, str(REPO))

from bench.machine import describe  # noqa: E402

STARTUP_MARGIN_S = 2.0  # extra engine steps so the live part lasts --seconds after the console opens
CATCH_UP_S = 15.0


# ---------------------------------------------------------------- start-up


def time_help(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tui", "--help"], cwd=REPO, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


@contextlib.contextmanager
def tmux_session(cmd: str) -> Iterator[str]:
    name = f"ftc-bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", cmd], check=True)
    try:
        yield name
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def capture(name: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout


def time_first_frame(runs: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as root:
        for _ in range(runs):
            start = time.perf_counter()
            with tmux_session(f"cd {REPO} && {sys.executable} -m tui --sessions-dir {root}") as name:
                while "No sessions yet" not in capture(name):
                    if time.perf_counter() - start > 30:
                        raise RuntimeError("console did not show its first frame within 30 s")
                    time.sleep(0.005)
                times.append(time.perf_counter() - start)
    return times


# ---------------------------------------------------------------- lag behind a live engine


@dataclass
class LagResult:
    """What one lag run measured; lags in seconds."""

    step_s: float  # the selftest job's sleep per step
    engine_rate: float  # step_ended events per second, from the journal's ts
    journal_events: int
    console_events: int  # events the monitor's handler received (any type)
    batches: int  # EventsReceived messages (the follower hands over what piled up since its last poll)
    replayed: int  # step_ended events emitted before the console's first batch: counted, not timed
    lags: list[float] = field(default_factory=list)
    in_order: bool | None = None  # every seq 1..N arrived once, in order (None: not checked)
    unit: str = "events"

    def summary(self) -> dict[str, float]:
        return {
            "median": statistics.median(self.lags),
            "p95": percentile(self.lags, 0.95),
            "max": max(self.lags),
        }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def selftest_config(rate: float, seconds: float, step_s: float | None = None) -> dict[str, Any]:
    """A selftest run of about ``seconds`` plus a margin; it sleeps ``step_s`` (default 1/rate) per step.

    The engine adds its own work per step (journal, state file, publish), so its real rate is
    a little below 1/step_s: pass a shorter ``step_s`` to reach ``rate``.
    """
    steps = max(2, round(rate * (seconds + STARTUP_MARGIN_S)))
    sleep = 1.0 / rate if step_s is None else step_s
    return {"job": {"kind": "selftest"}, "selftest": {"steps": steps, "step_s": sleep}}


def read_journal(path: Path) -> list[Any]:
    from engine.journal import JournalReader

    return list(JournalReader(path).read_new())


def engine_rate(journal: list[Any]) -> float:
    ts = [env.ts for env in journal if env.type == "step_ended"]
    return (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 and ts[-1] > ts[0] else float("nan")


@dataclass
class Replayed:
    """One event of a summarised replay page, as the bench counts it (a step of a StepRun has no envelope)."""

    seq: int
    type: str
    ts: float


def _page_events(items: list[Any]) -> list[Any]:
    """A ReplayPaged page's events in order: envelopes as they are, a StepRun's steps as ``Replayed``."""
    from tui.replay import StepRun

    out: list[Any] = []
    for item in items:
        if isinstance(item, StepRun):
            out.extend(Replayed(seq, "step_ended", ts) for seq, ts in zip(item.seqs, item.ts, strict=True))
        else:
            out.append(item)
    return out


@contextlib.contextmanager
def recording_events(record: Callable[[float, list[Any]], None]) -> Iterator[None]:
    """Call ``record(now, items)`` as the monitor's feed (``SessionFeed``) starts handling a batch of
    events: EventsReceived (live, or a replay one by one: envelopes) or ReplayPaged (a summarised
    replay's page: envelopes and StepRuns, see ``_page_events``).

    Textual keeps ``@on`` handlers in the class's ``_decorated_handlers`` table (the function
    objects, so patching the attribute would not reach them). The original runs unchanged after
    the timestamp.
    """
    from tui.feed import ReplayPaged, SessionFeed
    from tui.messages import EventsReceived

    def wrap(fn: Callable[..., Any], events: Callable[[Any], list[Any]]) -> Callable[..., Any]:
        def handler(self: Any, message: Any) -> Any:
            record(time.time(), events(message))
            return fn(self, message)

        return handler

    decorated = SessionFeed.__dict__.get("_decorated_handlers", {})
    tables = [
        (decorated.get(EventsReceived), lambda message: list(message.events)),
        (decorated.get(ReplayPaged), lambda message: list(message.items)),
    ]
    if not all(table for table, _ in tables):
        raise RuntimeError(
            "SessionFeed has no EventsReceived or ReplayPaged handler to time; has tui/feed.py moved?"
        )
    originals = [list(table) for table, _ in tables]
    for table, events in tables:
        table[:] = [(wrap(fn, events), selectors) for fn, selectors in table]
    try:
        yield
    finally:
        for (table, _), original in zip(tables, originals, strict=True):
            table[:] = original


async def _lag_in_console(root: Path, paths: Any, seconds: float) -> tuple[list[tuple[float, Any]], int]:
    from engine.session import LIVE_STATUSES, live_status, read_state
    from tui.app import FtcApp
    from tui.screens.monitor import MonitorScreen

    received: list[tuple[float, Any]] = []
    batches = 0

    def record(now: float, events: list[Any]) -> None:
        nonlocal batches
        batches += 1
        received.extend((now, env) for env in _page_events(events))

    with recording_events(record):
        app = FtcApp(root, attach=paths.id)
        async with app.run_test(size=(80, 24)) as pilot:
            if not isinstance(app.screen, MonitorScreen):
                raise RuntimeError(f"the console opened {type(app.screen).__name__}, not the monitor")
            deadline = time.monotonic() + seconds + STARTUP_MARGIN_S + 60
            while live_status(read_state(paths)) in LIVE_STATUSES:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the selftest engine did not finish; see {paths.log}")
                await pilot.pause(0.1)
            last = max((env.seq for env in read_journal(paths.events)), default=0)
            catch_up = time.monotonic() + CATCH_UP_S
            while (received[-1][1].seq if received else 0) < last and time.monotonic() < catch_up:
                await pilot.pause(0.05)
    return received, batches


def measure_lag(
    seconds: float, rate: float, root: Path | None = None, step_s: float | None = None
) -> LagResult:
    """Run a selftest engine at ``rate`` steps/s and time the headless console's monitor against it."""
    from engine.launcher import create_session, start_engine

    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ftc-lag-")))
        config = selftest_config(rate, seconds, step_s)
        paths = create_session(root, config, name="lag-bench")
        start_engine(paths)
        try:
            received, batches = asyncio.run(_lag_in_console(root, paths, seconds))
        finally:
            stop_engine(paths)
        journal = read_journal(paths.events)
    first_batch = received[0][0] if received else math.inf
    steps = [(now, env) for now, env in received if env.type == "step_ended"]
    seqs = [env.seq for _, env in received]
    return LagResult(
        step_s=config["selftest"]["step_s"],
        engine_rate=engine_rate(journal),
        journal_events=len(journal),
        console_events=len(received),
        batches=batches,
        replayed=sum(1 for _, env in steps if env.ts < first_batch),
        lags=[now - env.ts for now, env in steps if env.ts >= first_batch],
        in_order=seqs == list(range(1, len(seqs) + 1)),
    )


def stop_engine(paths: Any) -> None:
    """Kill the bench's engine if it is still running (normally it has finished its steps)."""
    import os
    import signal

    from engine.session import pid_alive, read_state

    state = read_state(paths)
    if state.get("pid") and pid_alive(state["pid"], state.get("pid_start")):
        os.kill(state["pid"], signal.SIGKILL)


def measure_terminal_lag(seconds: float, rate: float, step_s: float | None = None) -> LagResult:
    """The same run through ``ftc attach`` in tmux: lag until the status line shows step N."""
    from engine.launcher import create_session, start_engine

    pattern = re.compile(r"step (\d+)/\d+")
    with tempfile.TemporaryDirectory(prefix="ftc-lag-") as tmp:
        root = Path(tmp)
        config = selftest_config(rate, seconds, step_s)
        paths = create_session(root, config, name="lag-term")
        start_engine(paths)
        seen: dict[int, float] = {}
        try:
            cmd = f"cd {REPO} && {sys.executable} -m tui --sessions-dir {root} attach {paths.id}"
            with tmux_session(cmd) as name:
                from engine.session import LIVE_STATUSES, live_status, read_state

                deadline = time.monotonic() + seconds + STARTUP_MARGIN_S + 60
                while live_status(read_state(paths)) in LIVE_STATUSES and time.monotonic() < deadline:
                    now = time.time()
                    for m in pattern.finditer(capture(name)):
                        seen.setdefault(int(m.group(1)), now)
                    time.sleep(0.01)
        finally:
            stop_engine(paths)
        journal = read_journal(paths.events)
    first_sight = min(seen.values(), default=math.inf)
    ts = {env.body.step: env.ts for env in journal if env.type == "step_ended"}
    return LagResult(
        step_s=config["selftest"]["step_s"],
        engine_rate=engine_rate(journal),
        journal_events=len(ts),
        console_events=len(seen),  # distinct steps seen on screen (repaints coalesce steps)
        batches=0,
        unit="steps on screen",
        replayed=sum(1 for t in ts.values() if t < first_sight),
        lags=[seen[s] - t for s, t in ts.items() if s in seen and t >= first_sight],
    )


# ---------------------------------------------------------------- reattach to a long history


@dataclass
class ReattachResult:
    """One reattach: how long until the whole history was dispatched and drawn."""

    events: int
    journal_mb: float
    run: str  # cold: a fresh process's first reattach; warm: the same process's second
    dispatched_s: float  # app created -> the feed has dispatched the journal's last event
    drawn_s: float  # app created -> both plots drawn with the last step
    cpu_s: float  # the process's CPU time (all threads) from app created until both were done
    in_order: bool  # every seq 1..N dispatched once, in order


def write_history(root: Path, events: int) -> Any:
    """A finished training session whose journal holds ``events`` events; returns its paths."""
    from engine import protocol
    from engine.journal import Journal
    from engine.launcher import create_session
    from engine.session import write_state

    paths = create_session(root, {"job": {"kind": "selftest"}}, name=f"history-{events}")
    write_state(paths, job="train")
    journal = Journal(paths.events, paths.id)
    steps = written = 0
    while True:  # as many steps as fit, with the 5 events that open and close a run
        nxt = steps + 1
        cost = 1 + (nxt % 100 == 0) + (nxt % 500 == 0) + (nxt % 1000 == 0)
        if written + cost + 5 > events:
            break
        steps, written = nxt, written + cost
    journal.append(protocol.EngineStarted(pid=os.getpid(), hostname="bench", job="train"))
    journal.append(protocol.JobStarted(job="train", step=0, total_steps=steps))
    plan = list(range(0, steps + 1, max(1, steps // 500)))
    journal.append(
        protocol.SchedulePlanned(steps=plan, learning_rates=[5e-5 * (1 - s / (steps + 1)) for s in plan])
    )
    for step in range(1, steps + 1):
        journal.append(
            protocol.StepEnded(
                step=step, total_steps=steps, epoch=step / 1000, loss=1 / (1 + step / 500),
                learning_rate=5e-5 * (1 - step / (steps + 1)), grad_norm=1.0, examples_per_s=250.0,
                tokens_per_s=32000.0, eta_s=float(steps - step),
            )
        )  # fmt: skip
        if step % 100 == 0:
            journal.append(protocol.LogRecorded(level="info", text=f"step {step}: all is well"))
        if step % 500 == 0:
            journal.append(protocol.EvaluationEnded(step=step, metrics={"loss": 0.5, "accuracy": 0.8}))
        if step % 1000 == 0:
            journal.append(
                protocol.CheckpointSaved(step=step, path=str(paths.root / "checkpoints" / f"ckpt-{step}"))
            )
    while journal.seq < events - 2:
        journal.append(protocol.LogRecorded(level="info", text="padding to the asked number of events"))
    journal.append(protocol.JobFinished(step=steps))
    journal.append(protocol.EngineStopped(status="finished"))
    journal.close()
    write_state(paths, status="finished", step=steps, total_steps=steps)
    return paths


async def _reattach(
    root: Path, paths: Any, total: int, last_step: int
) -> tuple[float, float, float, list[int]]:
    from tui.app import FtcApp
    from tui.replay import StepRun
    from tui.screens.monitor import MonitorScreen
    from tui.widgets.curves import LossPanel

    seqs: list[int] = []
    drawn: list[float] = []
    original_draw = LossPanel.draw

    def draw(panel: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_draw(panel, *args, **kwargs)
        if panel.steps and panel.steps[-1] == last_step:
            drawn.append(time.perf_counter())
        return result

    def record(_now: float, events: list[Any]) -> None:
        for item in events:  # a StepRun's seqs at once: 100k Replayed objects would cost the bench 0.3 s
            if isinstance(item, StepRun):
                seqs.extend(item.seqs)
            else:
                seqs.append(item.seq)

    LossPanel.draw = draw  # type: ignore[method-assign]
    try:
        with recording_events(record):
            start, cpu = time.perf_counter(), time.process_time()
            app = FtcApp(root, attach=paths.id)
            async with app.run_test(size=(80, 24)) as pilot:
                if not isinstance(app.screen, MonitorScreen):
                    raise RuntimeError(f"the console opened {type(app.screen).__name__}, not the monitor")
                feed = app.screen.feed
                deadline = time.monotonic() + 600
                while feed.events_seen < total and time.monotonic() < deadline:
                    await pilot.pause(0.01)
                dispatched = time.perf_counter() - start
                while not drawn and time.monotonic() < deadline:
                    await pilot.pause(0.01)
                cpu = time.process_time() - cpu
                return dispatched, drawn[0] - start if drawn else math.nan, cpu, seqs
    finally:
        LossPanel.draw = original_draw  # type: ignore[method-assign]


def measure_reattach(events: int) -> list[ReattachResult]:
    """A cold and a warm reattach to a journal of ``events`` events, in a fresh child process."""
    return [ReattachResult(**row) for row in _child("_reattach_child", events)]


def _child(function: str, events: int) -> Any:
    """What ``function(events)`` of this module prints last (JSON), run in a fresh interpreter."""
    code = f"from bench.console_bench import {function}; {function}({events})"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{function} failed in its child process:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _reattach_child(events: int) -> None:
    """Print (as JSON) a cold and a warm reattach: this process's first and second."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="ftc-reattach-") as tmp:
        root = Path(tmp)
        paths = write_history(root, events)
        journal = read_journal(paths.events)
        last_step = max(env.body.step for env in journal if env.type == "step_ended")
        for run in ("cold", "warm"):
            dispatched, drawn, cpu, seqs = asyncio.run(_reattach(root, paths, len(journal), last_step))
            result = ReattachResult(
                events=len(journal),
                journal_mb=paths.events.stat().st_size / 1e6,
                run=run,
                dispatched_s=dispatched,
                drawn_s=drawn,
                cpu_s=cpu,
                in_order=seqs == list(range(1, len(journal) + 1)),
            )
            rows.append(dataclasses.asdict(result))
    print(json.dumps(rows))


def reattach_table(results: list[ReattachResult]) -> str:
    rows = [
        "| journal events | journal MB | run | all dispatched s | plots drawn s | console CPU s "
        "| every seq once, in order |",
        "|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.events:,} | {r.journal_mb:.1f} | {r.run} | {r.dispatched_s:.2f} | {r.drawn_s:.2f} "
            f"| {r.cpu_s:.2f} | {'yes' if r.in_order else 'NO'} |"
        )
    return "\n".join(rows)


# ---------------------------------------------------------------- idle CPU


def measure_compare(events: int) -> list[dict[str, Any]]:
    """A cold and a warm opening of the compare screen on two journals of ``events`` events each."""
    return list(_child("_compare_child", events))


def _compare_child(events: int) -> None:
    from tui.app import FtcApp
    from tui.screens.compare import CompareScreen

    async def open_both(root: Path, ids: list[str], total: int) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        app = FtcApp(root)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.push_screen(CompareScreen(root, ids))
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            deadline = time.monotonic() + 600
            while any(f.events_seen < total for f in screen.feeds) and time.monotonic() < deadline:
                await pilot.pause(0.01)
            if any(f.events_seen < total for f in screen.feeds):
                raise RuntimeError(f"not every event dispatched: {[f.events_seen for f in screen.feeds]}")
            return time.perf_counter() - start, time.process_time() - cpu

    rows = []
    with tempfile.TemporaryDirectory(prefix="ftc-compare-") as tmp:
        root = Path(tmp)
        paths = [write_history(root, events) for _ in range(2)]
        total = len(read_journal(paths[0].events))
        for run in ("cold", "warm"):
            wall, cpu = asyncio.run(open_both(root, [p.id for p in paths], total))
            rows.append({"events": total, "run": run, "wall_s": wall, "cpu_s": cpu})
    print(json.dumps(rows))


def measure_idle(seconds: float) -> dict[str, float]:
    """% of one core that ``ftc attach`` uses, idle, on a finished and on a paused session."""
    import psutil

    from engine import client, protocol
    from engine.launcher import create_session, start_engine
    from engine.session import live_status, read_state

    def wait(predicate: Callable[[], Any], what: str) -> None:
        deadline = time.monotonic() + 60
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    with tempfile.TemporaryDirectory(prefix="ftc-idle-") as tmp:
        root = Path(tmp)
        finished = create_session(root, selftest_config(100, 0.3, 0.001), name="idle-a")
        start_engine(finished)
        paused = create_session(
            root, {"job": {"kind": "selftest"}, "selftest": {"steps": 10**6}}, "idle-paused"
        )
        start_engine(paused)
        try:
            wait(lambda: live_status(read_state(finished)) == "finished", "the finished session")
            wait(lambda: read_state(paused).get("step", 0) >= 3, "the paused session's first steps")
            client.request(paused, protocol.Pause())
            wait(lambda: live_status(read_state(paused)) == "paused", "the pause")
            sessions = {"finished": finished, "paused": paused}
            with contextlib.ExitStack() as stack:
                consoles = {}
                for label, paths in sessions.items():
                    cmd = f"cd {REPO} && exec {sys.executable} -m tui --sessions-dir {root} attach {paths.id}"
                    name = stack.enter_context(tmux_session(cmd))
                    wait(lambda name=name, label=label: label in capture(name), f"the {label} monitor")
                    pid = subprocess.run(
                        ["tmux", "display", "-p", "-t", name, "#{pane_pid}"], capture_output=True, text=True
                    ).stdout
                    consoles[label] = psutil.Process(int(pid))
                time.sleep(2)  # the first frames' work settles
                before = {label: sum(proc.cpu_times()[:2]) for label, proc in consoles.items()}
                start = time.monotonic()
                time.sleep(seconds)
                elapsed = time.monotonic() - start
                return {
                    label: (sum(proc.cpu_times()[:2]) - before[label]) / elapsed * 100
                    for label, proc in consoles.items()
                }
        finally:
            stop_engine(paused)


# ---------------------------------------------------------------- report


def startup_table(results: dict[str, list[float]]) -> str:
    rows = ["| measure | median ms | min ms | max ms | runs |", "|---|---:|---:|---:|---:|"]
    for label, values in results.items():
        rows.append(
            f"| {label} | {statistics.median(values) * 1000:.1f} | {min(values) * 1000:.1f} | "
            f"{max(values) * 1000:.1f} | {len(values)} |"
        )
    return "\n".join(rows)


def lag_table(results: dict[str, LagResult]) -> str:
    rows = [
        "| where | sleep/step ms | engine events/s | timed events | lag median ms | p95 ms | max ms "
        "| console events / journal | in order |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for label, r in results.items():
        s = r.summary() if r.lags else {"median": math.nan, "p95": math.nan, "max": math.nan}
        seen = f"{r.console_events} / {r.journal_events} {r.unit}"
        if r.batches:
            seen += f" ({r.batches} batches)"
        order = "-" if r.in_order is None else "yes" if r.in_order else "NO"
        rows.append(
            f"| {label} | {r.step_s * 1000:g} | {r.engine_rate:.1f} | {len(r.lags)} "
            f"| {s['median'] * 1000:.1f} | {s['p95'] * 1000:.1f} | {s['max'] * 1000:.1f} | {seen} | {order} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of --help and of the first frame (10)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the lag run (20)")
    parser.add_argument(
        "--rate", type=float, default=50.0, help="engine events per second in the lag run (50)"
    )
    parser.add_argument(
        "--step-s", type=float, help="the engine's sleep per step (default 1/rate); shorter to reach --rate"
    )
    parser.add_argument("--terminal", action="store_true", help="also measure the lag through tmux")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("help", "frame", "lag", "reattach", "idle", "compare"),
        default=["help", "frame", "lag"],
    )
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle CPU window in seconds (10)")
    parser.add_argument(
        "--events", type=int, nargs="+", default=[10_000, 100_000], help="reattach journals (10000 100000)"
    )
    parser.add_argument("--write", action="store_true", help="write bench/results/console.md")
    args = parser.parse_args()
    machine = describe()
    print(f"machine: {machine}", flush=True)
    has_tmux = shutil.which("tmux") is not None
    startup: dict[str, list[float]] = {}
    if "help" in args.only:
        startup["ftc --help"] = time_help(args.runs)
    if "frame" in args.only:
        if has_tmux:
            startup["TUI first frame (tmux, 80x24)"] = time_first_frame(args.runs)
        else:
            print("tmux not found: first frame skipped")
    parts = []
    if startup:
        parts.append(startup_table(startup))
        print(parts[-1], flush=True)
    if "lag" in args.only:
        lags = {
            "monitor handler (headless run_test)": measure_lag(args.seconds, args.rate, step_s=args.step_s)
        }
        if args.terminal:
            if has_tmux:
                lags["status line in tmux (ftc attach)"] = measure_terminal_lag(
                    args.seconds, args.rate, args.step_s
                )
            else:
                print("tmux not found: terminal lag skipped")
        parts.append(lag_table(lags))
        print(parts[-1])
    command = "python -m bench.console_bench " + " ".join(sys.argv[1:])
    if "idle" in args.only:
        load_before = os.getloadavg()
        runs = [measure_idle(args.idle_s) for _ in range(args.runs)]
        load_after = os.getloadavg()
        rows = ["| ftc attach on | % of one core, each run | median |", "|---|---|---:|"]
        for label in ("finished", "paused"):
            values = [run[label] for run in runs]
            each = ", ".join(f"{v:.2f}" for v in values)
            rows.append(f"| a {label} session | {each} | {statistics.median(values):.2f} |")
        table = "\n".join(rows)
        print(table)
        if args.write:
            _write_own(
                "console_idle.md",
                "an idle attached console's CPU",
                table,
                machine,
                command,
                (load_before, load_after),
                f"`ftc attach` in tmux (80x24); after its first frame and 2 s to settle, the console's own "
                f"CPU time (user + system, all threads) over {args.idle_s:g} s, as % of one core.\n",
            )
    if "reattach" in args.only:
        load_before = os.getloadavg()
        results = [row for n in args.events for row in measure_reattach(n)]
        load_after = os.getloadavg()
        table = reattach_table(results)
        print(table)
        if args.write:
            _write_own(
                "console_reattach.md",
                "reattach to a long history",
                table,
                machine,
                command,
                (load_before, load_after),
                "A finished training session's journal (a step_ended per step, an evaluation every 500 "
                "steps, "
                "a checkpoint every 1,000, a log line every 100) is opened in the headless console "
                "(`App.run_test`, 80x24). Times run from creating the app until the monitor's feed has "
                "dispatched the journal's last event, and until both plots have been drawn with the last "
                "step. Every seq is checked to arrive once, in order. Each size runs in a fresh child "
                "process: cold is its first reattach (the modules the monitor imports as it opens, first "
                "renders), warm its second. Console CPU s: the process's CPU time, all threads, over the "
                "same span; on a shared machine (other work was running: see the load) the wall times "
                "mostly measure the wait for a core, the CPU time what the console itself needs.\n",
            )
    if "compare" in args.only:
        load_before = os.getloadavg()
        found = [row for n in args.events for row in measure_compare(n)]
        load_after = os.getloadavg()
        rows = ["| events per journal | run | all dispatched s | console CPU s |", "|---:|---|---:|---:|"]
        rows += [f"| {r['events']:,} | {r['run']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} |" for r in found]
        table = "\n".join(rows)
        print(table)
        if args.write:
            _write_own(
                "console_compare.md",
                "comparing two long runs",
                table,
                machine,
                command,
                (load_before, load_after),
                "Two finished training sessions with the reattach bench's journal (a step_ended per step, "
                "an evaluation every 500 steps, a checkpoint every 1,000, a log line every 100) are opened "
                "side by side on the compare screen (headless `App.run_test`, 120x40), from creating the "
                "app until both feeds have dispatched every event. Cold: the child process's first "
                "opening; warm: its second.\n",
            )
    if set(args.only) <= OWN_FILES:  # nothing asked for that goes into console.md
        return
    if args.write:
        out = REPO / "bench/results/console.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            "# Console benchmark\n\n"
            + "\n\n".join(parts)
            + f"\n\nMachine: {machine}\n\nCommand: `{command.strip()}`\n\n"
            "Lag = when the monitor screen's EventsReceived handler starts (or, in tmux, when the status "
            "line first shows the step) minus the event's `ts`, the engine's wall clock when it journalled "
            "the event; engine and console run on the same machine, so the clocks agree. Events the console "
            "replays from the journal when it opens are counted, not timed. Sleep/step is the selftest "
            "job's sleep; the engine's own work per step (journal, state file, publish) comes on top, "
            "hence engine events/s below 1/sleep.\n"
        )
        print(f"wrote {out}")


# Parts written to a file of their own (the rest go into console.md).
OWN_FILES = {"idle", "reattach", "compare"}


def _write_own(
    name: str, title: str, table: str, machine: str, command: str, loads: tuple[Any, Any], about: str
) -> None:
    """bench/results/NAME: the part's table, the machine and command, the load, what it measures."""
    out = REPO / "bench/results" / name
    out.write_text(
        f"# Console benchmark: {title}\n\n{table}\n\nMachine: {machine}\n\nCommand: `{command.strip()}`\n\n"
        f"Load average (1, 5, 15 min) before: {_load(loads[0])}; after: {_load(loads[1])}\n\n{about}"
    )
    print(f"wrote {out}")


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
