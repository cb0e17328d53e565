"""The SavedModel export: loaded in a fresh process with TensorFlow alone, it gives ftc's probabilities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.errors import ModelError, OutputError
from tests.support.tiny import make_tiny_model, synthetic_texts

# Names with spaces and accents: the asset and the label output must keep them byte for byte.
LABELS = ["négatif", "very good", "mid"]
MAX_LENGTH = 48

# Run in a fresh interpreter where importing transformers or tf_keras fails, so the export must load
# and run with TensorFlow alone. (TensorFlow's own __init__ looks for Keras 3, so that one is not
# blocked; the report lists the top-level packages that loading and running imported.)
LOADER = textwrap.dedent(
    """
    import json, sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("transformers", "tf_keras"):
                raise ImportError(f"{name} is blocked: the export must run with TensorFlow alone")

    sys.meta_path.insert(0, Block())
    import numpy as np
    import tensorflow as tf

    export, inputs, result = sys.argv[1:4]
    before = set(sys.modules)  # importing tensorflow imports Keras 3 itself when it is installed
    loaded = tf.saved_model.load(export)
    serve = loaded.signatures["serving_default"]
    batch = np.load(inputs)
    ids, mask = tf.constant(batch["input_ids"]), tf.constant(batch["attention_mask"])
    out = serve(input_ids=ids, attention_mask=mask)
    np.savez(
        result,
        probabilities=out["probabilities"].numpy(),
        label_id=out["label_id"].numpy(),
        label=np.array([x.decode("utf-8") for x in out["label"].numpy()]),
    )

    def spec(s):
        return {"dtype": s.dtype.name, "shape": [None if d is None else int(d) for d in s.shape.as_list()]}

    args, kwargs = serve.structured_input_signature
    with open(loaded.labels_file.asset_path.numpy().decode(), encoding="utf-8") as fh:
        asset_text = fh.read()
    report = {
        "signatures": sorted(loaded.signatures),
        "positional_inputs": len(args),
        "inputs": {k: spec(v) for k, v in kwargs.items()},
        "outputs": {k: spec(v) for k, v in serve.structured_outputs.items()},
        "labels_signature": [x.decode() for x in loaded.signatures["labels"]()["labels"].numpy()],
        "labels_variable": [x.decode() for x in loaded.labels.numpy()],
        "max_length": int(loaded.max_length.numpy()),
        "asset_path": loaded.labels_file.asset_path.numpy().decode(),
        "asset_text": asset_text,
        "transformers_loaded": "transformers" in sys.modules,
        "imported_by_load": sorted({m.split(".")[0] for m in set(sys.modules) - before}),
    }
    with open(result + ".json", "w") as fh:
        json.dump(report, fh)
    """
)


def _tiny_classifier(folder: Path) -> Path:
    """make_tiny_model's BERT with three named labels (the loader gives it a new head)."""
    make_tiny_model(folder, dropout=0.1)  # dropout on: the export must switch it off
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(LABELS)}
    config["label2id"] = {name: i for i, name in enumerate(LABELS)}
    config["num_labels"] = len(LABELS)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def _load(folder: Path, precision: str = "float32") -> tuple[Any, Any, list[str]]:
    """The model as ftc's prediction loads it (engine/predict/models.py), then given wider weights.

    Freshly initialised weights (std 0.02) put every text in one class with nearly equal
    probabilities; wider seeded ones and a centred head vary them as a trained model's would.
    """
    from engine.predict.models import load

    model, tokenizer, id2label, _ = load({"kind": "folder", "path": str(folder)}, precision)
    rng = np.random.default_rng(0)
    for var in model.weights:
        if "kernel" in var.name or "embeddings" in var.name:
            var.assign(rng.normal(0.0, 0.2, var.shape).astype(var.dtype.as_numpy_dtype))
    # Centre the logits on these texts, so that no class wins them all.
    logits = model(**_batch(tokenizer), training=False).logits.numpy().astype(np.float32)
    model.classifier.bias.assign(-logits.mean(axis=0))
    return model, tokenizer, [id2label[i] for i in range(len(id2label))]


def _batch(tokenizer: Any, n: int = 40) -> dict[str, np.ndarray]:
    texts = [t for t, _ in synthetic_texts(n, ["neg", "pos", "mid"], seed=7)]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
    assert (enc["attention_mask"] == 0).any(), "texts of one length: padding would go untested"
    return {k: enc[k].astype(np.int32) for k in ("input_ids", "attention_mask")}


def _ftc_probabilities(model: Any, batch: dict[str, np.ndarray]) -> np.ndarray:
    import tensorflow as tf

    logits = model(**batch, training=False).logits
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Export once, move the folder (as ftc export renames it into place), load it in a fresh process."""
    from engine.export.savedmodel import write_savedmodel

    root = tmp_path_factory.mktemp("savedmodel")
    model, tokenizer, labels = _load(_tiny_classifier(root / "model"))
    assert labels == LABELS
    (root / "tmp-export").mkdir()
    info = write_savedmodel(model, labels, root / "tmp-export", MAX_LENGTH)
    os.rename(root / "tmp-export", root / "export")
    batch = _batch(tokenizer)
    np.savez(root / "inputs.npz", **batch)
    result = root / "result.npz"
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, str(root / "export"), str(root / "inputs.npz"), str(result)],
        capture_output=True,
        text=True,
        timeout=300,
        # A user's plain environment: no TF_USE_LEGACY_KERAS (set here for transformers' TF classes).
        env={
            **{k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"},
            "TF_CPP_MIN_LOG_LEVEL": "3",
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = dict(np.load(result))
    report = json.loads(Path(str(result) + ".json").read_text())
    return {
        "root": root,
        "info": info,
        "expected": _ftc_probabilities(model, batch),
        "loaded": loaded,
        "report": report,
    }


def test_probabilities_and_labels_match_ftc_model(exported: dict[str, Any]) -> None:
    expected, loaded = exported["expected"], exported["loaded"]
    got = loaded["probabilities"]
    assert got.dtype == np.float32 and got.shape == expected.shape == (40, len(LABELS))
    diff = float(np.abs(got - expected).max())
    print(f"max abs diff of probabilities, SavedModel vs ftc's TF model: {diff:.3g}")
    assert diff < 1e-5
    assert len(set(expected.argmax(axis=1))) >= 2, "one class for every text: label ids would prove little"
    assert (loaded["label_id"] == expected.argmax(axis=1)).all()
    assert list(loaded["label"]) == [LABELS[i] for i in loaded["label_id"]]
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-6)


def test_loads_without_transformers_or_keras(exported: dict[str, Any]) -> None:
    report = exported["report"]
    assert report["transformers_loaded"] is False
    imported = set(report["imported_by_load"])
    assert not imported & {"transformers", "tf_keras", "keras", "torch"}, imported


def test_signature_names_dtypes_and_shapes(exported: dict[str, Any]) -> None:
    report = exported["report"]
    assert report["signatures"] == ["labels", "serving_default"]
    assert report["positional_inputs"] == 0
    assert report["inputs"] == {
        "input_ids": {"dtype": "int32", "shape": [None, None]},
        "attention_mask": {"dtype": "int32", "shape": [None, None]},
    }
    assert report["outputs"] == {
        "probabilities": {"dtype": "float32", "shape": [None, len(LABELS)]},
        "label_id": {"dtype": "int64", "shape": [None]},
        "label": {"dtype": "string", "shape": [None]},
    }
    info = exported["info"]
    assert info["signatures"] == ["serving_default", "labels"]
    assert set(info["inputs"]) == set(report["inputs"]) and set(info["outputs"]) == set(report["outputs"])


def test_label_map_asset_reads_back_in_order(exported: dict[str, Any]) -> None:
    report, root = exported["report"], exported["root"]
    asset = root / "export" / exported["info"]["labels_asset"]
    assert asset.read_text(encoding="utf-8").splitlines() == LABELS
    # Resolved inside the folder where it lies now, not where it was written.
    assert Path(report["asset_path"]) == asset
    assert report["asset_text"].splitlines() == LABELS
    assert report["labels_signature"] == LABELS == report["labels_variable"]
    assert report["max_length"] == MAX_LENGTH
    assert not (root / "export" / "keras_metadata.pb").exists(), (
        "Keras metadata: a Keras loader would be needed"
    )


def test_bfloat16_model_exports_float32_outputs(exported: dict[str, Any], tmp_path: Path) -> None:
    """A model built under --precision bfloat16 exports float32 probabilities close to its own."""
    import tensorflow as tf

    from engine.export.savedmodel import write_savedmodel

    model, tokenizer, labels = _load(exported["root"] / "model", precision="bfloat16")
    (tmp_path / "bf16").mkdir()
    write_savedmodel(model, labels, tmp_path / "bf16", MAX_LENGTH)
    batch = _batch(tokenizer, n=16)
    out = tf.saved_model.load(str(tmp_path / "bf16")).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in batch.items()}
    )
    got = out["probabilities"].numpy()
    assert got.dtype == np.float32
    # bfloat16 keeps about 3 significant digits; graph and eager mode round in different places.
    assert np.abs(got - _ftc_probabilities(model, batch)).max() < 1e-2
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_refuses_a_folder_that_is_not_empty_and_wrong_labels(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    from engine.export.savedmodel import write_savedmodel

    model, _, labels = _load(exported["root"] / "model")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="existing empty folder"):
        write_savedmodel(model, labels, busy, MAX_LENGTH)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"] and (busy / "keep.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="3 classes but 2 labels"):
        write_savedmodel(model, labels[:2], empty, MAX_LENGTH)
    with pytest.raises(ModelError, match="line break"):
        write_savedmodel(model, ["a", "b\nc", "d"], empty, MAX_LENGTH)
    assert list(empty.iterdir()) == []
