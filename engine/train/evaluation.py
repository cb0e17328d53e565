"""Evaluation: running the model over a split, when to evaluate, and early stopping on the result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.train.batches import Batch, SplitReader, pad
from engine.train.callbacks import Callback, StepReport
from engine.train.config import TrainSection
from engine.train.metrics import Figures, evaluate_logits, softmax
from engine.train.state import Evaluation

if TYPE_CHECKING:
    from engine.train.loop import Trainer

WINDOW = 50  # batches per length-sorted window, as the training plan's default bucket_window


class Evaluator:
    """Runs the model over a prepared split (in file order, no dropout) and scores its logits."""

    def __init__(
        self, model: Any, tokenizer: Any, data_dir: Path, manifest: dict[str, Any], labels: list[str]
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.data_dir, self.manifest, self.labels = data_dir, manifest, labels
        self._logits_fn: Any = None
        self.scored: Scored | None = None

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
        self,
        split: str,
        t: TrainSection,
        on_batch: Callable[[int, int | None], None] | None = None,
        positions: np.ndarray | None = None,
    ) -> Figures:
        """Score the model on ``split`` (or the rows at ``positions`` of it, ascending).

        ``on_batch(done, total)`` is called before the first batch and after each. The examples'
        positions, row ids, labels and probabilities stay in ``self.scored`` for the predictions file.
        """
        reader = SplitReader(self.data_dir, split, self.manifest)
        batch_size = t.eval_batch_size or t.batch_size * 2
        if positions is None:
            positions = np.arange(reader.rows, dtype=np.int64)
        total = _batch_count(reader, positions, batch_size)
        logits, labels, rows, where = [], [], [], []
        if on_batch is not None:
            on_batch(0, total)
        for done, (b, pos) in enumerate(self._batches(reader, positions, batch_size, t.max_length), start=1):
            logits.append(self._logits(b.input_ids, b.attention_mask).numpy())
            labels.append(b.labels)
            rows.append(b.rows)
            where.append(pos)
            if on_batch is not None:
                on_batch(done, total)
        all_logits, all_labels = np.concatenate(logits), np.concatenate(labels)
        self.scored = Scored(
            split,
            np.concatenate(where),
            np.concatenate(rows),
            all_labels,
            softmax(all_logits.astype(np.float32)),
        )
        return evaluate_logits(all_logits, all_labels, self.labels)

    def _batches(
        self, reader: SplitReader, positions: np.ndarray, batch_size: int, max_length: int
    ) -> Iterator[tuple[Batch, np.ndarray]]:
        """The rows at ``positions`` in file order, by windows of WINDOW batches sorted by token length.

        With every position these are the batches an unshuffled EpochPlan makes (the same windows,
        the same length order), so evaluations score as they always have.
        """
        starts = np.concatenate([[0], np.cumsum([n for _, n in reader.shards])]).astype(np.int64)
        shard_of = np.searchsorted(starts, positions, side="right") - 1
        span = batch_size * WINDOW
        index = 0
        for shard in range(len(reader.shards)):
            mine = positions[shard_of == shard]
            if not len(mine):
                continue
            frame = reader.shard(shard)
            texts, row_ids = frame["text"].to_numpy(), frame["row"].to_numpy()
            label_ids = frame["label"].to_numpy().astype(np.int32)
            for lo in range(0, len(mine), span):
                pos = mine[lo : lo + span]
                picks = pos - starts[shard]
                encoded = self.tokenizer(
                    [str(x) for x in texts[picks]],
                    truncation=True,
                    max_length=max_length,
                    add_special_tokens=True,
                )["input_ids"]
                by_length = np.argsort(np.array([len(e) for e in encoded]), kind="stable")
                for i in range(0, len(by_length), batch_size):
                    group = by_length[i : i + batch_size]
                    ids, mask = pad([encoded[j] for j in group], self.tokenizer.pad_token_id or 0)
                    sel = picks[group]
                    yield Batch(0, index, row_ids[sel], ids, mask, label_ids[sel]), pos[group]
                    index += 1


def _batch_count(reader: SplitReader, positions: np.ndarray, batch_size: int) -> int:
    """How many batches ``Evaluator._batches`` makes: windows of WINDOW batches within each shard."""
    starts = np.concatenate([[0], np.cumsum([n for _, n in reader.shards])]).astype(np.int64)
    per_shard = np.bincount(
        np.searchsorted(starts, positions, side="right") - 1, minlength=len(reader.shards)
    )
    span = batch_size * WINDOW
    return int(sum((n // span) * WINDOW + -(-(n % span) // batch_size) for n in per_shard.tolist()))


@dataclass
class Scored:
    """The last evaluation's examples: positions in the split, data row ids, true ids, probabilities."""

    split: str
    positions: np.ndarray
    rows: np.ndarray
    labels: np.ndarray
    probs: np.ndarray


class EvaluationSchedule(Callback):
    """Asks for a validation evaluation at each epoch end, every eval_every_steps steps and the last step."""

    def __init__(self, every: int | None) -> None:
        self.every = every

    def on_step_end(self, trainer: Trainer, report: StepReport) -> None:
        # The last step too: a run of max_steps shorter than an epoch would end with no validation
        # figures at all (no best, no confusion matrix, nothing for the error analysis).
        last = report.step >= trainer.state.total_steps
        if report.epoch_done or last or (self.every and report.step % self.every == 0):
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
