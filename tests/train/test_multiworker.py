"""Training on a group of worker processes (MultiWorkerMirroredStrategy on CPU, loopback ports).

The engine is the chief (worker 0) and starts the others; they train the same steps on their
slice of each global batch. The slow tests compare whole runs: 2 workers against 1 process, and
runs whose worker or chief was killed (kill -9) and resumed against an uninterrupted 2-worker run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine import client, protocol
from engine.errors import ConfigError, SessionError
from engine.journal import read_all
from engine.launcher import create_session, start_engine
from engine.session import SessionPaths, live_status, pid_alive, read_state
from engine.train import checkpoints as ck
from engine.train.cluster import from_tf_config, load_cluster, session_group
from tests.conftest import wait_for
from tests.train.conftest import train_config

# Dropout on, and a global batch of 15 that splits unevenly (7 + 8): each worker applies its rows of
# the masks one process draws (engine.train.dropout), so the runs still compare to 1e-5.
RUN: dict[str, Any] = {
    "max_steps": 8,
    "epochs": 3,
    "batch_size": 15,
    "eval_every_steps": 4,
    "checkpoint_every_steps": 2,
    "jit_optimizer": False,  # no XLA compile in every process: the test's time is start-up already
    "mixed_precision": "off",
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "classifier_dropout": 0.1,
}
TOTAL = 8
ENDED = ("finished", "failed", "crashed", "stopped")


@pytest.fixture(autouse=True)
def _cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # engines and workers started here use the CPU


def _start(root: Path, model: Path, data: Path, workers: int, **train: Any) -> SessionPaths:
    paths = create_session(root, train_config(model, data, **{**RUN, **train}), name="group", workers=workers)
    start_engine(paths)
    return paths


def _end(paths: SessionPaths, timeout: float = 400) -> str:
    wait_for(lambda: live_status(read_state(paths)) in ENDED, timeout, "the run's end")
    return str(live_status(read_state(paths)))


def _finished(paths: SessionPaths) -> None:
    assert _end(paths) == "finished", paths.log.read_text()[-3000:]


def _weights(paths: SessionPaths, step: int = TOTAL) -> list[np.ndarray]:
    return ck.load_arrays(paths.checkpoints / f"ckpt-{step}", "weights.npz")


def _assert_same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    worst = max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))
    assert worst < 1e-5, f"weights differ by {worst}"


def _worker_log(paths: SessionPaths, index: int = 1) -> str:
    return (paths.root / "workers" / f"worker-{index}.log").read_text(errors="replace")


def _acted(text: str, what: str) -> list[int]:
    """The steps a worker's log says it acted at ('worker 1: pause at step 5')."""
    return [int(m) for m in re.findall(rf"worker \d+: {what} at step (\d+)", text)]


def _reports(paths: SessionPaths) -> list[protocol.WorkersReported]:
    return [e.body for e in read_all(paths.events) if isinstance(e.body, protocol.WorkersReported)]


def _worker_pid(paths: SessionPaths, index: int = 1) -> int:
    def pid() -> int | None:
        for report in _reports(paths):
            for w in report.workers:
                if w.index == index and w.pid:
                    return w.pid
        return None

    return int(wait_for(pid, 60, f"worker {index}'s pid in the journal"))


def _step(paths: SessionPaths) -> int:
    """The run's step; a run that ended meanwhile fails the test at once, with its log's end."""
    state = read_state(paths)
    if live_status(state) in ENDED:
        raise AssertionError(f"the run ended {live_status(state)}: {paths.log.read_text()[-2000:]}")
    return int(state.get("step") or 0)


def _checkpointed(paths: SessionPaths) -> int:
    _step(paths)
    return int(read_state(paths).get("last_checkpoint_step") or 0)


@pytest.fixture(scope="module")
def two_workers(tiny_tf: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> SessionPaths:
    """An uninterrupted run of 2 workers: the reference of the kill and resume tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUDA_VISIBLE_DEVICES", "")
        paths = _start(tmp_path_factory.mktemp("two") / "sessions", tiny_tf, tiny_data, workers=2)
        _finished(paths)
    return paths


# ---------------------------------------------------------------- the group's description


def test_a_cluster_file_gives_the_hosts_and_this_hosts_index(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text('hosts = ["node1:2222", "node2:2222"]\nindex = 1\n')
    spec = load_cluster(path)
    assert (spec.hosts, spec.index, spec.is_chief) == (("node1:2222", "node2:2222"), 1, False)
    assert json.loads(spec.tf_config()) == {
        "cluster": {"worker": ["node1:2222", "node2:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    chief_first = from_tf_config(
        json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}})
    )
    assert (chief_first.hosts, chief_first.index) == (("a:1", "b:2"), 1)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('hosts = ["a:1", "b:2"\nindex = 0', "not valid TOML"),
        ('hosts = ["a:1", "b:2"]\nindex = 2', "index 2 is out of range for 2 hosts; use 0 to 1"),
        ('hosts = ["a:1", "b:2"]', "index is missing"),
        ('hosts = ["a:1", "b"]\nindex = 0', "'b' is not host:port"),
        ('hosts = ["a:1", "a:1"]\nindex = 0', "a:1 listed twice"),
        ('hosts = ["a:1"]\nindex = 0\nport = 3', "unknown key 'port'"),
        ("hosts = []\nindex = 0", "hosts must be a list"),
    ],
)
def test_a_bad_cluster_file_is_refused_in_one_line(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_cluster(path)
    assert said in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_this_hosts_busy_port_is_refused_naming_it() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        spec = from_tf_config(
            json.dumps(
                {
                    "cluster": {"worker": ["localhost:1", f"localhost:{port}"]},
                    "task": {"type": "worker", "index": 1},
                }
            )
        )
        with pytest.raises(ConfigError, match=f"worker 1 \\(localhost:{port}\\): port {port} is in use"):
            spec.check_port()


# What TensorFlow raised when a real 2-worker run's worker 1 was killed (kill -9) mid-step.
RING_ABORTED = """Graph execution error:

Detected at node CollectiveReduceV2 defined at (most recent call last):
  File "engine/train/optim.py", line 283, in _finish

Collective ops is aborted by: failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:46899: \
Failed to connect to remote host: Connection refused
Additional GRPC error information from remote target /job:worker/replica:0/task:1 while calling RecvBuf:
:UNKNOWN:Error received from peer  {grpc_status:14}
The error could be from a previous operation. Restart your program to reset.
\t [[{{node CollectiveReduceV2}}]] [Op:__inference_fn_1234]"""


def test_a_failed_collective_names_the_worker_the_pid_watch_saw_go() -> None:
    import threading

    import tensorflow as tf

    from engine.train.cluster import ClusterSpec
    from engine.train.cluster_run import Group

    group = Group(ClusterSpec(("localhost:1", "localhost:2"), 0, local=True), log=lambda _: None)
    exc = tf.errors.UnavailableError(None, None, RING_ABORTED)
    # The collective fails first; the watch names the worker a moment later (it polls every 0.25 s).
    threading.Timer(0.3, group.abort, args=("worker 1 (pid 42) was killed (SIGKILL)",)).start()
    said = str(group.failure(exc, "at step 76"))
    assert said == "worker 1 (pid 42) was killed (SIGKILL) at step 76"
    nobody = Group(ClusterSpec(("localhost:1", "h2:2"), 0), log=lambda _: None)
    said = str(nobody.failure(exc, "at step 76"))  # a remote worker: TensorFlow's reason, its telling line
    assert said.startswith("the training group lost a worker at step 76 (Collective ops is aborted by:")
    assert "Graph execution" not in said and "[Op:" not in said and "\n" not in said


def test_the_chiefs_evaluation_ends_at_once_when_a_worker_is_lost(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from engine.train.cluster import ClusterSpec, WorkerLost
    from engine.train.cluster_run import Group
    from engine.train.config import parse_config
    from engine.train.loop import Trainer
    from tests.train.conftest import make_ctx

    cfg = train_config(tiny_tf, tiny_data, max_steps=1, eval_every_steps=None)
    ctx, _ = make_ctx(tmp_path / "s", config=cfg)
    trainer = Trainer(parse_config(cfg), tiny_data, ctx)
    trainer.run()  # one process; then the chief of a group whose worker 1 the pid watch saw go
    group = Group(ClusterSpec(("localhost:1", "localhost:2"), 0, local=True), log=lambda _: None)
    trainer.group = group
    seen: list[int] = []
    trainer.callbacks.on_evaluate_batch = lambda _t, _s, done, _n: seen.append(done)  # type: ignore[method-assign]
    assert trainer.evaluate("validation") is not None and seen[-1] > 1  # several batches when all are alive
    seen.clear()
    group.lost = "worker 1 (pid 42) was killed (SIGKILL)"
    with pytest.raises(
        WorkerLost, match=r"^worker 1 \(pid 42\) was killed \(SIGKILL\) while the chief evaluated"
    ):
        trainer.evaluate("validation")
    assert seen == []  # before its first batch
    group.ending = True  # after the loop (the final test evaluation) a worker's exit is no loss
    assert trainer.evaluate("validation") is not None


def test_local_workers_get_one_gpu_each_or_are_refused_in_one_line() -> None:
    from engine.train.cluster import local_gpus

    assert local_gpus(2, 0, None) is None  # no GPU: every worker on the CPU
    assert local_gpus(2, 0, "") is None
    assert local_gpus(2, 4, None) == ["0", "1"]  # the chief GPU 0, worker 1 GPU 1; the rest idle
    assert local_gpus(3, 3, "5, 2,7") == ["5", "2", "7"]  # the ids this process was given
    with pytest.raises(ConfigError) as err:
        local_gpus(4, 2, "0,1")  # two processes on one GPU would each take all of its memory
    assert str(err.value) == (
        "--workers 4: this host has 2 GPU(s), one per worker is needed; use --workers 2, "
        "or set CUDA_VISIBLE_DEVICES= (empty) to train on the CPU"
    )


def test_the_session_says_its_group_and_only_training_runs_on_several(tmp_path: Path) -> None:
    assert session_group({"workers": 1}) is None
    local = session_group({"workers": 3})
    assert local is not None and local.local and local.size == 3 and len(set(local.hosts)) == 3
    hosts = session_group({"workers": 2, "hosts": ["h1:5000", "h2:5000"]})
    assert hosts is not None and not hosts.local and hosts.hosts == ("h1:5000", "h2:5000")
    with pytest.raises(ConfigError, match="only training runs on several workers"):
        create_session(tmp_path / "s", {"job": {"kind": "selftest"}}, workers=2)


def test_a_resume_with_another_size_of_a_multi_host_group_is_refused(tmp_path: Path) -> None:
    from engine.launcher import _group_change

    paths = SessionPaths(tmp_path / "s")
    state = {"job": "train", "workers": 2, "hosts": ["h1:1", "h2:1"]}
    with pytest.raises(SessionError, match="runs on 2 hosts; resume it without --workers"):
        _group_change(paths, state, 3)
    assert _group_change(paths, {"job": "train", "workers": 2}, 1) == {"workers": 1}
    assert _group_change(paths, {"job": "train", "workers": 2}, 2) == {}


# ---------------------------------------------------------------- control at one step boundary


def test_pause_checkpoint_and_stop_reach_both_workers_at_the_same_step(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    paths = _start(
        tmp_path / "sessions",
        tiny_tf,
        tiny_data,
        workers=2,
        max_steps=400,
        eval_every_steps=None,
        checkpoint_every_steps=None,
    )
    try:
        assert read_state(paths)["workers"] == 2
        wait_for(lambda: _step(paths) >= 2, 240, "two steps of the group")
        client.request(paths, protocol.Pause())
        wait_for(lambda: read_state(paths).get("status") == "paused", 60, "paused")
        wait_for(lambda: _acted(_worker_log(paths), "pause"), 30, "worker 1's pause")
        client.request(paths, protocol.CheckpointNow())
        wait_for(lambda: _acted(_worker_log(paths), "checkpoint"), 30, "worker 1's checkpoint")
        client.request(paths, protocol.Unpause())
        paused_at = _acted(_worker_log(paths), "pause")[0]
        wait_for(lambda: _step(paths) > paused_at + 1, 60, "steps after the pause")
        client.request(paths, protocol.Stop())
        assert _end(paths, 120) == "stopped"
        wait_for(lambda: "worker 1: stopped" in _worker_log(paths), 30, "worker 1's own stop")
    finally:
        if live_status(read_state(paths)) not in ENDED:
            os.kill(int(read_state(paths)["pid"]), signal.SIGKILL)
    chief, worker = paths.log.read_text(), _worker_log(paths)
    for what in ("pause", "checkpoint", "stop"):
        assert _acted(chief, what) == _acted(worker, what) != [], what
    stopped_at = _acted(chief, "stop")[0]
    assert (paths.checkpoints / f"ckpt-{stopped_at}").is_dir()
    assert (paths.checkpoints / f"ckpt-{_acted(chief, 'checkpoint')[0]}").is_dir()
    events = read_all(paths.events)
    started = [e.body for e in events if isinstance(e.body, protocol.EngineStarted)]
    assert started[0].workers == 2
    reports = _reports(paths)
    assert any(r.total == 2 and [w.alive for w in r.workers] == [True, True] for r in reports)
    # Worker 1 wrote nothing in the session but its log.
    assert sorted(p.name for p in (paths.root / "workers").iterdir()) == ["worker-1.log"]


# ---------------------------------------------------------------- whole runs (slow)


@pytest.mark.slow  # two engine runs: ~2 minutes on 2 loaded cores
@pytest.mark.timeout(600)
def test_two_workers_give_the_weights_of_one_process(
    two_workers: SessionPaths, tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    one = _start(tmp_path / "sessions", tiny_tf, tiny_data, workers=1)
    _finished(one)
    _assert_same_weights(_weights(two_workers), _weights(one))
    assert not (one.root / "workers").exists()
    assert "finished at step 8" in _worker_log(two_workers)


def _start_killed(
    root: Path, model: Path, data: Path, mp: pytest.MonkeyPatch, index: int, step: int
) -> SessionPaths:
    """A 2-worker run whose worker ``index`` kills itself (SIGKILL) at step ``step``'s boundary."""
    mp.setenv("FTC_FAULT", f"worker{index}_boundary@{step}")  # inherited by the engine and its workers
    try:
        return _start(root, model, data, workers=2)
    finally:
        mp.delenv("FTC_FAULT")  # not for the resume


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_worker_crashes_the_group_naming_it_and_a_resume_ends_as_uninterrupted(
    two_workers: SessionPaths, tiny_tf: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _start_killed(tmp_path / "sessions", tiny_tf, tiny_data, monkeypatch, index=1, step=5)
    pid = _worker_pid(paths)
    wait_for(lambda: not pid_alive(pid), 240, "worker 1's death")
    killed = time.monotonic()
    assert _end(paths, 120) == "crashed"
    assert time.monotonic() - killed < 60, "the chief noticed the lost worker late"
    message = read_state(paths)["message"]
    assert f"worker 1 (pid {pid}) was killed (SIGKILL) at step 5" in message, message
    assert f"ftc resume {paths.id}" in message
    assert read_state(paths)["last_checkpoint_step"] in (2, 4)  # 4's is written in the background
    wait_for(lambda: not pid_alive(read_state(paths).get("pid")), 30, "the chief's exit")
    start_engine(paths, resume=True)
    _finished(paths)
    _assert_same_weights(_weights(paths), _weights(two_workers))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_killed_chief_ends_its_workers_and_a_resume_ends_as_uninterrupted(
    two_workers: SessionPaths, tiny_tf: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _start_killed(tmp_path / "sessions", tiny_tf, tiny_data, monkeypatch, index=0, step=5)
    worker = _worker_pid(paths)
    assert _end(paths, 240) == "crashed"
    wait_for(lambda: not pid_alive(worker), 30, "worker 1's exit after its chief's")
    assert "the chief is gone" in _worker_log(paths)
    start_engine(paths, resume=True)
    _finished(paths)
    _assert_same_weights(_weights(paths), _weights(two_workers))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_group_that_crashed_on_two_workers_resumes_on_one_as_uninterrupted(
    two_workers: SessionPaths, tiny_tf: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _start_killed(tmp_path / "sessions", tiny_tf, tiny_data, monkeypatch, index=0, step=3)
    assert _end(paths, 240) == "crashed"
    start_engine(paths, resume=True, workers=1)
    _finished(paths)
    assert read_state(paths)["workers"] == 1
    _assert_same_weights(_weights(paths), _weights(two_workers))


# ---------------------------------------------------------------- several hosts (two local processes)


def _ftc(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tui", "--sessions-dir", str(root), *args]


def _toml_config(tmp_path: Path, model: Path, data: Path, **train: Any) -> Path:
    from engine.config import dump_toml

    path = tmp_path / "run.toml"
    path.write_text(dump_toml(train_config(model, data, **{**RUN, **train})))
    return path


def test_a_cluster_file_with_a_bad_index_or_a_busy_port_is_refused_by_ftc_train(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    config = _toml_config(tmp_path, tiny_tf, tiny_data)
    bad = tmp_path / "bad.toml"
    bad.write_text('hosts = ["localhost:1", "localhost:2"]\nindex = 5\n')
    argv = _ftc(tmp_path / "s", "train", str(config), "--cluster", str(bad))
    run: dict[str, Any] = {"capture_output": True, "text": True, "timeout": 60}
    out = subprocess.run(argv, **run)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"ftc: {bad}: index 5 is out of range for 2 hosts; use 0 to 1"]
    assert not (tmp_path / "s").exists()  # nothing started, no session
    raw = tmp_path / "raw.toml"
    raw.write_text(config.read_text().replace(f'dir = "{tiny_data}"', 'source = "tweets.csv"'))
    good = tmp_path / "cluster.toml"
    from engine.train.cluster import free_ports

    good.write_text(f"hosts = {json.dumps([f'localhost:{p}' for p in free_ports(2)])}\nindex = 1\n")
    out = subprocess.run(_ftc(tmp_path / "s", "train", str(raw), "--cluster", str(good)), **run)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "ftc: [data] source: a run over several hosts needs prepared data on every host; run ftc prepare "
        "there (or copy its folder) and give it as [data] dir"
    ]
    assert not (tmp_path / "s").exists()


@pytest.mark.slow  # ~40 s: two TensorFlow processes
@pytest.mark.timeout(300)
def test_the_same_command_on_two_hosts_with_a_cluster_file_trains_one_session(
    tiny_tf: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from engine.train.cluster import free_ports

    config = _toml_config(tmp_path, tiny_tf, tiny_data, max_steps=4)
    hosts = [f"localhost:{p}" for p in free_ports(2)]
    for index in (0, 1):
        (tmp_path / f"cluster{index}.toml").write_text(f"hosts = {json.dumps(hosts)}\nindex = {index}\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    roots = (tmp_path / "host0", tmp_path / "host1")  # each "host" its own sessions folder
    worker = subprocess.Popen(
        _ftc(roots[1], "train", str(config), "--cluster", str(tmp_path / "cluster1.toml")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        chief = subprocess.run(
            _ftc(roots[0], "train", str(config), "--cluster", str(tmp_path / "cluster0.toml"), "--detach"),
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert chief.returncode == 0, chief.stderr
        paths = SessionPaths(roots[0] / chief.stdout.split()[0])
        _finished(paths)
        out, _ = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, out[-3000:]
    assert f"worker 1 of 2 ({hosts[1]}): joining the chief at {hosts[0]}" in out
    assert "worker 1: finished at step 4" in out
    state = read_state(paths)
    assert (state["workers"], state["hosts"]) == (2, hosts)
    assert not (paths.root / "workers").exists()  # the other host's worker logs on its own host
    assert [p.name for p in roots[1].iterdir()] == [".workers"]  # no session there, only its folder
    assert _reports(paths)[-1].workers[1].host == hosts[1]
