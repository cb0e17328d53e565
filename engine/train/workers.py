"""The workers of a training group: started and watched by the chief, and each one's own process.

On the chief (the session's engine), ``chief_group`` starts the other local workers (``ftc train
--workers N``) as ``python -m engine.train.workers SESSION --pipe FD``, each with its TF_CONFIG and
its output in ``<session>/workers/worker-<i>.log``. The chief holds the write end of a pipe to
each: a worker whose chief is gone (even by kill -9) reads end-of-file and exits at once. The
chief polls its workers' pids: one that dies aborts the group's collectives, so the chief stops
at once, naming it. It journals WorkersReported on start, on every change and every few seconds.

A worker on another host (``ftc train CONFIG --cluster cluster.toml`` with index > 0) runs the
same entry in the foreground with a folder of its own: it needs the config and the data, never
the session: weights, optimizer and where training stands come from the chief (cluster_run.sync).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import protocol
from engine.errors import FtcError
from engine.train.cluster import ClusterSpec, WorkerLost

if TYPE_CHECKING:
    from engine.jobs.base import JobContext
    from engine.train.cluster_run import Group

REPORT_EVERY_S = 5.0
POLL_S = 0.25
# How long the chief waits for its workers to finish after its own last step before ending them.
EXIT_WAIT_S = 60.0
EXIT_CHIEF_GONE = 75  # a worker's exit code when its chief went away


def _now_line(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(f"ftc worker: {text}", file=sys.stderr, flush=True)


class LocalWorkers:
    """The chief's child workers on this host: started, watched, and ended with it."""

    def __init__(self, spec: ClusterSpec, ctx: JobContext, group: Group) -> None:
        self.spec, self.ctx, self.group = spec, ctx, group
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._pipes: list[int] = []
        self.notes: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ftc-workers", daemon=True)
        self.folder = ctx.paths.root / "workers"

    def start(self) -> None:
        from engine.launcher import _engine_env

        gpus = self._one_gpu_each()
        self.folder.mkdir(mode=0o700, exist_ok=True)
        for index in range(1, self.spec.size):
            read, write = os.pipe()
            env = {**_engine_env(), "TF_CONFIG": self.spec.at(index).tf_config()}
            if gpus is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpus[index]
            log_path = self.folder / f"worker-{index}.log"
            with open(log_path, "ab") as log:
                os.chmod(log_path, 0o600)
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "engine.train.workers",
                        str(self.ctx.paths.root),
                        "--pipe",
                        str(read),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(read,),
                    env=env,
                    cwd=self.ctx.paths.root,
                )
            os.close(read)
            self._pipes.append(write)
            self.procs[index] = proc
        self._thread.start()

    def _one_gpu_each(self) -> list[str] | None:
        """On a host with GPUs, worker i gets GPU i alone (the chief, this process, the first).

        The chief's own GPUs are narrowed before its runtime starts (listing them starts nothing).
        """
        import tensorflow as tf

        from engine.train.cluster import local_gpus

        found = tf.config.list_physical_devices("GPU")
        gpus = local_gpus(self.spec.size, len(found), os.environ.get("CUDA_VISIBLE_DEVICES"))
        if gpus is not None:
            tf.config.set_visible_devices(found[:1], "GPU")
            self.group.log(f"one GPU per worker: workers 0-{len(gpus) - 1} on GPUs {', '.join(gpus)}")
        return gpus

    def _watch(self) -> None:
        reported = -1e9
        last: list[protocol.WorkerHealth] | None = None
        while not self._stop.is_set():
            for index, proc in self.procs.items():
                code = proc.poll()
                if code is not None and index not in self.notes:
                    finished = self.group.ending and code == 0
                    self.notes[index] = protocol.WORKER_FINISHED if finished else _exit_note(code)
                    if not finished:
                        self.group.abort(f"worker {index} (pid {proc.pid}) {self.notes[index]}")
            health = self.health()
            now = time.monotonic()
            if last is None or _changed(last, health) or now - reported >= REPORT_EVERY_S:
                report(self.ctx, self.spec.size, health)
                reported, last = now, health
            self._stop.wait(POLL_S)

    def health(self) -> list[protocol.WorkerHealth]:
        host = socket.gethostname()
        rows = [_chief(self.group, host)]
        for index, proc in self.procs.items():
            note = self.notes.get(index, "")
            rows.append(
                protocol.WorkerHealth(
                    index=index,
                    host=host,
                    pid=proc.pid,
                    alive=not note,
                    step=self.group.step if self.group.agreed_at is not None else None,
                    last_seen=self.group.agreed_at if not note else None,
                    note=note,
                )
            )
        return rows

    def close(self, wait: bool = True) -> None:
        """Wait for the workers' own end (they stop at the chief's step), then end the rest.

        Without ``wait`` (the chief failed) they are ended at once: none would reach an end of its own.
        """
        self.group.ending = True
        deadline = time.monotonic() + (EXIT_WAIT_S if wait and self.group.lost is None else 0.0)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for pipe in self._pipes:  # end of file: a worker still waiting for the chief exits
            with contextlib.suppress(OSError):
                os.close(pipe)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for index, proc in self.procs.items():
            self.notes.setdefault(index, _exit_note(proc.returncode))
        report(self.ctx, self.spec.size, self.health())


class RemoteWorkers:
    """The chief's view of workers on other hosts: alive while the group's collectives go through."""

    def __init__(self, spec: ClusterSpec, ctx: JobContext, group: Group) -> None:
        self.spec, self.ctx, self.group = spec, ctx, group
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ftc-workers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def health(self) -> list[protocol.WorkerHealth]:
        rows = [_chief(self.group, socket.gethostname())]
        lost = self.group.lost
        for index, address in enumerate(self.spec.hosts[1:], start=1):
            rows.append(
                protocol.WorkerHealth(
                    index=index,
                    host=address,
                    alive=lost is None,
                    step=self.group.step if self.group.agreed_at is not None else None,
                    last_seen=self.group.agreed_at,
                    note="" if lost is None else "the group lost a worker",
                )
            )
        return rows

    def _watch(self) -> None:
        while not self._stop.wait(REPORT_EVERY_S):
            report(self.ctx, self.spec.size, self.health())

    def close(self, wait: bool = True) -> None:
        del wait  # nothing to wait for: the other hosts' workers end on their own
        self._stop.set()
        report(self.ctx, self.spec.size, self.health())


def _chief(group: Group, host: str) -> protocol.WorkerHealth:
    return protocol.WorkerHealth(
        index=0, host=host, pid=os.getpid(), alive=True, step=group.step, last_seen=time.time()
    )


def _changed(old: list[protocol.WorkerHealth], new: list[protocol.WorkerHealth]) -> bool:
    return [(w.alive, w.note) for w in old] != [(w.alive, w.note) for w in new]


def report(ctx: JobContext, total: int, health: list[protocol.WorkerHealth]) -> None:
    with contextlib.suppress(OSError):
        ctx.emit(protocol.WorkersReported(total=total, workers=health))


def _exit_note(code: int | None) -> str:
    if code is None:
        return ""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed ({name})"
    return "exited" if code == 0 else f"exited with {code}"


@contextlib.contextmanager
def chief_group(ctx: JobContext) -> Iterator[Group | None]:
    """The chief's training group (None for one process): its workers started here and ended after."""
    spec: ClusterSpec | None = ctx.cluster
    if spec is None or spec.size == 1:
        yield None
        return
    from engine.train.cluster_run import Group

    def log(text: str) -> None:
        print(f"ftc engine: {text}", file=sys.stderr, flush=True)

    group = Group(spec, log)
    watcher: LocalWorkers | RemoteWorkers = (
        LocalWorkers(spec, ctx, group) if spec.local else RemoteWorkers(spec, ctx, group)
    )
    ctx.update_state(workers=spec.size)
    watcher.start()
    try:
        yield group
    except BaseException as exc:  # a stop ends every worker at the same step; a failure none
        from engine.jobs.base import StopRequested

        watcher.close(wait=isinstance(exc, StopRequested))
        raise
    watcher.close()


# ---------------------------------------------------------------- a worker's own process


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.train.workers FOLDER [--pipe FD]``: one non-chief worker of a group."""
    # Started by an engine that blocks these signals in every thread; a worker takes them itself.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="python -m engine.train.workers")
    parser.add_argument("folder", type=Path, help="the session (local workers) or this worker's own folder")
    parser.add_argument(
        "--pipe", type=int, help="read end of the chief's pipe: end of file = the chief is gone"
    )
    args = parser.parse_args(argv)
    try:
        from engine.train.cluster import from_environment

        spec = from_environment()
        if spec is None or spec.is_chief:
            raise WorkerLost("a worker needs a TF_CONFIG with an index above 0 (the chief is the engine)")
        if args.pipe is not None:
            _watch_chief(args.pipe)
        return _run(args.folder.resolve(), spec)
    except FtcError as exc:
        _now_line(f"error: {exc}")
        return int(exc.exit_code)
    except WorkerLost as exc:
        _now_line(f"error: {exc}")
        return 1


def _watch_chief(fd: int) -> None:
    def wait() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        _now_line("the chief is gone (its pipe closed); this worker exits")
        os._exit(EXIT_CHIEF_GONE)

    threading.Thread(target=wait, name="ftc-chief-pipe", daemon=True).start()


def _run(folder: Path, spec: ClusterSpec) -> int:
    from engine.config import load_toml
    from engine.jobs.base import Control, JobContext, StopRequested
    from engine.session import SessionPaths
    from engine.train.config import parse_config
    from engine.train.job import data_dir

    paths = SessionPaths(folder)
    config = load_toml(paths.config)
    control = Control()

    def on_signal(signum: int, _frame: object) -> None:
        if control.stop_reason is not None:
            os._exit(130)
        control.request_stop(f"signal {signal.Signals(signum).name} to worker {spec.index}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def emit(body: protocol._Body) -> Any:
        if isinstance(body, protocol.LogRecorded):
            _now_line(f"{body.level}: {body.text}")

    ctx = JobContext(
        paths=paths, config=config, resume=False, control=control, emit=emit, update_state=lambda **_: None
    )
    cfg = parse_config(config)
    folder_data = data_dir(cfg, ctx)
    if cfg.data.source is not None and not (folder_data / "manifest.json").exists():
        raise WorkerLost(
            f"worker {spec.index}: no prepared data in {folder_data}; prepare it (ftc prepare) and "
            "give it as [data] dir, the same on every host"
        )
    from engine.train.cluster_run import Group
    from engine.train.loop import Trainer

    group = Group(spec, _now_line)
    _now_line(f"worker {spec.index} of {spec.size} (pid {os.getpid()}) for {folder}")
    try:
        summary = Trainer(cfg, folder_data, ctx, group=group).run()
    except StopRequested as stop:
        _now_line(f"worker {spec.index}: stopped ({stop.reason})")
        return 0
    _now_line(f"worker {spec.index}: finished at step {summary['steps']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
