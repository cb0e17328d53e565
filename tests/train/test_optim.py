"""The optimisation step: accumulation equals a bigger batch, decay exclusions, class weights, clipping."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from engine.model import load_model, load_tokenizer
from engine.train.optim import Stepper, example_losses
from tests.support.tiny import make_tiny_model, synthetic_texts


@pytest.fixture(scope="module")
def no_dropout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Without dropout two models see exactly the same function, so their updates are comparable.
    return make_tiny_model(tmp_path_factory.mktemp("nodrop"), dropout=0.0)


def _batch(tok, rows):
    enc = tok([t for t, _ in rows], padding=True, return_tensors="np")
    return {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "labels": np.array([lab for _, lab in rows], np.int32),
    }


def _stepper(folder: Path, **kw) -> Stepper:
    model = load_model(folder, 2, seed=3)
    kw.setdefault("weight_decay", 0.01)
    kw.setdefault("clip_norm", 1.0)
    return Stepper(model, tf.distribute.get_strategy(), **kw)


def test_accumulating_k_micro_batches_equals_one_big_batch(no_dropout: Path) -> None:
    tok = load_tokenizer(no_dropout)
    rows = synthetic_texts(12, ["neg", "pos"], 1)
    acc = _stepper(no_dropout, accum_steps=3, class_weights=[1.0, 2.5])
    big = _stepper(no_dropout, class_weights=[1.0, 2.5])
    for _ in range(3):
        for s in (acc, big):
            s.set_learning_rate(1e-3)
        a = acc.step([_batch(tok, rows[:3]), _batch(tok, rows[3:8]), _batch(tok, rows[8:])])
        b = big.step([_batch(tok, rows)])
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], abs=1e-5)
    for x, y in zip(acc.model.variables, big.model.variables, strict=True):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-5, err_msg=x.name)
    assert acc.iterations == big.iterations == 3
    moved = [
        np.abs(x.numpy() - y.numpy()).max()
        for x, y in zip(acc.model.variables, load_model(no_dropout, 2, seed=3).variables, strict=True)
    ]
    assert max(moved) > 1e-4  # the models did train


def test_class_weights_change_the_loss(no_dropout: Path) -> None:
    tok = load_tokenizer(no_dropout)
    batch = {k: tf.constant(v) for k, v in _batch(tok, synthetic_texts(8, ["neg", "pos"], 2)).items()}
    model = load_model(no_dropout, 2, seed=3)
    w, ce, _ = example_losses(model, batch, None, training=False)
    ww, cew, _ = example_losses(model, batch, tf.constant([1.0, 10.0]), training=False)
    np.testing.assert_allclose(ce.numpy(), cew.numpy())
    plain = float(tf.reduce_sum(w * ce) / tf.reduce_sum(w))
    weighted = float(tf.reduce_sum(ww * cew) / tf.reduce_sum(ww))
    assert plain != pytest.approx(weighted, abs=1e-4)
    expected = np.where(batch["labels"].numpy() == 1, 10.0, 1.0)
    np.testing.assert_array_equal(ww.numpy(), expected)


def test_clipping_bounds_the_update(no_dropout: Path) -> None:
    tok = load_tokenizer(no_dropout)
    batch = _batch(tok, synthetic_texts(8, ["neg", "pos"], 2))
    s = _stepper(no_dropout, clip_norm=1e-6, weight_decay=0.0)
    before = [v.numpy() for v in s.all_vars]
    s.set_learning_rate(1.0)
    out = s.step([batch])
    assert out["grad_norm"] > 1e-3  # reported before clipping
    # Adam normalises the step size, so check the first moment instead: it saw the clipped gradient.
    first_moments = [v for v in s.optimizer_variables() if v.name.startswith("m/")]
    m_norm = float(tf.linalg.global_norm(first_moments))
    assert 0 < m_norm <= 0.1 * 1e-6 * 1.0001
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, s.all_vars, strict=True))


def test_no_weight_decay_on_biases_and_layer_norm(no_dropout: Path) -> None:
    s = _stepper(no_dropout)
    opt = s.optimizer
    decayed = {v.name for v in s.all_vars if opt._use_weight_decay(v)}
    assert any("attention/self/query/kernel" in n for n in decayed)
    assert not any("bias" in n or "LayerNorm" in n for n in decayed)
    assert any("word_embeddings" in n for n in decayed)


def test_mixed_bfloat16_computes_in_bf16_and_keeps_float32_weights(no_dropout: Path) -> None:
    import tf_keras

    from engine.train.runtime import resolve_precision

    assert resolve_precision("off") == "float32"
    tok = load_tokenizer(no_dropout)
    tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        s = _stepper(no_dropout)
        assert s.model.bert.embeddings.compute_dtype == "bfloat16"
        s.set_learning_rate(1e-3)
        out = s.step([_batch(tok, synthetic_texts(8, ["neg", "pos"], 4))])
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(out["loss"]) and out["grad_norm"] > 0
    assert {v.dtype for v in s.model.variables} == {tf.float32}


def test_class_weight_settings() -> None:
    from engine.train.config import ConfigError
    from engine.train.runtime import class_weight_vector

    labels = ["neg", "pos", "mid"]
    counts = {"neg": 60, "pos": 30, "mid": 10}
    assert class_weight_vector("none", labels, counts) is None
    assert class_weight_vector("balanced", labels, counts) == pytest.approx([100 / 180, 100 / 90, 100 / 30])
    assert class_weight_vector({"mid": 4.0}, labels, counts) == [1.0, 1.0, 4.0]
    with pytest.raises(ConfigError, match="unknown label"):
        class_weight_vector({"meh": 2.0}, labels, counts)


def test_the_xla_fused_update_matches_the_unfused_one(no_dropout: Path) -> None:
    """jit_optimizer (on by default) compiles AdamW's update; the weights it reaches are the same."""
    tok = load_tokenizer(no_dropout)
    rows = synthetic_texts(8, ["neg", "pos"], 4)
    fused, unfused = _stepper(no_dropout), _stepper(no_dropout, jit_optimizer=False)
    assert fused.optimizer.jit_compile and not unfused.optimizer.jit_compile
    for _ in range(4):
        for s in (fused, unfused):
            s.set_learning_rate(1e-3)
            s.step([_batch(tok, rows)])
    start = load_model(no_dropout, 2, seed=3).variables
    for x, y in zip(fused.model.variables, unfused.model.variables, strict=True):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6, err_msg=x.name)
    pairs = zip(fused.model.variables, start, strict=True)
    moved = max(float(np.abs(x.numpy() - x0.numpy()).max()) for x, x0 in pairs)
    assert moved > 1e-3  # four steps at lr 1e-3 did move the weights
    for a, b in zip(fused.optimizer_variables(), unfused.optimizer_variables(), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.name)


# ------------------------------------------------------------ differential learning rates


def _expected_scale(name: str, head: float, decay: float, layers: int = 2) -> float:
    # Written out for the tiny model's 2 layers, independently of lr_multiplier.
    if "/embeddings/" in name:
        return decay**layers
    if "/layer_._0/" in name:
        return decay
    if "/layer_._1/" in name:
        return 1.0
    assert "classifier" in name or "pooler" in name, name
    return head


@pytest.mark.parametrize("jit,mixed_float16", [(True, False), (False, False), (False, True)])
def test_each_weight_group_moves_at_its_own_learning_rate(
    no_dropout: Path, jit: bool, mixed_float16: bool
) -> None:
    """Adam's first step with gradient 1 everywhere moves every weight by (almost exactly) its LR."""
    s = _stepper(
        no_dropout,
        weight_decay=0.0,
        head_lr_multiplier=10.0,
        layer_lr_decay=0.5,
        jit_optimizer=jit,
        mixed_float16=mixed_float16,
    )
    before = [v.numpy() for v in s.all_vars]
    s.set_learning_rate(1e-3)
    s.optimizer.apply_gradients([(tf.ones_like(v), v) for v in s.all_vars])
    groups = set()
    for v, b in zip(s.all_vars, before, strict=True):
        want = 1e-3 * _expected_scale(v.name, 10.0, 0.5)
        groups.add(want)
        np.testing.assert_allclose(b - v.numpy(), want, rtol=1e-4, err_msg=v.name)
        assert s.lr_scales[v.name] == pytest.approx(want / 1e-3)
    assert sorted(groups) == pytest.approx([2.5e-4, 5e-4, 1e-3, 1e-2])  # all four groups seen


def test_weight_decay_uses_each_weights_own_learning_rate(no_dropout: Path) -> None:
    """Decoupled decay with a zero gradient: w -= w * wd * lr_var (Adam's own step is 0 there)."""
    s = _stepper(
        no_dropout, weight_decay=0.1, head_lr_multiplier=10.0, layer_lr_decay=0.5, jit_optimizer=False
    )
    before = [v.numpy() for v in s.all_vars]
    s.set_learning_rate(0.1)
    s.optimizer.apply_gradients([(tf.zeros_like(v), v) for v in s.all_vars])
    decayed = 0
    for v, b in zip(s.all_vars, before, strict=True):
        if s.optimizer._use_weight_decay(v):
            decayed += 1
            want = b * 0.1 * 0.1 * _expected_scale(v.name, 10.0, 0.5)
            np.testing.assert_allclose(b - v.numpy(), want, rtol=1e-4, atol=1e-9, err_msg=v.name)
        else:
            np.testing.assert_array_equal(b, v.numpy(), err_msg=v.name)
    assert decayed >= 4


def test_multipliers_of_one_update_bit_for_bit_like_plain_adamw(
    no_dropout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With both multipliers at 1.0 the weights and Adam's state equal tf_keras' own AdamW's, exactly.

    Unfused (jit_optimizer off) to keep it quick: the XLA path runs the same update_step.
    """
    import tf_keras

    from engine.train import optim

    tok = load_tokenizer(no_dropout)
    rows = synthetic_texts(8, ["neg", "pos"], 4)
    ours = _stepper(no_dropout, jit_optimizer=False)
    near = _stepper(no_dropout, layer_lr_decay=0.999, jit_optimizer=False)

    def plain(weight_decay: float, mixed_float16: bool = False, jit: bool = True):
        opt = tf_keras.optimizers.AdamW(learning_rate=0.0, weight_decay=weight_decay, epsilon=1e-8)
        opt.exclude_from_weight_decay(var_names=list(optim.NO_DECAY))
        opt.jit_compile = jit
        return opt

    monkeypatch.setattr(optim, "make_optimizer", plain)
    theirs = _stepper(no_dropout, jit_optimizer=False)
    assert type(theirs.optimizer) is tf_keras.optimizers.AdamW
    for _ in range(2):
        for s in (ours, theirs, near):
            s.set_learning_rate(1e-3)
            s.step([_batch(tok, rows)])
    for x, y in zip(ours.model.variables, theirs.model.variables, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.name)
    for a, b in zip(ours.optimizer_variables(), theirs.optimizer_variables(), strict=True):
        assert re.sub(r"classification(_\d+)?/", "", a.name) == re.sub(r"classification(_\d+)?/", "", b.name)
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    # The comparison can tell: a decay of 0.999 already moves the lower layers differently.
    assert any(
        not np.array_equal(x.numpy(), y.numpy())
        for x, y in zip(ours.model.variables, near.model.variables, strict=True)
    )


def test_differential_rates_with_accumulation_and_freezing(no_dropout: Path) -> None:
    """k accumulated micro-batches still equal one big batch; a frozen group does not move at all."""
    from engine.train import freeze

    tok = load_tokenizer(no_dropout)
    rows = synthetic_texts(12, ["neg", "pos"], 1)
    kw = {"head_lr_multiplier": 10.0, "layer_lr_decay": 0.8, "jit_optimizer": False}
    acc = _stepper(no_dropout, accum_steps=3, **kw)
    big = _stepper(no_dropout, **kw)
    for s in (acc, big):
        s.set_trainable(freeze.trainable_names(s.all_vars, {"embeddings"}))
    before = {v.name: v.numpy() for v in big.all_vars}
    for _ in range(2):
        for s in (acc, big):
            s.set_learning_rate(1e-3)
        acc.step([_batch(tok, rows[:3]), _batch(tok, rows[3:8]), _batch(tok, rows[8:])])
        big.step([_batch(tok, rows)])
    for x, y in zip(acc.model.variables, big.model.variables, strict=True):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-5, err_msg=x.name)
    for v in big.all_vars:
        moved = float(np.abs(v.numpy() - before[v.name]).max())
        if "/embeddings/" in v.name:
            assert moved == 0.0, v.name
        elif "classifier" in v.name:
            assert moved > 1e-3, v.name  # 2 steps at 10 x 1e-3


def test_lr_multiplier_of_each_group() -> None:
    from engine.train.optim import lr_multiplier

    assert lr_multiplier("head", 6, 10.0, 0.8) == 10.0
    assert lr_multiplier("layer:5", 6, 10.0, 0.8) == 1.0
    assert lr_multiplier("layer:0", 6, 10.0, 0.8) == pytest.approx(0.8**5)
    assert lr_multiplier("embeddings", 6, 10.0, 0.8) == pytest.approx(0.8**6)
    assert lr_multiplier("embeddings", 6) == lr_multiplier("head", 6) == 1.0


def test_differential_rates_are_refused_for_a_model_whose_layers_cannot_be_told_apart() -> None:
    from engine.errors import ConfigError
    from engine.train.optim import lr_scales

    albert = [
        "m/albert/embeddings/word_embeddings/weight:0",
        "m/albert/encoder/albert_layer_groups_._0/albert_layers_._0/ffn/kernel:0",
        "m/classifier/kernel:0",
    ]
    assert set(lr_scales(albert, 12, 1.0, 1.0, "albert").values()) == {1.0}
    with pytest.raises(ConfigError, match=r"^\[train\] head_lr_multiplier, layer_lr_decay: .* albert models"):
        lr_scales(albert, 12, 10.0, 1.0, "albert")
    bert = [
        "m/bert/embeddings/w:0",
        "m/bert/encoder/layer_._0/k:0",
        "m/bert/encoder/layer_._1/k:0",
        "m/classifier/k:0",
    ]
    assert list(lr_scales(bert, 2, 10.0, 0.5, "bert").values()) == [0.25, 0.5, 1.0, 10.0]


# ------------------------------------------------------------ label smoothing


def test_label_smoothing_is_the_smoothed_cross_entropy(no_dropout: Path) -> None:
    tok = load_tokenizer(no_dropout)
    batch = {k: tf.constant(v) for k, v in _batch(tok, synthetic_texts(8, ["neg", "pos", "mid"], 2)).items()}
    model = load_model(no_dropout, 3, seed=3)
    w, plain, logits = example_losses(model, batch, tf.constant([1.0, 2.0, 4.0]), training=False)
    ws, smooth, _ = example_losses(
        model, batch, tf.constant([1.0, 2.0, 4.0]), training=False, label_smoothing=0.2
    )
    z = logits.numpy().astype(np.float64)
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    labels = batch["labels"].numpy()
    target = 0.8 * np.eye(3)[labels] + 0.2 / 3
    assert smooth.dtype == tf.float32
    np.testing.assert_allclose(smooth.numpy(), -(target * logp).sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(plain.numpy(), -logp[np.arange(len(labels)), labels], rtol=1e-5)
    assert not np.allclose(smooth.numpy(), plain.numpy())
    np.testing.assert_array_equal(ws.numpy(), w.numpy())  # class weights still apply per example
    np.testing.assert_array_equal(ws.numpy(), np.array([1.0, 2.0, 4.0])[labels])
