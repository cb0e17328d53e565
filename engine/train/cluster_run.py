"""A training group at run time: MultiWorkerMirroredStrategy, and the decisions all workers agree on.

Every worker runs the same steps; the chief alone writes the session. What the chief alone
knows (its control flags: pause, checkpoint, stop; early stopping; its restored checkpoint) reaches
the others through collectives, so that every worker acts at the same step boundary and none waits
alone in an all-reduce:

- ``agree``: after each step an all-reduce (sum) of a small vector: the chief contributes its flags,
  another worker only a stop of its own (a signal), so a flag set anywhere is seen everywhere.
- ``sync``: at the start the chief's weights, optimizer state, dropout generators and TrainerState
  reach every worker (an all-reduce to which only the chief contributes), so another host needs
  neither the session folder nor its checkpoints, and a resume restarts the whole group exactly.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from engine.fsio import fault
from engine.jobs.base import StopRequested
from engine.train.cluster import ClusterSpec, WorkerLost

if TYPE_CHECKING:
    from engine.train.loop import Trainer

# A collective waits at most this long for every worker (the others wait while the chief evaluates
# or writes a checkpoint); a worker that is gone is noticed sooner by the health checks below.
COLLECTIVE_TIMEOUT_S = float(os.environ.get("FTC_COLLECTIVE_TIMEOUT_S", "1800"))
# How long the group waits at start for all its workers (other hosts are started by hand).
START_TIMEOUT_S = float(os.environ.get("FTC_CLUSTER_START_TIMEOUT_S", "600"))
# TensorFlow pings every peer this often; one that does not answer aborts the group's collectives.
HEALTH_INTERVAL_S = float(os.environ.get("FTC_CLUSTER_HEALTH_S", "5"))
PAUSE_POLL_S = 0.2
# A collective can fail (its peer's socket closed) before the chief's pid watch (every 0.25 s) has
# named the worker that died: a failure waits this long for that name before it falls back on
# TensorFlow's reason.
LOST_NAME_WAIT_S = 2.0

PAUSE, CHECKPOINT, STOP, END = range(4)


class Group:
    """This process's place in a training group and the collectives the loop uses."""

    def __init__(self, spec: ClusterSpec, log: Callable[[str], None]) -> None:
        self.spec = spec
        self.log = log  # a line for this worker's own log (engine.log on the chief)
        self.step = 0  # the last step boundary the whole group agreed on
        self.agreed_at: float | None = None
        self.ending = False  # the loop is over: a worker exiting now is no loss
        self.lost: str | None = None  # set by whoever notices a lost worker (the chief's pid watch)
        self._lock = threading.Lock()
        self._named = threading.Event()  # set once ``lost`` names the worker
        self._strategy: Any = None
        self._starting = False  # the runtime's collectives are being configured (or are)
        self._agree_fn: Any = None

    @property
    def is_chief(self) -> bool:
        return self.spec.is_chief

    def strategy(self) -> tf.distribute.Strategy:
        """MultiWorkerMirroredStrategy over the group; first, before any other TensorFlow op here."""
        if self._strategy is not None:
            return self._strategy
        from tensorflow.python.distribute import collective_all_reduce_strategy as cars

        # Class settings of TensorFlow's health check (no public option): ping peers every few
        # seconds, and wait a bounded time at start for all of them.
        cars.CollectiveAllReduceExtended._check_health_interval = max(1, int(HEALTH_INTERVAL_S))
        cars.CollectiveAllReduceExtended._check_health_initial_timeout = max(1, int(START_TIMEOUT_S))
        os.environ["TF_CONFIG"] = self.spec.tf_config()
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=COLLECTIVE_TIMEOUT_S,
        )
        if self.lost is not None:  # a local worker died while this process was still importing
            raise WorkerLost(f"{self.lost} while the group started")
        self._starting = True
        everyone = ", ".join(self.spec.hosts)
        self.log(f"worker {self.spec.index} of {self.spec.size}: waiting for the group ({everyone})")
        try:
            self._strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except (RuntimeError, tf.errors.OpError) as exc:
            raise self.failure(exc, "while the group started") from None
        self.log(f"worker {self.spec.index}: the group of {self.spec.size} is up")
        return self._strategy

    def abort(self, why: str) -> None:
        """Make every collective of this process fail now (a worker is gone): the loop ends."""
        with self._lock:
            if self.lost is None:
                self.lost = why
        self._named.set()
        if not self._starting:  # before the strategy, aborting would start the runtime unconfigured
            return
        from tensorflow.python.eager import context

        context.context().abort_collective_ops(tf.errors.UNAVAILABLE, why)

    def failure(self, exc: BaseException, when: str) -> WorkerLost:
        """The one-line error for a collective that failed: the worker the chief saw go, else TF's reason."""
        self._named.wait(LOST_NAME_WAIT_S)
        if self.lost is not None:
            return WorkerLost(f"{self.lost} {when}")
        return WorkerLost(f"the training group lost a worker {when} ({tf_reason(exc)})")

    def check(self, when: str) -> None:
        """Raise WorkerLost now if a worker is gone (the chief's pid watch saw it) and the loop needs it.

        For work of the chief's alone (its evaluations), which no collective would interrupt.
        """
        if self.lost is not None and not self.ending:
            raise WorkerLost(f"{self.lost} {when}")

    def end(self) -> None:
        """The loop is over: no more collectives, so stop TensorFlow's pings of peers that now exit."""
        self.ending = True
        stop = getattr(getattr(self._strategy, "extended", None), "_stop_check_health_thread", None)
        if stop is not None:
            stop()

    # ------------------------------------------------------------ collectives

    def _local(self, value: Any) -> Any:
        return self._strategy.experimental_local_results(value)[0]

    def agree(self, flags: Sequence[float]) -> np.ndarray:
        """The sum over the group of each worker's flags (float32: integer all-reduces fail on CPU)."""
        if self._agree_fn is None:
            strategy = self._strategy

            def replica(v: tf.Tensor) -> tf.Tensor:
                ctx = tf.distribute.get_replica_context()
                return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(v))

            def fn(x: tf.Tensor) -> Any:
                return strategy.run(replica, args=(x,))

            self._agree_fn = tf.function(fn, reduce_retracing=True)
        out = self._agree_fn(tf.constant(np.asarray(flags, np.float32)))
        self.agreed_at = time.time()
        return np.asarray(self._local(out).numpy())

    def broadcast(self, variables: Sequence[Any]) -> None:
        """Every worker's variables take the chief's values (a sum to which only the chief adds)."""
        if not variables:
            return
        strategy, chief = self._strategy, self.is_chief
        values = [tf.convert_to_tensor(v) for v in variables]
        values = [v if chief else tf.zeros_like(v) for v in values]
        by_dtype: dict[Any, list[int]] = {}
        for i, v in enumerate(values):
            by_dtype.setdefault(v.dtype, []).append(i)

        def replica(*vs: tf.Tensor) -> list[tf.Tensor]:
            ctx = tf.distribute.get_replica_context()
            out: list[Any] = [None] * len(vs)
            for idx in by_dtype.values():  # one all-reduce per dtype: a mixed list cannot be packed
                summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.identity(vs[i]) for i in idx])
                for i, s in zip(idx, summed, strict=True):
                    out[i] = s
            return out

        result = strategy.run(tf.function(replica), args=tuple(values))
        for var, value in zip(variables, result, strict=True):
            var.assign(self._local(value))

    def broadcast_text(self, text: str) -> str:
        """The chief's text (another worker's is ignored), on every worker."""
        data = np.frombuffer(text.encode(), np.uint8).astype(np.float32) if self.is_chief else None
        n = int(self.agree([float(len(data)) if data is not None else 0.0])[0])
        mine = data if data is not None else np.zeros(n, np.float32)
        got = self.agree(mine.tolist()) if n else np.zeros(0)
        return bytes(np.rint(got).astype(np.uint8).tolist()).decode()


def tf_reason(exc: BaseException) -> str:
    """The line of a TensorFlow error that says what happened (not "Graph execution error:", the node's
    traceback or its [[node]] tag), at most 200 characters."""
    text = str(getattr(exc, "message", exc))
    for line in text.splitlines():
        if not line.strip() or line[0].isspace() or line.startswith(("Graph execution error", "Detected at")):
            continue
        if line.startswith(("[[", ":", "Additional GRPC")):
            continue
        return re.sub(r"\s*\[Op:[^\]]*\]$", "", line.strip())[:200]
    return type(exc).__name__


def sync(trainer: Trainer, variables: Sequence[Any]) -> None:
    """The chief's weights, optimizer, generators and TrainerState on every worker; checks they match."""
    group = trainer.group
    assert group is not None
    group.broadcast(variables)
    text = group.broadcast_text(trainer.state.model_dump_json() if group.is_chief else "")
    if group.is_chief:
        return
    from engine.train.state import TrainerState

    chief = TrainerState.model_validate(json.loads(text))
    mine = trainer.state.fingerprints
    for key in ("config_semantic", "data", "tokenizer"):
        if chief.fingerprints.get(key) != mine.get(key):
            from engine.errors import ConfigError

            raise ConfigError(
                f"worker {group.spec.index}: its {key.replace('_', ' ')} differs from the chief's; "
                "start every worker with the same config and data"
            )
    if chief.fingerprints.get("precision") != mine.get("precision"):
        from engine.errors import ConfigError

        theirs = chief.fingerprints.get("precision")
        raise ConfigError(
            f"worker {group.spec.index}: its precision ({mine.get('precision')}) differs from the "
            f'chief\'s ({theirs}); set [train] mixed_precision = "{theirs}" so every host trains alike'
        )
    # Where the optimizer update is compiled is the chief's choice (its checkpoint's, on a resume):
    # another host without the checkpoints could not know it, and the two updates round differently.
    if "jit_from_step" in chief.fingerprints:
        trainer.jit_from_step = chief.fingerprints["jit_from_step"]
        trainer.jit_optimizer = trainer.jit_from_step is not None
    keep = ("version", "total_steps", "seed", "fingerprints", "variable_names")
    trainer.state = chief.model_copy(update={name: getattr(trainer.state, name) for name in keep})
    group.step = trainer.state.step
    group.log(f"worker {group.spec.index}: starting at step {trainer.state.step}")


def boundary(trainer: Trainer) -> None:
    """The group's step boundary: checkpoint, pause and stop as agreed, at the same step on every worker.

    The chief acts as ``JobContext.boundary`` does for one process (events, state.json, the
    checkpoint); another worker only logs the step it acted at and waits or stops with the chief.
    """
    group, ctx = trainer.group, trainer.ctx
    assert group is not None
    fault(f"worker{group.spec.index}_boundary", trainer.state.step)  # tests kill -9 one worker here
    c = ctx.control
    c.stepping = True
    if c.failure is not None:
        raise c.failure
    step = trainer.state.step
    flags = _agree(trainer)
    group.step = step
    if flags[END]:
        trainer.control.should_training_stop = True
    if flags[CHECKPOINT]:
        _checkpoint(trainer, step)
    if flags[PAUSE] and not flags[STOP]:
        flags = _paused(trainer, step)
    if flags[STOP]:
        group.log(f"worker {group.spec.index}: stop at step {step}")
        group.ending = True
        if not group.is_chief:
            raise StopRequested(c.stop_reason or "stopped with the group")
        ctx.update_state(status="stopping", step=step)
        with c.acting_on(c.stop_id):
            trainer.save("stop")
        raise StopRequested(c.stop_reason or "a worker was stopped")


def _agree(trainer: Trainer) -> np.ndarray:
    group, c = trainer.group, trainer.ctx.control
    assert group is not None
    flags = [0.0, 0.0, 0.0, 0.0]
    flags[STOP] = float(c.stop_reason is not None)
    if group.is_chief:
        flags[PAUSE] = float(c.paused)
        if c.checkpoint_requested:  # taken now: a request arriving after this is the next boundary's
            c.checkpoint_requested = False
            flags[CHECKPOINT] = 1.0
        flags[END] = float(trainer.control.should_training_stop)
    try:
        return group.agree(flags) > 0
    except tf.errors.OpError as exc:
        raise group.failure(exc, f"at step {trainer.state.step}") from None


def _checkpoint(trainer: Trainer, step: int) -> None:
    group, c = trainer.group, trainer.ctx.control
    assert group is not None
    group.log(f"worker {group.spec.index}: checkpoint at step {step}")
    if group.is_chief:
        with c.acting_on(c.checkpoint_id):
            trainer.save("on_command")


def _paused(trainer: Trainer, step: int) -> np.ndarray:
    """Wait paused with the group, agreeing every PAUSE_POLL_S, until an unpause or a stop."""
    group, ctx = trainer.group, trainer.ctx
    assert group is not None
    c = ctx.control
    from engine import protocol

    group.log(f"worker {group.spec.index}: pause at step {step}")
    if group.is_chief:
        ctx.phases.paused()
        with c.acting_on(c.pause_id):
            ctx.update_state(status="paused", step=step)
            ctx.emit(protocol.Paused(step=step))
    while True:
        c.wait(PAUSE_POLL_S)
        if c.failure is not None:
            raise c.failure
        flags = _agree(trainer)
        if flags[CHECKPOINT]:
            _checkpoint(trainer, step)
        if flags[STOP] or not flags[PAUSE]:
            break
    if not flags[STOP]:
        group.log(f"worker {group.spec.index}: unpause at step {step}")
        if group.is_chief:
            with c.acting_on(c.unpause_id):
                ctx.update_state(status="running", step=step)
                ctx.emit(protocol.Unpaused(step=step))
                ctx.phases.unpaused()
    return flags
