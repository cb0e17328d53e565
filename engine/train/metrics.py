"""Classification metrics for evaluations: loss, accuracy, macro and per-class P/R/F1, ROC-AUC."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Figures:
    """One evaluation's figures. Each field is a field of the EvaluationEnded event of the same name,
    so a new figure is computed here, declared in engine/protocol.py, and reaches every reader."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]] = field(default_factory=list)  # [true][predicted], per_class's order

    @property
    def absent(self) -> list[str]:
        """The classes the split has no example of."""
        return [name for name, figures in self.per_class.items() if not figures["support"]]

    def payload(self) -> dict[str, Any]:
        """The fields of the EvaluationEnded event."""
        return asdict(self)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def evaluate_logits(logits: np.ndarray, labels: np.ndarray, names: list[str]) -> Figures:
    """The figures of logits against true label ids; metrics are named as in EVAL_METRICS."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    probs = softmax(logits.astype(np.float64))
    n = len(names)
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    pred = probs.argmax(axis=1)
    ids = list(range(n))
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=ids, zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(
        labels, pred, labels=ids, average="macro", zero_division=0
    )
    metrics: dict[str, Any] = {
        "loss": float(-np.log(picked).mean()),
        "accuracy": float((pred == labels).mean()),
        "macro_precision": float(mp),
        "macro_recall": float(mr),
        "macro_f1": float(mf),
    }
    present = np.unique(labels)
    if len(present) >= 2:
        # One-vs-rest, averaged over the classes the split holds: a small validation split that
        # lacks a rare class still gets an AUC. With one class only it is undefined and left out.
        metrics["roc_auc"] = float(np.mean([roc_auc_score(labels == c, probs[:, c]) for c in present]))
    per_class = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": float(s[i])}
        for i, name in enumerate(names)
    }
    confusion = confusion_matrix(labels, pred, labels=ids).astype(int).tolist()
    return Figures(metrics, per_class, confusion)
