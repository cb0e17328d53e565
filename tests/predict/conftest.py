"""Fixtures for prediction tests: a tiny three-class model folder and input files of synthetic texts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.tiny import make_tokenizer, synthetic_texts, tiny_config

LABELS = ["neg", "pos", "mid"]


def make_classifier(folder: Path, seed: int = 0) -> Path:
    """A saved (save_pretrained) tiny BERT classifier with named labels, as training would leave it."""
    import tensorflow as tf
    from transformers import TFBertForSequenceClassification

    tok = make_tokenizer(folder)
    config = tiny_config(len(tok), num_labels=len(LABELS), dropout=0.0)
    config.initializer_range = 0.5  # wide random weights: varied predictions, so label checks mean something
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {n: i for i, n in enumerate(LABELS)}
    tf.keras.utils.set_random_seed(seed)
    model = TFBertForSequenceClassification(config)
    model(model.dummy_inputs, training=False)
    model.save_pretrained(str(folder))
    return folder


def fake_model(folder: Path, **config: Any) -> Path:
    """A folder that passes the checks made before an engine starts (config, weights' header, tokenizer)
    without being loadable: for tests that must refuse or accept arguments without TensorFlow."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_type": "bert", "max_position_embeddings": 64, "id2label": dict(enumerate(LABELS)), **config}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "tf_model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 56)
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_classifier(tmp_path_factory.mktemp("tiny-classifier"))


def run_job(
    model: Path, inp: Path, out: Path, stop_at: int | None = None, *, chunk_rows: int = 20, **kw: Any
) -> list[Any]:
    """Run the prediction job in-process (stopping once ``stop_at`` rows are written); its events."""
    from engine.jobs.base import StopRequested
    from engine.predict.run import Hooks, Params, run_prediction

    events: list[Any] = []

    def boundary(rows: int) -> None:
        if stop_at is not None and rows >= stop_at:
            raise StopRequested("test")

    hooks = Hooks(emit=events.append, update_state=lambda **_: None, boundary=boundary)
    cfg = {"model": str(model), "input": str(inp), "output": str(out), "chunk_rows": chunk_rows, **kw}
    try:
        run_prediction(Params.from_config(cfg), hooks)
    except StopRequested:
        pass
    return events


def texts(n: int, seed: int = 1) -> list[str]:
    return [t for t, _ in synthetic_texts(n, LABELS, seed)]


def write_csv(path: Path, rows: list[Any], *, encoding: str = "utf-8", column: str = "text") -> Path:
    """A CSV with an id and a text column; None becomes an empty field."""
    import csv

    with open(path, "w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh)
        w.writerow(["id", column])
        for i, t in enumerate(rows):
            w.writerow([i, "" if t is None else t])
    return path


@pytest.fixture(autouse=True)
def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
