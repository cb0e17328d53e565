"""A TensorFlow SavedModel of a trained classifier: a ``serving_default`` signature and the label map.

The export holds the model's weights and one traced inference graph, nothing of transformers or
Keras: ``tf.saved_model.load`` and TF Serving run it with TensorFlow alone. Layout::

    saved_model.pb, fingerprint.pb
    variables/                    the weights (float32, as trained)
    assets/labels.txt             one label per line, in class-id order (TF Serving's asset convention)

Signatures:

- ``serving_default``: ``input_ids`` and ``attention_mask`` (int32, [batch, seq]) ->
  ``probabilities`` (float32, [batch, num_labels], softmax), ``label_id`` (int64, [batch]) and
  ``label`` (string, [batch], looked up in assets/labels.txt).
- ``labels``: no inputs -> ``labels`` (string, [num_labels]), the label map for a client.

The loaded object also has ``labels`` (a string variable), ``max_length`` (the longest input, in
tokens, the model was trained on) and ``labels_file`` (the asset).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from engine.errors import ModelError, OutputError, os_error_text

LABELS_ASSET = "labels.txt"
SIGNATURE = "serving_default"
LABELS_SIGNATURE = "labels"
INPUTS = {"input_ids": "int32 [batch, seq]", "attention_mask": "int32 [batch, seq]"}
OUTPUTS = {
    "probabilities": "float32 [batch, num_labels]",
    "label_id": "int64 [batch]",
    "label": "string [batch]",
}


def _check_labels(labels: list[str], num_labels: int) -> None:
    if len(labels) != num_labels:
        raise ModelError(
            f"the model has {num_labels} classes but {len(labels)} labels were given; "
            "export a checkpoint together with its own session's labels"
        )
    for i, name in enumerate(labels):
        if not name or "\n" in name or "\r" in name:
            raise ModelError(
                f"label {i} ({name!r}) is empty or holds a line break, so assets/{LABELS_ASSET} "
                "(one label per line) cannot hold it; rename the label in the data and train again"
            )
    if len(set(labels)) != len(labels):
        raise ModelError("the labels are not unique; rename the duplicate labels in the data and train again")


def _build_module(model: Any, labels: list[str], labels_path: Path, max_length: int) -> Any:
    """A tf.Module whose only state is the model's weights, the label asset and two small variables."""
    import tensorflow as tf

    module = tf.Module()
    # The weights alone are tracked, not the Keras model: saving it would trace Keras' own call
    # functions and write Keras metadata that only a Keras loader reads.
    module.weights = list(model.weights)
    module.labels_file = tf.saved_model.Asset(str(labels_path))
    module.labels = tf.Variable(labels, dtype=tf.string, trainable=False, name="labels")
    module.max_length = tf.Variable(max_length, dtype=tf.int32, trainable=False, name="max_length")
    # The TF Serving way to read a vocabulary: a table initialised from the asset at load time.
    module.label_table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            module.labels_file,
            key_dtype=tf.int64,
            key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string,
            value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
        ),
        default_value="",
    )

    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec])
    def serve(input_ids: Any, attention_mask: Any) -> dict[str, Any]:
        # training=False: dropout off, as in prediction. Under a mixed-precision policy the logits
        # are float16/bfloat16: the softmax is taken in float32.
        logits = model(input_ids=input_ids, attention_mask=attention_mask, training=False).logits
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            "probabilities": probabilities,
            "label_id": label_id,
            "label": module.label_table.lookup(label_id),
        }

    @tf.function(input_signature=[])
    def label_map() -> dict[str, Any]:
        return {"labels": tf.identity(module.labels)}

    module.serve = serve
    module.label_map = label_map
    return module


def write_savedmodel(model: Any, labels: list[str], out: Path, max_length: int) -> dict[str, Any]:
    """Write ``model`` (a transformers TF sequence classifier) as a SavedModel into the empty folder ``out``.

    Returns what the model card says about it: signatures, their inputs and outputs, the asset.
    """
    import tensorflow as tf

    num_labels = int(model.config.num_labels)
    _check_labels(labels, num_labels)
    out = Path(out)
    if not out.is_dir() or any(out.iterdir()):
        raise OutputError(f"{out}: must be an existing empty folder to write the SavedModel into")
    try:
        with tempfile.TemporaryDirectory(prefix="ftc-labels-") as tmp:
            labels_path = Path(tmp) / LABELS_ASSET
            labels_path.write_text("".join(f"{name}\n" for name in labels), encoding="utf-8")
            module = _build_module(model, labels, labels_path, max_length)
            signatures = {
                SIGNATURE: module.serve.get_concrete_function(),
                LABELS_SIGNATURE: module.label_map.get_concrete_function(),
            }
            tf.saved_model.save(module, str(out), signatures=signatures)
        _sync_tree(out)
    except OSError as exc:
        raise OutputError(os_error_text(exc, "export again")) from None
    return {
        "format": "savedmodel",
        "signatures": [SIGNATURE, LABELS_SIGNATURE],
        "inputs": dict(INPUTS),
        "outputs": dict(OUTPUTS),
        "labels_asset": f"assets/{LABELS_ASSET}",
        "num_labels": num_labels,
        "max_length": max_length,
    }


def _sync_tree(root: Path) -> None:
    """fsync every file and folder TensorFlow wrote, so the folder can be renamed into place."""
    from engine.fsio import fsync

    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync(Path(folder) / name)
        fsync(Path(folder))
