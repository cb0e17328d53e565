"""The training loop: steps, evaluations, early stopping, checkpoints, exact resume, events."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from engine import protocol
from engine.jobs.base import JobContext
from engine.model import (
    dropout_generators,
    load_model,
    load_tokenizer,
    max_input_length,
    tokenizer_file_hashes,
    tokenizer_fingerprint,
)
from engine.train import checkpoints as ck
from engine.train import freeze
from engine.train.batches import EpochPlan, SplitReader, read_manifest, steps_per_epoch
from engine.train.config import ConfigError, TrainConfig
from engine.train.metrics import evaluate_logits
from engine.train.optim import Stepper
from engine.train.runtime import class_weight_vector, make_strategy, resolve_precision, scalar
from engine.train.schedules import from_config

STATE_EVERY_S = 1.0  # state.json is fsynced; once a second is plenty for `ftc ls`


def _snapshot(variables: list[Any]) -> list[Any]:
    """The variables' values now, cheaply: host copies of device variables, read tensors on the CPU.

    A CPU read is a tensor sharing the variable's buffer, and TensorFlow copies the buffer
    before an update writes to a buffer still read (tests/train/test_loop.py checks that a
    background checkpoint holds its step's weights), so the 270 MB host copy of a MiniLM
    checkpoint is made by the writer thread, not the training loop. Device (GPU) values are
    copied to the host here, so no second copy of the model waits in device memory.
    """
    return [v.read_value() if "CPU" in (v.device or "CPU") else v.numpy() for v in variables]


class Trainer:
    """One training run of a session; ``run(resume)`` trains to the end or until stopped."""

    def __init__(
        self, cfg: TrainConfig, data_dir: Path, ctx: JobContext, *, record_batches: bool = False
    ) -> None:
        self.cfg, self.t, self.ctx = cfg, cfg.train, ctx
        self.data_dir = data_dir
        self.manifest = read_manifest(data_dir)
        self.labels: list[str] = list(self.manifest["labels"])
        # (step, row ids) of every step, for audits and resume tests; off by default: it grows with the run.
        self.record_batches = record_batches
        self.batch_log: list[tuple[int, list[int]]] = []
        # FTC_BATCH_AUDIT=1: also append each step's row ids to <session>/batches.jsonl, so a
        # run across engine restarts can be audited from outside (the kill -9 tests do).
        self.audit_path = ctx.paths.root / "batches.jsonl" if os.environ.get("FTC_BATCH_AUDIT") else None
        self._warned_absent: set[str] = set()
        self.history: list[dict[str, Any]] = []
        self.best: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.stopped_early = False
        self.step = self.epoch = self.batch_index = 0

    # ------------------------------------------------------------ setup

    def _build(self) -> None:
        t = self.t
        tf.keras.utils.set_random_seed(t.seed)
        self.precision = resolve_precision(t.mixed_precision)
        import tf_keras

        tf_keras.mixed_precision.set_global_policy(self.precision)
        self.strategy = make_strategy()
        self.tokenizer = load_tokenizer(self.cfg.model.source)
        limit = max_input_length(self.cfg.model.source)
        if limit is not None and t.max_length > limit:
            # Caught here: past the position embeddings TF fails deep inside the first long batch.
            raise ConfigError(
                f"[train] max_length: {t.max_length} is more than {self.cfg.model.source} takes "
                f"({limit} tokens, its max_position_embeddings); set it to {limit} or less"
            )
        id2label = dict(enumerate(self.labels))
        label2id = {n: i for i, n in id2label.items()}
        with self.strategy.scope():
            self.model = load_model(self.cfg.model.source, len(self.labels), id2label, label2id, seed=t.seed)
        missing = self.model.ftc_loading_info.get("missing_keys", [])
        if missing:
            self._log("info", f"newly initialised (not in the checkpoint): {', '.join(missing)}")
        mismatched = self.model.ftc_loading_info.get("mismatched_keys", [])
        if mismatched:
            self._log("info", f"newly initialised (another shape in the checkpoint): {', '.join(mismatched)}")
        counts = self.manifest["splits"]["train"].get("label_counts", {})
        self.stepper = Stepper(
            self.model,
            self.strategy,
            weight_decay=t.weight_decay,
            clip_norm=t.clip_norm,
            accum_steps=t.grad_accum_steps,
            class_weights=class_weight_vector(t.class_weights, self.labels, counts),
            mixed_float16=self.precision == "mixed_float16",
            jit_optimizer=t.jit_optimizer,
        )
        self.train_reader = SplitReader(self.data_dir, "train", self.manifest)
        self.num_batches = self._plan(0).num_batches
        self.steps_per_epoch = steps_per_epoch(self.num_batches, t.grad_accum_steps)
        self.total_steps = t.max_steps or t.epochs * self.steps_per_epoch
        self.schedule = from_config(t, self.total_steps)
        self.layers = freeze.num_layers(self.model)
        self._frozen: set[str] | None = None
        self.fingerprints = {
            "config": self.cfg.fingerprint(),
            "config_semantic": self.cfg.semantic(),
            "tokenizer": tokenizer_fingerprint(self.cfg.model.source),
            "tokenizer_files": tokenizer_file_hashes(self.cfg.model.source),
            "data": self.manifest.get("data_fingerprint"),
        }
        self.ckpt_dir = self.ctx.paths.checkpoints
        self.writer = ck.BackgroundWriter()
        self.tb = tf.summary.create_file_writer(str(self.ctx.paths.tensorboard))

    def _plan(self, epoch: int) -> EpochPlan:
        t = self.t
        return EpochPlan(
            self.train_reader,
            self.tokenizer,
            batch_size=t.batch_size,
            max_length=t.max_length,
            seed=t.seed,
            epoch=epoch,
            window=t.bucket_window,
        )

    def _apply_freeze(self) -> None:
        t = self.t
        frozen = freeze.frozen_groups(
            t.freeze,
            self.step,
            layers=self.layers,
            freeze_layers=t.freeze_layers,
            unfreeze_every=t.unfreeze_every_steps,
        )
        if frozen != self._frozen:
            self._frozen = frozen
            self.stepper.set_trainable(freeze.trainable_names(self.stepper.all_vars, frozen))
            if frozen:
                self._log("info", f"step {self.step}: frozen {', '.join(sorted(frozen))}")

    def _record_batch(self, rows: list[int]) -> None:
        if self.record_batches:
            self.batch_log.append((self.step, rows))
        if self.audit_path is not None:
            with open(self.audit_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": self.step, "rows": rows}) + "\n")

    # ------------------------------------------------------------ checkpoints

    def _state(self, reason: str) -> dict[str, Any]:
        return {
            "reason": reason,
            "time": time.time(),
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "seed": self.t.seed,
            "best": self.best,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "stopped_early": self.stopped_early,
            "history": self.history,
            "metric": self.history[-1]["metrics"].get(self.t.early_stopping.metric) if self.history else None,
            "variable_names": self._variable_names(),
            "fingerprints": self.fingerprints,
            "total_steps": self.total_steps,
        }

    def save(self, reason: str, *, background: bool = False) -> Path:
        """Checkpoint the state at this step; with background, the write overlaps the next steps.

        Periodic checkpoints are written in the background (a MiniLM checkpoint with its Adam
        moments is about 270 MB); every other reason (best, on command, stop, final) waits for
        its write, after the one in flight. Either way CheckpointSaved is emitted once the
        checkpoint is complete on disk.
        """
        self.writer.wait()
        existing = self.ckpt_dir / f"{ck.PREFIX}{self.step}"
        if ck.is_complete(existing):
            # Saved at this step already (a best evaluation, then a periodic, stop or final save):
            # the same state, so one folder and one CheckpointSaved, under its first reason.
            self._last_save = time.monotonic()
            return existing
        step, state = self.step, self._state(reason)
        snapshot = {
            "weights": _snapshot(self.model.variables),
            "optimizer": _snapshot(self.stepper.optimizer_variables()),
            "rng": _snapshot([g.state for g in dropout_generators(self.model)]),
        }
        keep = {self.best_step} if self.t.keep_best and self.best_step is not None else set()
        if self.t.early_stopping.restore_best and self.best_step is not None:
            keep.add(self.best_step)
        self._last_save = time.monotonic()
        self.tb.flush()

        def write() -> Path:
            arrays = {name: [np.asarray(v) for v in values] for name, values in snapshot.items()}
            path = ck.save(self.ckpt_dir, step, state=state, **arrays)
            ck.prune(self.ckpt_dir, self.t.keep_last, keep)
            self.ctx.emit(
                protocol.CheckpointSaved(step=step, path=str(path), reason=reason, metric=state["metric"])
            )
            self.ctx.update_state(last_checkpoint=str(path), last_checkpoint_step=step)
            return path

        if background:
            self.writer.submit(write)
            return existing
        return write()

    def _variable_names(self) -> list[str]:
        # Without the model's own scope, which Keras numbers per process (..._classification_3/).
        return [v.name.split("/", 1)[-1] for v in self.model.variables]

    def _save_on_request(self, reason: str) -> None:
        self.save(reason)

    def _load_weights(self, path: Path) -> None:
        if ck.read_state(path)["variable_names"] != self._variable_names():
            raise ck.CheckpointError(
                f"{path.name}: its weights belong to another model layout; start a new session"
            )
        for var, value in zip(self.model.variables, ck.load_arrays(path, "weights.npz"), strict=True):
            var.assign(value)

    def restore(self, path: Path) -> None:
        ck.check_fingerprints(path, self.fingerprints)
        self._load_weights(path)
        for var, value in zip(
            self.stepper.optimizer_variables(), ck.load_arrays(path, "optimizer.npz"), strict=True
        ):
            var.assign(value)
        for gen, value in zip(dropout_generators(self.model), ck.load_arrays(path, "rng.npz"), strict=True):
            gen.state.assign(value)
        s = ck.read_state(path)
        self.step, self.epoch, self.batch_index = s["step"], s["epoch"], s["batch_index"]
        self.best, self.best_step, self.bad_evals = s["best"], s["best_step"], s["bad_evals"]
        self.stopped_early, self.history = s["stopped_early"], s["history"]
        self._log("info", f"resumed from {path.name}: epoch {self.epoch}, batch {self.batch_index}")

    # ------------------------------------------------------------ evaluation

    def evaluate(self, split: str = "validation") -> dict[str, float] | None:
        if not self.manifest["splits"].get(split, {}).get("shards"):
            return None
        reader = SplitReader(self.data_dir, split, self.manifest)
        plan = EpochPlan(
            reader,
            self.tokenizer,
            batch_size=self.t.eval_batch_size or self.t.batch_size * 2,
            max_length=self.t.max_length,
            seed=0,
            epoch=0,
            shuffle=False,
        )
        if not hasattr(self, "_logits_fn"):
            self._logits_fn = tf.function(
                lambda ids, mask: tf.cast(
                    self.model(input_ids=ids, attention_mask=mask, training=False).logits, tf.float32
                ),
                input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2,
            )
        logits, labels = [], []
        for b in plan.batches():
            logits.append(self._logits_fn(b.input_ids, b.attention_mask).numpy())
            labels.append(b.labels)
        metrics, per_class = evaluate_logits(np.concatenate(logits), np.concatenate(labels), self.labels)
        absent = [name for name, figures in per_class.items() if not figures["support"]]
        if absent and split not in self._warned_absent:
            self._warned_absent.add(split)
            self._log(
                "warning",
                f"the {split} split has no examples of {', '.join(absent)}: their F1 counts as 0 "
                "in macro_f1 and roc_auc averages over the classes present",
            )
        self.ctx.emit(
            protocol.EvaluationEnded(step=self.step, split=split, metrics=metrics, per_class=per_class)
        )
        with self.tb.as_default():
            for k, v in metrics.items():
                scalar(f"{split}/{k}", v, self.step)
        return metrics

    def _after_eval(self, metrics: dict[str, float]) -> None:
        es = self.t.early_stopping
        self.history.append({"step": self.step, "metrics": metrics})
        value = metrics.get(es.metric)
        if value is None:
            # Only roc_auc can be missing (a split with one class): no verdict, rather than a crash.
            self._log(
                "warning",
                f"step {self.step}: {es.metric} is undefined for this evaluation (one class only); "
                "early stopping skips it",
            )
            return
        better = self.best is None or (
            value > self.best + es.min_delta if es.maximize else value < self.best - es.min_delta
        )
        if better:
            self.best, self.best_step, self.bad_evals = value, self.step, 0
            self.ctx.update_state(best_metric=value, best_metric_name=es.metric)
            if self.t.keep_best or es.restore_best:
                self.save("best")
        else:
            self.bad_evals += 1
            if es.patience is not None and self.bad_evals >= es.patience:
                self.stopped_early = True
                self._log(
                    "info",
                    f"early stopping at step {self.step}: no {es.metric} improvement "
                    f"in {self.bad_evals} evaluations (best {self.best:.4f} at {self.best_step})",
                )

    # ------------------------------------------------------------ the loop

    def _log(self, level: str, text: str) -> None:
        self.ctx.emit(protocol.LogRecorded(level=level, text=text))  # type: ignore[arg-type]

    def run(self, resume: bool = False) -> dict[str, Any]:
        self._build()
        if resume:
            path = self._resume_point()
            if path is None:
                self._log("warning", "no complete checkpoint to resume from; starting from step 0")
            else:
                self.restore(path)
                self._set_aside_later(path)
        self.ctx.emit(protocol.JobStarted(job="train", step=self.step, total_steps=self.total_steps))
        # The planned schedule, so a monitor can draw the LR ahead of the current step. The update
        # at 0-based s is reported as StepEnded.step s + 1, so the plan is drawn at s + 1 too.
        planned = self.schedule.plan(self.total_steps, 200)
        self.ctx.emit(
            protocol.SchedulePlanned(
                steps=[s + 1 for s, _ in planned], learning_rates=[lr for _, lr in planned]
            )
        )
        self.ctx.update_state(step=self.step, total_steps=self.total_steps)
        self._last_save = time.monotonic()
        t0, started_at_step, last_state = time.monotonic(), self.step, 0.0
        k, t = self.t.grad_accum_steps, self.t
        try:
            while self.step < self.total_steps and not self.stopped_early:
                plan = self._plan(self.epoch)
                group: list[Any] = []
                for batch in plan.batches(self.batch_index):
                    group.append(batch)
                    if len(group) < k and batch.index < plan.num_batches - 1:
                        continue
                    self._apply_freeze()
                    lr = self.schedule.lr_at(self.step)
                    self.stepper.set_learning_rate(lr)
                    ts = time.monotonic()
                    out = self.stepper.step([b.tensors() for b in group])
                    dt = max(time.monotonic() - ts, 1e-9)
                    self.step += 1
                    self.batch_index = batch.index + 1
                    if self.record_batches or self.audit_path is not None:
                        self._record_batch([int(r) for b in group for r in b.rows])
                    if self.step == started_at_step + 1:
                        t0 = time.monotonic()  # the first step includes tracing: time from its end
                        per_step = dt
                    else:
                        per_step = (time.monotonic() - t0) / (self.step - started_at_step - 1)
                    self.ctx.emit(
                        protocol.StepEnded(
                            step=self.step,
                            total_steps=self.total_steps,
                            epoch=self.epoch + self.batch_index / plan.num_batches,
                            loss=out["loss"],
                            learning_rate=lr,
                            grad_norm=out["grad_norm"],
                            examples_per_s=sum(b.size for b in group) / dt,
                            tokens_per_s=sum(b.tokens for b in group) / dt,
                            eta_s=per_step * (self.total_steps - self.step),
                        )
                    )
                    with self.tb.as_default():
                        for tag in ("loss", "grad_norm"):
                            scalar(f"train/{tag}", out[tag], self.step)
                        scalar("train/learning_rate", lr, self.step)
                    group = []
                    epoch_done = self.batch_index >= plan.num_batches
                    if epoch_done:
                        self.epoch, self.batch_index = self.epoch + 1, 0
                    if epoch_done or (t.eval_every_steps and self.step % t.eval_every_steps == 0):
                        metrics = self.evaluate()
                        if metrics is not None:
                            self._after_eval(metrics)
                    if time.monotonic() - last_state > STATE_EVERY_S:
                        self.ctx.update_state(step=self.step, total_steps=self.total_steps)
                        last_state = time.monotonic()
                    self.writer.check()  # a failed background write fails the job here
                    if self._checkpoint_due():
                        self.save("periodic", background=True)
                    self.ctx.boundary(self.step, self._save_on_request)
                    if epoch_done or self.step >= self.total_steps or self.stopped_early:
                        break
            return self._finish()
        except BaseException:
            # A stop or failure: let a background write in flight finish (the final save waits
            # for it otherwise). The first error is the one to report.
            with contextlib.suppress(Exception):
                self.writer.wait()
            raise
        finally:
            self.tb.flush()

    def _resume_point(self) -> Path | None:
        """The checkpoint to resume from: ctx.resume_from (folder name, step or path), else the latest."""
        chosen = self.ctx.resume_from
        if chosen is None:
            return ck.latest_complete(self.ckpt_dir)
        if str(chosen).isdigit():
            path = self.ckpt_dir / f"{ck.PREFIX}{chosen}"
        else:
            path = Path(chosen) if Path(chosen).is_absolute() else self.ckpt_dir / chosen
        if not ck.is_complete(path):
            raise ck.CheckpointError(f"{path}: not a complete checkpoint; pick one from the checkpoint list")
        return path

    def _set_aside_later(self, path: Path) -> None:
        """After resuming from an earlier checkpoint, move the abandoned run's later ones out of the way.

        Left in place they would be taken for this run's (same step numbers), outlive its
        new checkpoints in pruning and be what "latest" finds; moved, nothing is lost.
        """
        folder = ck.set_aside(self.ckpt_dir, after_step=self.step)
        if folder is None:
            return
        names = ", ".join(p.name for p in sorted(folder.iterdir(), key=ck.step_of))
        self._log("warning", f"resumed from {path.name}: later checkpoints {names} moved to {folder}")
        self.ctx.update_state(last_checkpoint=str(path), last_checkpoint_step=self.step)

    def _checkpoint_due(self) -> bool:
        t = self.t
        if t.checkpoint_every_steps and self.step % t.checkpoint_every_steps == 0:
            return True
        minutes = t.checkpoint_every_minutes
        return bool(minutes and time.monotonic() - self._last_save >= minutes * 60)

    def _finish(self) -> dict[str, Any]:
        final = self.save("final")
        es = self.t.early_stopping
        restored = False
        if es.restore_best and self.best_step is not None and self.best_step != self.step:
            self._load_weights(self.ckpt_dir / f"{ck.PREFIX}{self.best_step}")
            restored = True
            self._log(
                "info", f"restored the best weights (step {self.best_step}, {es.metric} {self.best:.4f})"
            )
        test = self.evaluate("test")
        out = self.ctx.paths.model
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(out))
        self.tokenizer.save_pretrained(str(out))
        self.ctx.update_state(step=self.step, total_steps=self.total_steps)
        return {
            "steps": self.step,
            "epochs": self.epoch,
            "best_metric": self.best,
            "best_metric_name": es.metric,
            "best_step": self.best_step,
            "restored_best": restored,
            "stopped_early": self.stopped_early,
            "test": test or {},
            "model": str(out),
            "final_checkpoint": str(final),
        }
