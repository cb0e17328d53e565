"""Evaluation metrics: the names early stopping may use, and ROC-AUC when a split lacks classes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from engine.train.config import EVAL_METRICS
from engine.train.metrics import evaluate_logits, softmax


def _logits(n: int, classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, classes))


def test_every_metric_early_stopping_accepts_is_computed() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    figures = evaluate_logits(_logits(8, 3), labels, ["a", "b", "c"])
    metrics, per_class = figures.metrics, figures.per_class
    assert set(metrics) == set(EVAL_METRICS)
    assert per_class["a"]["support"] == 3


@pytest.mark.parametrize("classes", [2, 3])
def test_roc_auc_is_sklearns_one_vs_rest_when_every_class_is_present(classes: int) -> None:
    labels = np.arange(40) % classes
    logits = _logits(40, classes, seed=1)
    metrics = evaluate_logits(logits, labels, [f"c{i}" for i in range(classes)]).metrics
    probs = softmax(logits)
    expected = (
        roc_auc_score(labels, probs[:, 1])
        if classes == 2
        else roc_auc_score(labels, probs, multi_class="ovr")
    )
    assert metrics["roc_auc"] == pytest.approx(expected)


def test_roc_auc_over_the_classes_present_and_absent_for_one_class() -> None:
    labels = np.array([0, 2, 0, 2, 2, 0])  # class 1 missing from the split
    logits = _logits(6, 3, seed=2)
    metrics = evaluate_logits(logits, labels, ["a", "b", "c"]).metrics
    probs = softmax(logits)
    expected = np.mean([roc_auc_score(labels == c, probs[:, c]) for c in (0, 2)])
    assert metrics["roc_auc"] == pytest.approx(expected)
    only_one = evaluate_logits(logits, np.zeros(6, dtype=int), ["a", "b", "c"]).metrics
    assert "roc_auc" not in only_one and "macro_f1" in only_one


def test_the_confusion_matrix_counts_true_by_predicted_in_label_order() -> None:
    # Predictions are the argmax: rows 0-3 predict a, b, c, c; a class no row holds keeps a zero row.
    logits = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 5.0, 0], [0, 0, 5.0, 0]])
    labels = np.array([0, 0, 2, 1])
    figures = evaluate_logits(logits, labels, ["a", "b", "c", "d"])
    assert figures.confusion == [[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert figures.payload()["confusion"] == figures.confusion  # what the EvaluationEnded event carries
    for i, name in enumerate(["a", "b", "c", "d"]):
        assert sum(figures.confusion[i]) == figures.per_class[name]["support"]
