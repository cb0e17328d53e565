"""The optimisation step: AdamW with differential rates, class-weighted (smoothed) loss, accumulation,
clipping, under tf.distribute."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from engine.errors import ConfigError
from engine.train import dropout, freeze

# Substrings of variable names that get no weight decay (biases and LayerNorm, as in BERT).
NO_DECAY = ("bias", "LayerNorm", "layer_norm", "/beta", "/gamma")
BATCH_SPEC = {
    "input_ids": tf.TensorSpec([None, None], tf.int32),
    "attention_mask": tf.TensorSpec([None, None], tf.int32),
    "labels": tf.TensorSpec([None], tf.int32),
}


def lr_multiplier(group: str, layers: int, head: float = 1.0, decay: float = 1.0) -> float:
    """The LR of a weight group (engine.train.freeze.group_of) over the schedule's LR.

    The schedule sets the top encoder layer's LR; layer i (0 = bottom) learns at
    decay ** (layers - 1 - i) times it, the embeddings at decay ** layers, and the head
    (the classifier, and the pooler: it sits above the encoder and feeds only the classifier,
    and freezing counts it as head too) at ``head`` times it.
    """
    if group == "head":
        return float(head)
    if group == "embeddings":
        return float(decay**layers)
    return float(decay ** (layers - 1 - int(group.split(":")[1])))


def lr_scales(names: list[str], layers: int, head: float, decay: float, model_type: str) -> dict[str, float]:
    """Each weight's LR over the schedule's (lr_multiplier of its group).

    Differential rates need the encoder's layers told apart (``layer_._N`` in the weight names,
    as BERT, RoBERTa, ELECTRA and DistilBERT have): in a model without them (ALBERT's shared
    layer group) every weight would count as head, so they are refused there.
    """
    groups = {name: freeze.group_of(name) for name in names}
    if (head != 1.0 or decay != 1.0) and not any(g.startswith("layer:") for g in groups.values()):
        raise ConfigError(
            f"[train] head_lr_multiplier, layer_lr_decay: ftc cannot tell the encoder layers of "
            f"{model_type} models from the head; leave both at 1.0"
        )
    return {name: lr_multiplier(group, layers, head, decay) for name, group in groups.items()}


class DifferentialAdamW(tf_keras.optimizers.AdamW):
    """AdamW whose LR (in the Adam step and in the decoupled weight decay) is scaled per variable.

    The scales are Python constants traced into each variable's update, so they are fixed
    before the first step and add no optimizer variables (a checkpoint holds the same
    moments and step count as plain AdamW's). A variable at scale 1.0 takes plain AdamW's
    code path unchanged, bit for bit.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lr_scales: dict[Any, float] = {}

    def set_lr_scales(self, scales: Iterable[tuple[Any, float]]) -> None:
        """(variable, its LR over the optimizer's LR) pairs, before the first step; a variable absent: 1.0."""
        self._lr_scales = {self._var_key(v): float(s) for v, s in scales if float(s) != 1.0}

    def lr_scale(self, variable: Any) -> float:
        return self._lr_scales.get(self._var_key(variable), 1.0)

    def _lr_for(self, variable: Any) -> tf.Tensor:
        lr = tf.cast(self.learning_rate, variable.dtype)
        scale = self.lr_scale(variable)
        return lr if scale == 1.0 else lr * tf.cast(scale, variable.dtype)

    def update_step(self, gradient: Any, variable: Any) -> Any:
        if self.lr_scale(variable) == 1.0:
            return super().update_step(gradient, variable)
        # AdamW's dense update (a sparse gradient is made dense: their docs call the two equal).
        gradient = tf.convert_to_tensor(gradient)
        lr = self._lr_for(variable)
        local_step = tf.cast(self.iterations + 1, variable.dtype)
        beta_1_power = tf.pow(tf.cast(self.beta_1, variable.dtype), local_step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, variable.dtype), local_step)
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m.assign_add((gradient - m) * (1 - self.beta_1))
        v.assign_add((tf.square(gradient) - v) * (1 - self.beta_2))
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            v_hat.assign(tf.maximum(v_hat, v))
            v = v_hat
        return variable.assign_sub((m * alpha) / (tf.sqrt(v) + self.epsilon))

    def _apply_weight_decay(self, variables: Any) -> None:
        # As tf_keras' distributed AdamW does it, with the variable's own LR.
        if self.weight_decay is None:
            return

        def apply(distribution: Any, variables: Any, **_: Any) -> None:
            def decay(variable: Any) -> None:
                if self._use_weight_decay(variable):
                    wd = tf.cast(self.weight_decay, variable.dtype)
                    variable.assign_sub(variable * wd * self._lr_for(variable))

            for variable in variables:
                distribution.extended.update(variable, decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(apply, self._distribution_strategy, variables)


def make_optimizer(weight_decay: float, mixed_float16: bool = False, jit: bool = True) -> Any:
    """AdamW (per-variable LR scales possible) whose LR is a variable the loop sets each step.

    With ``jit`` each weight's update (moments, bias correction, step) is one XLA kernel. Keras
    turns that on only when it sees a GPU; on a CPU it halves the update's time too (MiniLM:
    0.088 -> 0.047 s, a training step 3.4% faster; bench/results/optimizer_xla.md), for about
    6 s of compiling at the first step. The weights agree with the unfused update to ~1e-7.
    """
    from tf_keras.src.utils.tf_utils import can_jit_compile

    opt = DifferentialAdamW(learning_rate=0.0, weight_decay=weight_decay, epsilon=1e-8)
    opt.exclude_from_weight_decay(var_names=list(NO_DECAY))
    opt.jit_compile = bool(jit and can_jit_compile())
    if mixed_float16:
        opt = tf_keras.mixed_precision.LossScaleOptimizer(opt)
    return opt


def _inner(opt: Any) -> Any:
    return getattr(opt, "inner_optimizer", opt)


def example_losses(
    model: Any,
    batch: dict[str, tf.Tensor],
    class_weights: tf.Tensor | None,
    training: bool,
    label_smoothing: float = 0.0,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-example weights and cross-entropies (float32) and the logits.

    With ``label_smoothing`` eps the target is (1 - eps) * onehot + eps / K over the K classes.
    """
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], training=training
    ).logits
    logits = tf.cast(logits, tf.float32)
    if label_smoothing:
        k = tf.shape(logits)[-1]
        target = (1.0 - label_smoothing) * tf.one_hot(batch["labels"], k) + label_smoothing / tf.cast(
            k, tf.float32
        )
        ce = -tf.reduce_sum(target * tf.nn.log_softmax(logits), axis=-1)
    else:
        ce = tf.keras.losses.sparse_categorical_crossentropy(batch["labels"], logits, from_logits=True)
    w = tf.ones_like(ce) if class_weights is None else tf.gather(class_weights, batch["labels"])
    return w, ce, logits


class Stepper:
    """Runs optimisation steps of k micro-batches: grads of sum(w*loss) summed, divided by sum(w), one apply.

    Normalising by the total weight of all micro-batches (and replicas) is what makes
    k accumulated micro-batches equal one batch k times larger. ``head_lr_multiplier`` and
    ``layer_lr_decay`` give each weight group its own LR (lr_multiplier); ``lr_scales`` names them.
    """

    def __init__(
        self,
        model: Any,
        strategy: tf.distribute.Strategy,
        *,
        weight_decay: float,
        clip_norm: float | None,
        accum_steps: int = 1,
        class_weights: Sequence[float] | None = None,
        mixed_float16: bool = False,
        jit_optimizer: bool = True,
        head_lr_multiplier: float = 1.0,
        layer_lr_decay: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        self.model = model
        self.strategy = strategy
        self.clip_norm = clip_norm
        self.accum_steps = accum_steps
        self.mixed_float16 = mixed_float16
        self.label_smoothing = float(label_smoothing)
        dropout.install()  # several replicas apply the dropout masks of one process (engine.train.dropout)
        with strategy.scope():
            self.optimizer = make_optimizer(weight_decay, mixed_float16, jit_optimizer)
            # Built over every weight once, so freezing changes only which ones get gradients.
            self.all_vars = list(model.trainable_variables)
            self.lr_scales = lr_scales(
                [v.name for v in self.all_vars],
                freeze.num_layers(model),
                head_lr_multiplier,
                layer_lr_decay,
                getattr(model.config, "model_type", "this"),
            )
            if any(scale != 1.0 for scale in self.lr_scales.values()):
                _inner(self.optimizer).set_lr_scales((v, self.lr_scales[v.name]) for v in self.all_vars)
            _inner(self.optimizer).build(self.all_vars)
            self.class_weights = (
                None if class_weights is None else tf.constant(np.asarray(class_weights, np.float32))
            )
            self._acc: list[tf.Variable] = []
            self._acc_loss = self._acc_w = None
            if accum_steps > 1:
                on_read = {
                    "synchronization": tf.VariableSynchronization.ON_READ,
                    "aggregation": tf.VariableAggregation.SUM,
                    "trainable": False,
                }
                self._acc = [tf.Variable(tf.zeros(v.shape, v.dtype), **on_read) for v in self.all_vars]
                self._acc_loss = tf.Variable(0.0, **on_read)
                self._acc_w = tf.Variable(0.0, **on_read)
        self.set_trainable(None)

    # ------------------------------------------------------------ configuration

    def set_trainable(self, names: set[str] | None) -> None:
        """Which weights get updates (None: all). Rebuilds the step functions."""
        self._trainable = names
        self.train_idx = [i for i, v in enumerate(self.all_vars) if names is None or v.name in names]
        self._fused = tf.function(self._fused_step, input_signature=[BATCH_SPEC])
        self._micro = tf.function(self._micro_step, input_signature=[BATCH_SPEC])
        self._apply = tf.function(self._apply_step)

    @property
    def compiled_update(self) -> bool:
        """Whether AdamW's update runs as one XLA kernel per weight."""
        return bool(_inner(self.optimizer).jit_compile)

    def compile_update(self, on: bool = True) -> bool:
        """From the next step on, the update is compiled with XLA (or not): the step functions are
        retraced, and XLA compiles at that step. Returns the state: False where XLA cannot compile."""
        from tf_keras.src.utils.tf_utils import can_jit_compile

        inner = _inner(self.optimizer)
        want = bool(on and can_jit_compile())
        if bool(inner.jit_compile) != want:
            inner.jit_compile = want
            self.set_trainable(self._trainable)
        return want

    def set_learning_rate(self, lr: float) -> None:
        _inner(self.optimizer).learning_rate.assign(lr)

    @property
    def iterations(self) -> int:
        return int(_inner(self.optimizer).iterations.numpy())

    def optimizer_variables(self) -> list[tf.Variable]:
        """Everything a resume needs: Adam's moments and step, and the dynamic loss scale under float16."""
        extra = []
        scale = getattr(self.optimizer, "_loss_scale", None)
        if scale is not None and hasattr(scale, "_current_loss_scale"):
            extra = [scale._current_loss_scale, scale._counter]
        return list(_inner(self.optimizer).variables) + extra

    # ------------------------------------------------------------ replica functions

    def _grads(self, batch: dict[str, tf.Tensor]) -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor]:
        train_vars = [self.all_vars[i] for i in self.train_idx]
        rows = (
            dropout.global_rows(batch["row_offset"], batch["rows"], batch["rows_total"])
            if "row_offset" in batch
            else contextlib.nullcontext()
        )
        with tf.GradientTape() as tape, rows:
            w, ce, _ = example_losses(
                self.model, batch, self.class_weights, training=True, label_smoothing=self.label_smoothing
            )
            loss_sum = tf.reduce_sum(w * ce)
            target = self.optimizer.get_scaled_loss(loss_sum) if self.mixed_float16 else loss_sum
        grads = tape.gradient(target, train_vars)
        if self.mixed_float16:
            grads = self.optimizer.get_unscaled_gradients(grads)
        grads = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(grads, train_vars, strict=True)
        ]
        return grads, loss_sum, tf.reduce_sum(w)

    def _finish(self, grads: list[tf.Tensor], loss_sum: tf.Tensor, w_sum: tf.Tensor) -> dict[str, tf.Tensor]:
        ctx = tf.distribute.get_replica_context()
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [loss_sum, w_sum, *list(grads)])
        loss_sum, w_sum, grads = total[0], total[1], total[2:]
        denom = tf.maximum(w_sum, 1e-12)
        grads = [g / tf.cast(denom, g.dtype) for g in grads]
        norm = tf.linalg.global_norm(grads)
        if self.clip_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_norm, use_norm=norm)
        train_vars = [self.all_vars[i] for i in self.train_idx]
        self.optimizer.apply_gradients(zip(grads, train_vars, strict=True), skip_gradients_aggregation=True)
        return {"loss": loss_sum / denom, "grad_norm": norm, "weight": w_sum}

    def _fused_step(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        def replica(b: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return self._finish(*self._grads(b))

        out = self.strategy.run(replica, args=(self._distribute(batch),))
        return {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in out.items()}

    def _micro_step(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        def replica(b: dict[str, tf.Tensor]) -> tf.Tensor:
            grads, loss_sum, w_sum = self._grads(b)
            for i, g in zip(self.train_idx, grads, strict=True):
                self._acc[i].assign_add(g)
            self._acc_loss.assign_add(loss_sum)  # type: ignore[union-attr]
            self._acc_w.assign_add(w_sum)  # type: ignore[union-attr]
            return w_sum

        return self.strategy.run(replica, args=(self._distribute(batch),))

    def _apply_step(self) -> dict[str, tf.Tensor]:
        def replica() -> dict[str, tf.Tensor]:
            grads = [tf.identity(self._acc[i]) for i in self.train_idx]
            out = self._finish(grads, tf.identity(self._acc_loss), tf.identity(self._acc_w))
            for a in self._acc:
                a.assign(tf.zeros_like(a))
            self._acc_loss.assign(0.0)  # type: ignore[union-attr]
            self._acc_w.assign(0.0)  # type: ignore[union-attr]
            return out

        out = self.strategy.run(replica)
        return {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in out.items()}

    def _distribute(self, batch: dict[str, tf.Tensor]) -> Any:
        n = self.strategy.num_replicas_in_sync
        if n == 1:
            return batch

        def part(ctx: tf.distribute.experimental.ValueContext) -> dict[str, tf.Tensor]:
            size = tf.shape(batch["labels"])[0]
            lo = size * ctx.replica_id_in_sync_group // n
            hi = size * (ctx.replica_id_in_sync_group + 1) // n
            # Where these rows sit in the batch: their dropout masks are those rows of one process's.
            where = {"row_offset": lo, "rows": hi - lo, "rows_total": size}
            return {**{k: v[lo:hi] for k, v in batch.items()}, **where}

        return self.strategy.experimental_distribute_values_from_function(part)

    # ------------------------------------------------------------ public

    def step(self, micro_batches: Sequence[dict[str, Any]]) -> dict[str, float]:
        """One optimizer update from one or more micro-batches; returns loss and grad_norm (floats)."""
        tensors = [
            {k: tf.convert_to_tensor(v, BATCH_SPEC[k].dtype) for k, v in b.items() if k in BATCH_SPEC}
            for b in micro_batches
        ]
        if len(tensors) == 1 and self.accum_steps == 1:
            out = self._fused(tensors[0])
        else:
            if not self._acc:
                raise ValueError("several micro-batches need a Stepper built with accum_steps > 1")
            for t in tensors:
                self._micro(t)
            out = self._apply()
        return {k: float(v.numpy()) for k, v in out.items()}
