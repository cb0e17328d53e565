"""Evaluation: running the model over a split, when to evaluate, and early stopping on the result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.train.batches import EpochPlan, SplitReader
from engine.train.callbacks import Callback, StepReport
from engine.train.config import TrainSection
from engine.train.metrics import Figures, evaluate_logits
from engine.train.state import Evaluation

if TYPE_CHECKING:
    from engine.train.loop import Trainer


class Evaluator:
    """Runs the model over a prepared split (in file order, no dropout) and scores its logits."""

    def __init__(
        self, model: Any, tokenizer: Any, data_dir: Path, manifest: dict[str, Any], labels: list[str]
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.data_dir, self.manifest, self.labels = data_dir, manifest, labels
        self._logits_fn: Any = None

    def has(self, split: str) -> bool:
        return bool(self.manifest["splits"].get(split, {}).get("shards"))

    def _logits(self, ids: Any, mask: Any) -> Any:
        if self._logits_fn is None:
            import tensorflow as tf

            # Traced once, for any batch shape: evaluations reuse it rather than retracing.
            self._logits_fn = tf.function(
                lambda ids, mask: tf.cast(
                    self.model(input_ids=ids, attention_mask=mask, training=False).logits, tf.float32
                ),
                input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2,
            )
        return self._logits_fn(ids, mask)

    def run(
        self, split: str, t: TrainSection, on_batch: Callable[[int, int | None], None] | None = None
    ) -> Figures:
        """Score the model on ``split``; ``on_batch(done, total)`` before the first batch and after each."""
        plan = EpochPlan(
            SplitReader(self.data_dir, split, self.manifest),
            self.tokenizer,
            batch_size=t.eval_batch_size or t.batch_size * 2,
            max_length=t.max_length,
            seed=0,
            epoch=0,
            shuffle=False,
        )
        logits, labels = [], []
        total = plan.num_batches
        if on_batch is not None:
            on_batch(0, total)
        for done, b in enumerate(plan.batches(), start=1):
            logits.append(self._logits(b.input_ids, b.attention_mask).numpy())
            labels.append(b.labels)
            if on_batch is not None:
                on_batch(done, total)
        return evaluate_logits(np.concatenate(logits), np.concatenate(labels), self.labels)


class EvaluationSchedule(Callback):
    """Asks for a validation evaluation at each epoch's end and every eval_every_steps steps."""

    def __init__(self, every: int | None) -> None:
        self.every = every

    def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
        if report.epoch_done or (self.every and report.step % self.every == 0):
            trainer.control.should_evaluate = True


class EarlyStopping(Callback):
    """Tracks the best validation metric and stops after `patience` evaluations without improvement.

    A new best asks for a "best" checkpoint when it is kept (keep_best) or restored at the end.
    """

    def __init__(self, t: TrainSection) -> None:
        self.es = t.early_stopping
        self.save_best = t.keep_best or self.es.restore_best

    def on_train_begin(self, trainer: Trainer) -> None:
        trainer.control.should_training_stop = trainer.state.stopped_early

    def on_evaluate(self, trainer: Trainer, split: str, figures: Figures) -> None:
        if split != "validation":
            return
        metrics = figures.metrics
        es, s = self.es, trainer.state
        s.history.append(Evaluation(step=s.step, metrics=metrics))
        value = metrics.get(es.metric)
        if value is None:
            # Only roc_auc can be missing (a split with one class): no verdict, rather than a crash.
            trainer.log(
                "warning",
                f"step {s.step}: {es.metric} is undefined for this evaluation (one class only); "
                "early stopping skips it",
            )
            return
        better = s.best is None or (
            value > s.best + es.min_delta if es.maximize else value < s.best - es.min_delta
        )
        if better:
            s.best, s.best_step, s.bad_evals = value, s.step, 0
            if self.save_best:
                trainer.control.should_save = "best"
            return
        s.bad_evals += 1
        if es.patience is not None and s.bad_evals >= es.patience:
            s.stopped_early = trainer.control.should_training_stop = True
            trainer.log(
                "info",
                f"early stopping at step {s.step}: no {es.metric} improvement "
                f"in {s.bad_evals} evaluations (best {s.best:.4f} at {s.best_step})",
            )
