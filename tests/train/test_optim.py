"""The optimisation step: accumulation equals a bigger batch, decay exclusions, class weights, clipping."""

from __future__ import annotations

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
