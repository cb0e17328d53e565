"""The chief's outputs as callbacks: journalled events, state.json, TensorBoard, batch audit, model."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import protocol
from engine.train.callbacks import Callback, StepReport
from engine.train.examples import TRAIN_SAMPLE_ROWS

if TYPE_CHECKING:
    from engine.train.loop import Trainer
    from engine.train.metrics import Figures

STATE_EVERY_S = 1.0  # state.json is fsynced; once a second is plenty for `ftc ls`


class Events(Callback):
    """Journals and publishes the run's events: started, schedule, steps, evaluations, checkpoints, logs.

    It also says the run's phases (compiling before step 1, training, evaluating with batches done)
    through ``trainer.ctx.phases``, and gives each step an ETA: the time per training step,
    without evaluations, checkpoints and pauses, times the steps left, plus the evaluations left
    at the time the last one took (an estimate from their rows before any has run). The first
    step of a run, mostly tracing, has no ETA.
    """

    def __init__(self, emit: Callable[[Any], object], clock: Callable[[], float] = time.monotonic) -> None:
        self.emit = emit
        self.clock = clock
        self._first_step = 0
        self._t0 = 0.0
        self._away0 = 0.0
        self._eval_started = 0.0
        self._eval_row_s: float | None = None  # seconds per example of the latest evaluation
        self._before_eval: str | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        s = trainer.state
        self._first_step = s.step
        trainer.ctx.hardware.update(device=device_text(trainer), precision=str(trainer.precision))
        self.emit(protocol.JobStarted(job="train", step=s.step, total_steps=s.total_steps))
        # The planned schedule, so a monitor can draw the LR ahead of the current step. The update
        # at 0-based s is reported as StepEnded.step s + 1, so the plan is drawn at s + 1 too.
        planned = trainer.schedule.plan(s.total_steps, 200)
        self.emit(
            protocol.SchedulePlanned(
                steps=[step + 1 for step, _ in planned],
                learning_rates=[lr for _, lr in planned],
                head_lr_multiplier=trainer.lr_multipliers[0],
                lowest_lr_multiplier=trainer.lr_multipliers[1],
            )
        )
        trainer.ctx.phases.enter("compiling", step=s.step)  # the first step traces and compiles

    def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
        phases = trainer.ctx.phases
        now = self.clock()
        total = trainer.state.total_steps
        eta: float | None = None  # after the first step (its time is mostly tracing): not known yet
        if report.step == self._first_step + 1:
            phases.enter("training", step=report.step)
            self._t0, self._away0 = now, phases.away_s()  # the first step includes tracing: time from its end
        else:
            phases.step = report.step
            trained = now - self._t0 - (phases.away_s() - self._away0)
            per_step = max(trained, 0.0) / (report.step - self._first_step - 1)
            eta = per_step * (total - report.step) + self.evaluations_s(trainer, report.step, per_step)
        self.emit(
            protocol.StepEnded(
                step=report.step,
                total_steps=total,
                epoch=report.epoch,
                loss=report.loss,
                learning_rate=report.learning_rate,
                grad_norm=report.grad_norm,
                examples_per_s=report.examples / report.seconds,
                tokens_per_s=report.tokens / report.seconds,
                eta_s=eta,
            )
        )

    def evaluations_s(self, trainer: Trainer, step: int, per_step: float) -> float:
        """The time the evaluations still to come will take, from ``step`` (its own included) on,
        the final label-noise scoring of the training split included."""
        t, total = trainer.t, trainer.state.total_steps
        rows = trainer.manifest["splits"]
        # Before any evaluation ran: an example evaluated takes about half the time of one trained
        # (MiniLM on a CPU: 6.7 against 14 ms; the forward pass alone is a third of the work).
        row_s = self._eval_row_s
        if row_s is None:
            row_s = per_step / (2 * t.batch_size * t.grad_accum_steps)
        seconds = 0.0
        if trainer.evaluator.has("validation"):
            count = evaluations_left(step, total, t.eval_every_steps, trainer.steps_per_epoch)
            seconds += count * int(rows["validation"].get("rows", 0)) * row_s
        if trainer.evaluator.has("test"):  # once, at the end
            seconds += int(rows["test"].get("rows", 0)) * row_s
        # And, after the last step, the training split's label-noise scoring (Trainer.score_training_split).
        seconds += min(int(rows.get("train", {}).get("rows", 0)), TRAIN_SAMPLE_ROWS) * row_s
        return seconds

    def on_evaluate_batch(self, trainer: Trainer, split: str, done: int, total: int | None) -> None:
        phases = trainer.ctx.phases
        if done == 0:
            self._eval_started = self.clock()
            self._before_eval = phases.phase
            phases.enter("evaluating", done=0, total=total, unit="batches", detail=split)
        else:
            phases.progress(done, total, unit="batches", detail=split)

    def on_evaluate(self, trainer: Trainer, split: str, figures: Figures) -> None:
        rows = int(trainer.manifest["splits"].get(split, {}).get("rows", 0))
        if rows and self._eval_started:
            self._eval_row_s = (self.clock() - self._eval_started) / rows
        self.emit(
            protocol.EvaluationEnded(
                step=trainer.state.step,
                split=split,
                epoch=trainer.epoch,
                predictions=trainer.predictions,  # written by the loop before this event names it
                **figures.payload(),
            )
        )
        if self._before_eval is not None:
            trainer.ctx.phases.enter(self._before_eval)

    def on_save(self, trainer: Trainer, step: int, path: Path, reason: str, metric: float | None) -> None:
        self.emit(protocol.CheckpointSaved(step=step, path=str(path), reason=reason, metric=metric))

    def on_log(self, trainer: Trainer, level: str, text: str) -> None:
        self.emit(protocol.LogRecorded(level=level, text=text))  # type: ignore[arg-type]


class SessionStatus(Callback):
    """Keeps the session's state.json current: step, best metric, last checkpoint."""

    def __init__(self, update_state: Callable[..., object]) -> None:
        self.update_state = update_state
        self._last = 0.0

    def _progress(self, trainer: Trainer) -> None:
        self.update_state(step=trainer.state.step, total_steps=trainer.state.total_steps)

    def on_resume(self, trainer: Trainer, checkpoint: Path) -> None:
        # Later checkpoints may have been set aside: the one resumed from is the last good one now.
        self.update_state(last_checkpoint=str(checkpoint), last_checkpoint_step=trainer.state.step)

    def on_train_begin(self, trainer: Trainer) -> None:
        self._progress(trainer)
        self._last = 0.0

    def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
        if time.monotonic() - self._last > STATE_EVERY_S:
            self._progress(trainer)
            self._last = time.monotonic()

    def on_evaluate(self, trainer: Trainer, split: str, figures: Figures) -> None:
        s = trainer.state
        if split == "validation" and s.best_step == s.step:  # a new best at this evaluation
            self.update_state(best_metric=s.best, best_metric_name=trainer.t.early_stopping.metric)

    def on_save(self, trainer: Trainer, step: int, path: Path, reason: str, metric: float | None) -> None:
        self.update_state(last_checkpoint=str(path), last_checkpoint_step=step)

    def on_train_end(self, trainer: Trainer) -> None:
        self._progress(trainer)


class TensorBoard(Callback):
    """Writes the training and evaluation scalars under the session's tensorboard/."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.writer: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(str(self.logdir))

    def _scalars(self, values: dict[str, float], step: int) -> None:
        from engine.train.runtime import scalar

        with self.writer.as_default():
            for tag, value in values.items():
                scalar(tag, value, step)

    def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
        values = {"train/loss": report.loss, "train/grad_norm": report.grad_norm}
        self._scalars({**values, "train/learning_rate": report.learning_rate}, report.step)

    def on_evaluate(self, trainer: Trainer, split: str, figures: Figures) -> None:
        self._scalars({f"{split}/{k}": v for k, v in figures.metrics.items()}, trainer.state.step)

    def on_save(self, trainer: Trainer, step: int, path: Path, reason: str, metric: float | None) -> None:
        self.writer.flush()  # what a resumed run's curves continue from is on disk with its checkpoint

    def on_close(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.flush()


class BatchAudit(Callback):
    """FTC_BATCH_AUDIT=1: appends each step's row ids to <session>/batches.jsonl.

    So a run across engine restarts can be audited from outside (the kill -9 tests do).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": report.step, "rows": report.rows()}) + "\n")


class ModelExport(Callback):
    """At the end, saves the model (best weights if restored, else final), tokenizer and model card in model/.

    At the start it journals the hardware (a ``hardware: ...`` line, engine/export/card.py reads it),
    so a card written later, by ``ftc export``, says what the model was trained on too.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_begin(self, trainer: Trainer) -> None:
        from engine.export.card import HARDWARE_PREFIX

        trainer.log("info", HARDWARE_PREFIX + hardware_text(trainer))

    def on_train_end(self, trainer: Trainer) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        trainer.model.save_pretrained(str(self.folder))
        trainer.tokenizer.save_pretrained(str(self.folder))
        try:
            self.write_card(trainer)
        except Exception as exc:  # the card describes the model: its absence must not fail the training
            from engine.errors import brief

            trainer.log("warning", f"model card {self.folder / 'README.md'} not written: {brief(exc)}")

    def write_card(self, trainer: Trainer) -> None:
        """README.md in model/: the weights model/ holds, as the journal and the session describe them."""
        from engine.export.card import Weights, gather, model_card
        from engine.fsio import atomic_write_text

        s, es = trainer.state, trainer.t.early_stopping
        if es.restore_best and s.best_step is not None and s.best_step != s.step:
            weights = Weights(
                "model/",
                s.best_step,
                f"the best weights by {es.metric} (step {s.best_step} of {s.step}), restored at the "
                "end of training",
                True,
            )
        else:
            weights = Weights("model/", s.step, f"the final weights (step {s.step})", True)
        atomic_write_text(
            self.folder / "README.md", model_card(gather(self.folder.parent, weights)), mode=0o644
        )


def evaluations_left(step: int, total: int, every: int | None, per_epoch: int) -> int:
    """The validation evaluations at steps ``step`` to ``total``: every ``every`` steps, at epoch ends
    and at the last step (once, when it is neither)."""

    def multiples(k: int) -> int:
        return 0 if k <= 0 or total < step else total // k - (step - 1) // k

    both = math.lcm(every, per_epoch) if every and per_epoch else 0
    last = int(
        step <= total and not (every and total % every == 0) and not (per_epoch and total % per_epoch == 0)
    )
    return multiples(every or 0) + multiples(per_epoch) - multiples(both) + last


def device_text(trainer: Trainer) -> str:
    """What the run's steps run on, for the resource strip: "CPU", "GPU:0", "4 GPUs", "2 workers x CPU".

    Replicas are GPUs only where there are GPUs: a group of CPU worker processes (or logical CPU
    devices) has replicas too.
    """
    import tensorflow as tf

    replicas = int(getattr(getattr(trainer, "strategy", None), "num_replicas_in_sync", 1) or 1)
    gpus = len(tf.config.list_logical_devices("GPU"))
    group = getattr(trainer, "group", None)
    workers = int(group.spec.size) if group is not None else 0
    if workers > 1:
        return f"{workers} workers x {f'{gpus} GPU' if gpus else 'CPU'}"
    if replicas > 1:
        return f"{replicas} GPUs" if gpus else f"{replicas} CPU replicas"
    return "GPU:0" if gpus else "CPU"


def hardware_text(trainer: Trainer) -> str:
    """What the run computes on: devices, replicas and precision, in a few words."""
    import os
    import platform

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name") or gpu.name)
            except Exception:
                names.append(gpu.name)
        devices = ", ".join(f"{names.count(n)}x {n}" for n in dict.fromkeys(names))
    else:
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as fh:
                cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
        except OSError:
            pass
        devices = f"CPU only ({cpu}, {os.cpu_count()} cores)"
    replicas = getattr(getattr(trainer, "strategy", None), "num_replicas_in_sync", 1)
    precision = getattr(trainer, "precision", "float32")
    return f"{devices}; {replicas} replica(s); precision {precision}; TensorFlow {tf.__version__}"
