"""The training loop: a short typed loop whose callbacks report, evaluate, stop early and checkpoint.

The loop trains; everything else is a callback (engine.train.callbacks) called at its points.
Only the chief (worker 0, or the only process) has the callbacks that write: events,
state.json, TensorBoard, checkpoints and the model. In a group of workers (engine.train.cluster_run)
every worker runs the same steps; the chief alone evaluates, and what it decides (pause,
checkpoint, stop, early stopping) reaches the others at the step boundary through a collective.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from engine.jobs.base import JobContext, StopRequested
from engine.model import (
    dropout_generators,
    load_model,
    load_tokenizer,
    max_input_length,
    tokenizer_file_hashes,
    tokenizer_fingerprint,
)
from engine.train import checkpoints as ck
from engine.train import cluster_run, examples, freeze
from engine.train.batches import Batch, EpochPlan, SplitReader, read_manifest, steps_per_epoch
from engine.train.callbacks import Callback, CallbackList, StepReport
from engine.train.checkpointing import Checkpointing
from engine.train.config import ConfigError, TrainConfig
from engine.train.evaluation import EarlyStopping, EvaluationSchedule, Evaluator
from engine.train.optim import Stepper
from engine.train.reporting import BatchAudit, Events, ModelExport, SessionStatus, TensorBoard
from engine.train.runtime import class_weight_vector, make_strategy, resolve_precision
from engine.train.schedules import from_config
from engine.train.state import TrainerControl, TrainerState

if TYPE_CHECKING:
    from engine.train.cluster_run import Group


# 'auto' compiles AdamW's update with XLA for runs this long or longer, where its compile pays.
JIT_MIN_STEPS = 300
# A compiled update starts at this step: the first steps use the plain one, so the first step comes
# as soon as the model is traced, and XLA's compile (3-12 s cold) falls once the run is under way.
JIT_FROM_STEP = 10


class _ScoringSkipped(Exception):
    """A stop asked for during the end's label-noise scoring, which is then left out."""


class Trainer:
    """One training run of a session; ``run(resume)`` trains to the end or until stopped."""

    def __init__(
        self,
        cfg: TrainConfig,
        data_dir: Path,
        ctx: JobContext,
        *,
        record_batches: bool = False,
        is_chief: bool = True,
        callbacks: Sequence[Callback] = (),
        group: Group | None = None,
    ) -> None:
        self.cfg, self.t, self.ctx = cfg, cfg.train, ctx
        self.data_dir = data_dir
        self.manifest = read_manifest(data_dir)
        self.labels: list[str] = list(self.manifest["labels"])
        self.group = group  # several workers: this process's place in the group
        self._is_chief = is_chief if group is None else group.is_chief
        self._extra_callbacks = list(callbacks)  # after ftc's own, on every worker
        # (step, row ids) of every step, for audits and resume tests; off by default: it grows with the run.
        self.record_batches = record_batches
        self.batch_log: list[tuple[int, list[int]]] = []
        self._warned_absent: set[str] = set()
        self.state = TrainerState(seed=self.t.seed)
        self.control = TrainerControl()
        self.ckpt_dir = ctx.paths.checkpoints
        self.checkpointing: Checkpointing | None = None
        self.callbacks = CallbackList([])
        self.predictions: str | None = None  # the latest evaluation's (session-relative path)

    @property
    def is_chief(self) -> bool:
        """Whether this process alone writes the session (HF's is_world_process_zero); one process: yes."""
        return self._is_chief

    # ------------------------------------------------------------ setup

    def _build(self) -> None:
        t = self.t
        if self.group is not None:  # MultiWorkerMirroredStrategy: before any other TensorFlow op
            self.strategy = make_strategy(self.group)
        tf.keras.utils.set_random_seed(t.seed)
        # 'auto' is resolved once per run: a resume keeps what its checkpoint trained in (a cleared
        # probe cache, another TensorFlow or GPU must not switch an exact resume's precision).
        self.precision = self._resumed_precision() or resolve_precision(t.mixed_precision)
        import tf_keras

        tf_keras.mixed_precision.set_global_policy(self.precision)
        if self.group is None:
            self.strategy = make_strategy()
        self.tokenizer = load_tokenizer(self.cfg.model.source)
        limit = max_input_length(self.cfg.model.source)
        if limit is not None and t.max_length > limit:
            # Caught here: past the position embeddings TF fails deep inside the first long batch.
            raise ConfigError(
                f"[train] max_length: {t.max_length} is more than {self.cfg.model.source} takes "
                f"({limit} tokens, its max_position_embeddings); set it to {limit} or less"
            )
        self.callbacks = self._callbacks()
        id2label = dict(enumerate(self.labels))
        label2id = {n: i for i, n in id2label.items()}
        with self.strategy.scope():
            self.model = load_model(
                self.cfg.model.source,
                len(self.labels),
                id2label,
                label2id,
                seed=t.seed,
                dropout=t.dropout,
                attention_dropout=t.attention_dropout,
                classifier_dropout=t.classifier_dropout,
            )
        if self.precision == "mixed_bfloat16":
            from engine.precision import float32_activations, on_cpu

            if on_cpu():  # bf16 element-wise kernels are slower than float32's on CPUs (engine/precision.py)
                float32_activations(self.model)
        for key, why in (
            ("missing_keys", "not in the checkpoint"),
            ("mismatched_keys", "another shape in the checkpoint"),
        ):
            names = self.model.ftc_loading_info.get(key, [])
            if names:
                self.log("info", f"newly initialised ({why}): {', '.join(names)}")
        counts = self.manifest["splits"]["train"].get("label_counts", {})
        self.train_reader = SplitReader(self.data_dir, "train", self.manifest)
        # With resample every epoch has the re-sampled rows' batch count (the same each epoch).
        self.num_batches = self._plan(0).num_batches
        self.steps_per_epoch = steps_per_epoch(self.num_batches, t.grad_accum_steps)
        total_steps = t.max_steps or t.epochs * self.steps_per_epoch
        self.jit_optimizer = self._jit_optimizer(total_steps)
        self.jit_from_step = self._jit_from_step()
        self.stepper = Stepper(
            self.model,
            self.strategy,
            weight_decay=t.weight_decay,
            clip_norm=t.clip_norm,
            accum_steps=t.grad_accum_steps,
            class_weights=class_weight_vector(t.class_weights, self.labels, counts),
            mixed_float16=self.precision == "mixed_float16",
            jit_optimizer=self.jit_from_step == 0,
            head_lr_multiplier=t.head_lr_multiplier,
            layer_lr_decay=t.layer_lr_decay,
            label_smoothing=t.label_smoothing,
        )
        self.evaluator = Evaluator(self.model, self.tokenizer, self.data_dir, self.manifest, self.labels)
        self.schedule = from_config(t, total_steps)
        self.layers = freeze.num_layers(self.model)
        # Differential rates as the schedule's multipliers: the head, and the lowest layer (the
        # embeddings, below the encoder's `layers` layers) at layer_lr_decay ** layers.
        self.lr_multipliers = (t.head_lr_multiplier, t.layer_lr_decay**self.layers)
        self._frozen: set[str] | None = None
        self._jit_on = self.jit_from_step == 0  # the Stepper's update is compiled
        self.state = TrainerState(
            seed=t.seed,
            total_steps=total_steps,
            variable_names=self._variable_names(),
            fingerprints={
                "config": self.cfg.fingerprint(),
                "config_semantic": self.cfg.semantic(),
                "tokenizer": tokenizer_fingerprint(self.cfg.model.source),
                "tokenizer_files": tokenizer_file_hashes(self.cfg.model.source),
                "data": self.manifest.get("data_fingerprint"),
                "precision": self.precision,  # the policy 'auto' resolved to (a resume keeps it)
                "jit_optimizer": self.jit_optimizer,  # what 'auto' resolved to (a resume keeps it)
                "jit_from_step": self.jit_from_step,  # the first step of the compiled update (likewise)
            },
        )

    def _callbacks(self) -> CallbackList:
        """Every worker schedules evaluations and stops early; only the chief writes anything."""
        shared: list[Callback] = [EvaluationSchedule(self.t.eval_every_steps), EarlyStopping(self.t)]
        if not self.is_chief:
            return CallbackList([*shared, *self._extra_callbacks])
        paths = self.ctx.paths
        self.checkpointing = Checkpointing(self.ckpt_dir, self.t)
        # FTC_BATCH_AUDIT=1: each step's rows go to <session>/batches.jsonl (the kill -9 tests read it).
        audit = [BatchAudit(paths.root / "batches.jsonl")] if os.environ.get("FTC_BATCH_AUDIT") else []
        return CallbackList(
            [
                *audit,
                Events(self.ctx.emit),
                TensorBoard(paths.tensorboard),
                *shared,
                ModelExport(paths.model),
                SessionStatus(self.ctx.update_state),
                self.checkpointing,
                *self._extra_callbacks,
            ]
        )

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
            resample=t.resample,
        )

    def _apply_freeze(self) -> None:
        t = self.t
        frozen = freeze.frozen_groups(
            t.freeze,
            self.state.step,
            layers=self.layers,
            freeze_layers=t.freeze_layers,
            unfreeze_every=t.unfreeze_every_steps,
        )
        if frozen != self._frozen:
            self._frozen = frozen
            self.stepper.set_trainable(freeze.trainable_names(self.stepper.all_vars, frozen))
            if frozen:
                self.log("info", f"step {self.state.step}: frozen {', '.join(sorted(frozen))}")

    def log(self, level: str, text: str) -> None:
        """A notice or warning for the person watching (an event from the chief; engine.log too)."""
        if level in ("warning", "error"):
            print(f"ftc engine: {level}: {text}", file=sys.stderr, flush=True)
        self.callbacks.on_log(self, level, text)

    # ------------------------------------------------------------ the loop

    def run(self, resume: bool = False) -> dict[str, Any]:
        self._resuming = resume
        self._build()
        try:
            if resume and self.is_chief:
                self._resume()
            if self.group is not None:
                self._in_group(lambda: cluster_run.sync(self, self._synced_variables()), "at the start")
            self.callbacks.on_train_begin(self)
            while self.state.step < self.state.total_steps and not self.control.should_training_stop:
                self._in_group(self._run_epoch)
            if self.group is not None:
                self.group.end()
            return self._finish()
        finally:
            self.callbacks.on_close(self)

    def _in_group(self, work: Any, when: str | None = None) -> None:
        """Run ``work``; a collective of the group that fails (a worker is gone) is a WorkerLost."""
        if self.group is None:
            work()
            return
        try:
            work()
        except tf.errors.OpError as exc:
            raise self.group.failure(exc, when or f"at step {self.state.step}") from None

    def _synced_variables(self) -> list[Any]:
        """What the chief's checkpoint holds and every worker must share: weights, optimizer, generators."""
        return [
            *self.model.variables,
            *self.stepper.optimizer_variables(),
            *(gen.state for gen in dropout_generators(self.model)),
        ]

    def _run_epoch(self) -> None:
        """The rest of the current epoch, step by step, acting on what the callbacks ask after each."""
        plan = self._plan(self.state.epoch)
        for group in self._groups(plan):
            report = self._train_step(group, plan.num_batches)
            self.callbacks.on_step_end(self, report)
            if self.control.should_evaluate:
                self.evaluate()
            if self.control.should_save is not None:
                reason = self.control.should_save
                self.save(reason, background=reason == "periodic")
            self.control.should_evaluate, self.control.should_save = False, None
            self._boundary()
            if (
                report.epoch_done
                or self.control.should_training_stop
                or self.state.step >= self.state.total_steps
            ):
                return

    def _groups(self, plan: EpochPlan) -> Iterator[list[Batch]]:
        """The epoch's remaining batches, grad_accum_steps at a time (the last group may be short)."""
        group: list[Batch] = []
        for batch in plan.batches(self.state.batch_index):
            group.append(batch)
            if len(group) == self.t.grad_accum_steps or batch.index == plan.num_batches - 1:
                yield group
                group = []

    def _train_step(self, group: list[Batch], num_batches: int) -> StepReport:
        """One optimizer step over the group's micro-batches; moves the state past it."""
        s = self.state
        self._apply_freeze()
        lr = self.schedule.lr_at(s.step)
        self.stepper.set_learning_rate(lr)
        compiled = self.jit_from_step is not None and s.step >= self.jit_from_step
        phase: Any = contextlib.nullcontext()
        if compiled != self._jit_on:
            self._jit_on = compiled
            done = self.stepper.compile_update(compiled)
            if compiled and not done:
                self.log("info", "XLA cannot compile here: the optimizer update stays uncompiled")
            elif compiled and s.step > 0:
                self.log("info", f"step {s.step + 1}: compiling the optimizer update with XLA (once)")
                # Said as a phase (the console shows it instead of a step that seems stuck), and
                # left out of the time per step, as the first step's compile is.
                phase = self.ctx.phases.during("compiling", step=s.step, detail="the optimizer update (XLA)")
        started = time.monotonic()
        with phase:
            out = self.stepper.step([b.tensors() for b in group])
        seconds = max(time.monotonic() - started, 1e-9)
        s.step += 1
        s.batch_index = group[-1].index + 1
        report = StepReport(
            step=s.step,
            epoch=s.epoch + s.batch_index / num_batches,
            epoch_done=s.batch_index >= num_batches,
            loss=out["loss"],
            grad_norm=out["grad_norm"],
            learning_rate=lr,
            seconds=seconds,
            batches=group,
        )
        if report.epoch_done:
            s.epoch, s.batch_index = s.epoch + 1, 0
        if self.record_batches:
            self.batch_log.append((s.step, report.rows()))
        return report

    def _boundary(self) -> None:
        """Honour the control flags at this step boundary: pause, checkpoint and stop (the chief's)."""
        if self.group is not None:
            cluster_run.boundary(self)  # the same decision on every worker, at this step
        elif self.is_chief:
            self.ctx.boundary(self.state.step, self._save_on_request)
        elif self.ctx.control.stop_reason is not None:
            raise StopRequested(self.ctx.control.stop_reason)

    # ------------------------------------------------------------ evaluation

    def evaluate(self, split: str = "validation") -> dict[str, float] | None:
        """Evaluate on a split (None if the data has none) and call the callbacks with the result.

        The chief keeps the per-example predictions in the session (engine.train.examples), names
        them in ``self.predictions`` for the evaluation's event, and prunes the older ones after it.
        """
        if not self.evaluator.has(split) or (self.group is not None and not self.is_chief):
            return None  # in a group the chief evaluates; its early stopping reaches the others

        def on_batch(done: int, total: int | None) -> None:
            if self.group is not None:  # a worker lost meanwhile ends the run now, not after the evaluation
                self.group.check(f"while the chief evaluated ({split}) at step {self.state.step}")
            self.callbacks.on_evaluate_batch(self, split, done, total)

        result = self.evaluator.run(split, self.t, on_batch)
        self.predictions = self._keep_predictions(split)
        if result.absent and split not in self._warned_absent:
            self._warned_absent.add(split)
            self.log(
                "warning",
                f"the {split} split has no examples of {', '.join(result.absent)}: their F1 counts as 0 "
                "in macro_f1 and roc_auc averages over the classes present",
            )
        self.callbacks.on_evaluate(self, split, result)
        if self.predictions is not None:
            self._prune_predictions(split)
        return result.metrics

    def _prune_predictions(self, split: str) -> None:
        """Keep the last examples.KEEP evaluations' predictions of each split, this one and the best."""
        best = self.state.best_step
        examples.prune(
            self.ctx.paths.root,
            protect=[(split, self.state.step)] + ([("validation", best)] if best is not None else []),
            upto=self.state.step,
        )

    @property
    def epoch(self) -> float:
        """Epochs done, with the fraction of the current one (as StepEnded.epoch says it)."""
        return self.state.epoch + self.state.batch_index / max(self.num_batches, 1)

    def _keep_predictions(self, split: str) -> str | None:
        """The chief writes the evaluation's per-example predictions; the session-relative path, or None."""
        scored = self.evaluator.scored
        if not self.is_chief or scored is None:
            return None
        try:
            return examples.write(
                self.ctx.paths.root,
                split=split,
                step=self.state.step,
                epoch=self.epoch,
                labels=self.labels,
                data_dir=self.data_dir.resolve(),
                positions=scored.positions,
                rows=scored.rows,
                true=scored.labels,
                probs=scored.probs,
            )
        except OSError as exc:  # an output for the person, not the run's state: training goes on
            from engine.errors import os_error_text

            self.log("warning", f"per-example predictions not kept: {os_error_text(exc, 'free space')}")
            return None

    def score_training_split(self) -> None:
        """At the end, the chief scores (a seeded sample of) the training rows for the label-noise list.

        Written as evaluations/train-step<N>.npz, like an evaluation's predictions; no event, no
        metric: the training curve stays the steps' own. At most examples.TRAIN_SAMPLE_ROWS rows.
        """
        if not self.is_chief:
            return
        total = self.train_reader.rows
        positions = examples.sample_positions(total, examples.TRAIN_SAMPLE_ROWS, self.t.seed)
        phases = self.ctx.phases
        before = phases.phase
        detail = "train (label noise)"

        def on_batch(done: int, n: int | None) -> None:
            # Training is over and its model saved: a stop asked for now (up to 100k rows to score,
            # minutes on a CPU) skips this extra rather than keeping the person waiting for it.
            if self.ctx.control.stop_reason is not None:
                raise _ScoringSkipped
            if done == 0:
                phases.enter("evaluating", done=done, total=n, unit="batches", detail=detail)
            else:
                phases.progress(done, n, unit="batches", detail=detail)

        try:
            self.evaluator.run("train", self.t, on_batch, positions=positions)
        except _ScoringSkipped:
            self.log("info", "label noise: not scored (a stop was asked for); the trained model is kept")
            if before is not None:
                phases.enter(before)
            return
        path = self._keep_predictions("train")
        if path is not None:
            self._prune_predictions("train")
            sampled = (
                f"a seeded sample of {len(positions):,} of {total:,}"
                if len(positions) < total
                else f"all {total:,}"
            )
            self.log("info", f"label noise: scored {sampled} training examples; per-example losses in {path}")
        if before is not None:
            phases.enter(before)

    # ------------------------------------------------------------ checkpoints

    def save(self, reason: str, *, background: bool = False) -> Path:
        """Checkpoint this step (the chief; another worker writes nothing and gets the chief's path)."""
        if self.checkpointing is None:
            return self.ckpt_dir / f"{ck.PREFIX}{self.state.step}"
        return self.checkpointing.save(self, reason, background=background)

    def _save_on_request(self, reason: str) -> None:
        self.save(reason)

    def _variable_names(self) -> list[str]:
        # Without the model's own scope, which Keras numbers per process (..._classification_3/).
        return [v.name.split("/", 1)[-1] for v in self.model.variables]

    def _load_weights(self, path: Path, saved: TrainerState) -> None:
        if saved.variable_names is not None and saved.variable_names != self._variable_names():
            raise ck.CheckpointError(
                f"{path.name}: its weights belong to another model layout; start a new session"
            )
        for var, value in zip(self.model.variables, ck.load_arrays(path, "weights.npz"), strict=True):
            var.assign(value)

    def restore(self, path: Path) -> None:
        """Weights, optimizer, dropout RNG and TrainerState from a checkpoint whose fingerprints match."""
        ck.check_fingerprints(path, self.state.fingerprints)
        saved = TrainerState.load(path)
        self._load_weights(path, saved)
        for var, value in zip(
            self.stepper.optimizer_variables(), ck.load_arrays(path, "optimizer.npz"), strict=True
        ):
            var.assign(value)
        for gen, value in zip(dropout_generators(self.model), ck.load_arrays(path, "rng.npz"), strict=True):
            gen.state.assign(value)
        # Where training stood comes from the checkpoint; what this run is (fingerprints, length) from now.
        keep = ("version", "total_steps", "seed", "fingerprints", "variable_names")
        self.state = saved.model_copy(update={name: getattr(self.state, name) for name in keep})
        self.log(
            "info", f"resumed from {path.name}: epoch {self.state.epoch}, batch {self.state.batch_index}"
        )

    def _jit_optimizer(self, total_steps: int) -> bool:
        """Whether AdamW's update is compiled with XLA: the setting, or for 'auto' whether it pays.

        The compiled update saves ~0.04 s a step on a 2-core CPU and costs 3-12 s at the first
        step (bench/results/first_step.md, optimizer_xla.md): 'auto' compiles it for runs of
        JIT_MIN_STEPS steps or more. A resume keeps what its checkpoint trained with (the
        update's rounding differs from the plain one's by ~1e-7); a checkpoint from before the
        choice was recorded trained with its config's value (true by default then).
        """
        setting = self.t.jit_optimizer
        if setting != "auto":
            return bool(setting)
        if getattr(self, "_resuming", False):
            recorded = self._resumed_fingerprint("jit_optimizer")
            if isinstance(recorded, bool):
                return recorded
            semantic = self._resumed_fingerprint("config_semantic")
            if isinstance(semantic, dict):
                old = semantic.get("train", {}).get("jit_optimizer", True)
                return bool(old) if isinstance(old, bool) else total_steps >= JIT_MIN_STEPS
        return total_steps >= JIT_MIN_STEPS

    def _jit_from_step(self) -> int | None:
        """The first step (0-based) whose update is compiled; None: no step's is.

        A new run compiles from JIT_FROM_STEP. A resume keeps its checkpoint's step (the plain
        and compiled updates round differently, so an exact resume switches where the run did);
        a checkpoint from before it was recorded compiled from step 0.
        """
        if not self.jit_optimizer:
            return None
        if getattr(self, "_resuming", False):
            recorded = self._resumed_fingerprint("jit_from_step")
            if isinstance(recorded, int) and not isinstance(recorded, bool):
                return recorded
            if any(self._resumed_fingerprint(k) is not None for k in ("jit_optimizer", "config_semantic")):
                return 0
        return JIT_FROM_STEP

    def _resumed_fingerprint(self, key: str) -> Any:
        """A fingerprint of the checkpoint a resume will load (the named one or the newest readable)."""
        chosen = self.ctx.resume_from
        candidates = [] if chosen is not None else list(reversed(ck.folders(self.ckpt_dir)))
        if chosen is not None:
            try:
                candidates = [ck.verify_named(self.ckpt_dir, str(chosen))]
            except Exception:  # refused with its own message by _resume_point, after the build
                return None
        for path in candidates:
            try:
                return ck.read_state(path).get("fingerprints", {}).get(key)
            except (OSError, ValueError):
                continue
        return None

    def _resumed_precision(self) -> str | None:
        """The policy the checkpoint a resume will load trained in, where the config says 'auto'.

        Read before the model is built (the policy decides its layers' dtypes), from the checkpoint
        _resume_point would pick or, where that one is damaged, the newest readable one: every
        checkpoint of a session records the same policy. None: not a resume, an explicit setting,
        or a checkpoint from before the policy was recorded (resolved afresh, as then).
        """
        if not getattr(self, "_resuming", False) or self.t.mixed_precision != "auto":
            return None
        policy = self._resumed_fingerprint("precision")
        return policy if isinstance(policy, str) else None

    def _resume(self) -> None:
        path = self._resume_point()
        if path is None:
            self.log("warning", "no intact checkpoint to resume from; starting from step 0")
            if self.checkpointing is not None:
                self.checkpointing.set_aside(self, "starting from step 0")  # damaged ones, out of the way
            return
        self.restore(path)
        self.callbacks.on_resume(self, path)

    def _resume_point(self) -> Path | None:
        """The checkpoint to resume from: ctx.resume_from (folder name, step or path), else the latest intact.

        Every file of the chosen checkpoint is verified first (checksums in its marker), so a
        damaged one is never half loaded: a named one is refused, naming it and the intact
        ones; a damaged latest one is skipped with a warning, for the newest intact one.
        """
        chosen = self.ctx.resume_from
        if chosen is not None:
            return ck.verify_named(self.ckpt_dir, str(chosen))
        for path in reversed(ck.folders(self.ckpt_dir)):
            problem = ck.damage(path)
            if problem is None:
                return path
            self.log(
                "warning",
                f"checkpoint {path.name} is damaged ({problem}): skipped, resuming from the newest "
                "intact one before it",
            )
        return None

    # ------------------------------------------------------------ the end

    def _finish(self) -> dict[str, Any]:
        """Final checkpoint, best weights back (from the chief's checkpoint), test evaluation, summary."""
        s, es = self.state, self.t.early_stopping
        if self.group is not None and not self.is_chief:  # nothing to write, nothing to evaluate
            self.callbacks.on_train_end(self)
            return {"steps": s.step, "epochs": s.epoch}
        final = self.save("final")
        restored = False
        if es.restore_best and s.best_step is not None and s.best_step != s.step:
            best = self.ckpt_dir / f"{ck.PREFIX}{s.best_step}"
            self._load_weights(best, TrainerState.load(best))
            restored = True
            self.log("info", f"restored the best weights (step {s.best_step}, {es.metric} {s.best:.4f})")
        test = self.evaluate("test")
        self.score_training_split()
        self.callbacks.on_train_end(self)
        return {
            "steps": s.step,
            "epochs": s.epoch,
            "best_metric": s.best,
            "best_metric_name": es.metric,
            "best_step": s.best_step,
            "restored_best": restored,
            "stopped_early": s.stopped_early,
            "test": test or {},
            "model": str(self.ctx.paths.model),
            "final_checkpoint": str(final),
        }
