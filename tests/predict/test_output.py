"""Prediction output on a tiny real model: per-row agreement, order, flags, metadata, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.predict.run import Hooks, Params, run_prediction
from engine.predict.writer import OutputError, cursor_path, read_metadata
from tests.predict.conftest import LABELS, texts, write_csv


def _run(model: Path, inp: Path, out: Path, **kw: Any) -> tuple[dict[str, Any], list[Any]]:
    events: list[Any] = []
    hooks = Hooks(emit=events.append, update_state=lambda **_: None, boundary=lambda _step: None)
    cfg = {"model": str(model), "input": str(inp), "output": str(out), **kw}
    return run_prediction(Params.from_config(cfg), hooks), events


def _one_by_one(model_dir: Path, items: list[str], max_length: int) -> np.ndarray:
    """The reference: each text alone, unpadded, through the model's plain call."""
    import tensorflow as tf

    from engine.model import load_for_prediction

    tok, model, _ = load_for_prediction(model_dir)
    out = []
    for t in items:
        enc = tok(t, truncation=True, max_length=max_length, return_tensors="tf")
        logits = model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], training=False
        ).logits
        out.append(tf.nn.softmax(logits, axis=-1).numpy()[0])
    return np.array(out)


def test_output_matches_one_text_at_a_time_in_input_order(tiny_classifier: Path, tmp_path: Path) -> None:
    items = texts(300, seed=5)
    items[17] = " ".join(["lovely"] * 200)  # truncated at max_length
    inp = write_csv(tmp_path / "in.csv", items)
    out = tmp_path / "out.h5"
    # A small budget and chunk size make many batches of several shapes and several chunks.
    summary, events = _run(tiny_classifier, inp, out, chunk_rows=64, token_budget=256, max_length=32)
    frame = pd.read_hdf(out)
    assert list(frame["row"]) == list(range(1, 301))
    assert list(frame.index) == list(range(300))
    ref = _one_by_one(tiny_classifier, items, 32)
    probs = frame[[f"prob_{x}" for x in LABELS]].to_numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-4)
    assert list(frame["label"]) == [LABELS[i] for i in ref.argmax(axis=1)]
    assert list(frame["label_id"]) == list(ref.argmax(axis=1))
    np.testing.assert_allclose(frame["score"], ref.max(axis=1), atol=1e-4)
    assert len(set(frame["label"])) > 1, "the test model should not predict one label only"
    assert summary["rows"] == 300
    assert summary["label_counts"] == frame["label"].value_counts().to_dict()
    progress = [e for e in events if type(e).__name__ == "ProgressReported"]
    assert progress[-1].done == 300 and progress[-1].detail.label_counts == summary["label_counts"]
    assert progress[-1].detail.last_rows[-1].row == 300


def test_empty_and_missing_texts_get_flagged_rows(tiny_classifier: Path, tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    rows = [{"text": "great phone"}, {"text": ""}, {"text": None}, {"other": 1}, {"text": "   "}, "not json"]
    inp.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + '\n{"text": "hate it"}\n'
    )
    out = tmp_path / "out.h5"
    summary, _ = _run(tiny_classifier, inp, out)
    frame = pd.read_hdf(out)
    assert list(frame["row"]) == [1, 2, 3, 4, 5, 6, 7]
    assert list(frame["flag"]) == [
        "",
        "empty_text",
        "missing_text",
        "missing_text",
        "empty_text",
        "malformed_row",
        "",
    ]
    flagged = frame[frame["flag"] != ""]
    assert (flagged["label_id"] == -1).all() and (flagged["label"] == "").all()
    assert flagged["score"].isna().all()
    assert frame.loc[frame["flag"] == "", "label"].isin(LABELS).all()
    assert summary["flag_counts"] == {"empty_text": 2, "missing_text": 2, "malformed_row": 1}


def test_metadata_and_cursor(tiny_classifier: Path, tmp_path: Path) -> None:
    inp = write_csv(tmp_path / "in.csv", texts(50))
    out = tmp_path / "out.h5"
    _run(tiny_classifier, inp, out, chunk_rows=20)
    meta = read_metadata(out)
    assert meta["labels"] == LABELS and meta["label2id"] == {"neg": 0, "pos": 1, "mid": 2}
    assert meta["model"]["path"] == str(tiny_classifier) and len(meta["model"]["fingerprint"]) == 16
    assert meta["input"]["path"] == str(inp) and meta["input"]["text_col"] == "text"
    cursor = json.loads(cursor_path(out).read_text())
    assert cursor["rows"] == 50 and cursor["done"] and cursor["position"]["row"] == 50


def test_existing_output_is_never_overwritten_without_overwrite(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    inp = write_csv(tmp_path / "in.csv", texts(30))
    out = tmp_path / "out.h5"
    _run(tiny_classifier, inp, out)
    before = out.read_bytes()
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        _run(tiny_classifier, inp, out)
    assert out.read_bytes() == before
    _run(tiny_classifier, inp, out, overwrite=True)
    assert len(pd.read_hdf(out)) == 30


def test_resume_refuses_another_input(tiny_classifier: Path, tmp_path: Path) -> None:
    inp = write_csv(tmp_path / "in.csv", texts(30))
    out = tmp_path / "out.h5"
    _run(tiny_classifier, inp, out)
    other = write_csv(tmp_path / "other.csv", texts(31))
    with pytest.raises(OutputError, match="another input"):
        _run(tiny_classifier, other, out, resume=True)


def test_a_bad_byte_late_in_the_file_fails_clearly_and_resume_can_switch_encoding(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    from engine.data.errors import EncodingProblem

    # Past the sampled start (64 KiB) and before the sampled middle, so only reading finds it.
    items = texts(6000, seed=2)
    items[1500] = "caf\xe9 cr\xe8me"
    inp = write_csv(tmp_path / "in.csv", items, encoding="latin-1")
    assert inp.stat().st_size > 6 * 64 * 1024
    out = tmp_path / "out.h5"
    with pytest.raises(EncodingProblem, match=r"row 1501, byte offset \d+: byte 0xe9 is not valid utf-8"):
        _run(tiny_classifier, inp, out, chunk_rows=500)
    done = json.loads(cursor_path(out).read_text())["rows"]
    assert done == 1500, "every chunk before the bad row stays written"
    _, events = _run(tiny_classifier, inp, out, chunk_rows=500, resume=True, encoding="latin-1")
    assert any("encoding iso8859-1" in getattr(e, "text", "") for e in events)
    frame = pd.read_hdf(out)
    assert list(frame["row"]) == list(range(1, 6001)) and (frame["flag"] == "").all()


def test_a_max_length_past_the_models_positions_fails_clearly(tiny_classifier: Path, tmp_path: Path) -> None:
    """The engine checks it too (a config written by hand, or a checkpoint whose base is a hub name)."""
    inp = write_csv(tmp_path / "in.csv", texts(5))
    # The test model has 64 position embeddings; past them TensorFlow would fail inside a gather.
    with pytest.raises(ValueError, match=r"--max-length 65 is more than the model can take \(64 tokens"):
        _run(tiny_classifier, inp, tmp_path / "out.h5", max_length=65)
    _run(tiny_classifier, inp, tmp_path / "ok.h5", max_length=64)
    assert len(pd.read_hdf(tmp_path / "ok.h5")) == 5
