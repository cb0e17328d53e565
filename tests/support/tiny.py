"""Tiny BERT models, tokenizers and learnable shard datasets for fast engine tests."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# Words that decide the label; the rest is filler the model must learn to ignore.
LABEL_WORDS = {
    "neg": ["awful", "terrible", "broken", "hate"],
    "pos": ["great", "lovely", "perfect", "enjoy"],
    "mid": ["okay", "average", "fine", "plain"],
}
# fmt: off
FILLER = [
    "the", "a", "this", "that", "it", "was", "is", "of", "on", "in", "at", "we", "they", "you", "i",
    "my", "our", "box", "phone", "food", "room", "staff", "day", "night", "train", "ticket", "screen",
    "price", "order", "store", "city", "window", "chair", "music", "street", "story", "paper", "garden",
    "river",
]
# fmt: on


def synthetic_texts(n: int, labels: list[str], seed: int) -> list[tuple[str, int]]:
    """n (text, label id) pairs whose label is given by a keyword, with varied lengths."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(len(labels))
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 24))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(LABEL_WORDS[labels[label]]))
        rows.append((" ".join(words), label))
    return rows


def write_dataset(
    data_dir: Path,
    *,
    n_train: int = 256,
    n_validation: int = 64,
    n_test: int = 64,
    labels: tuple[str, ...] = ("neg", "pos"),
    shard_rows: int = 100,
    seed: int = 0,
) -> Path:
    """Write prepared shards and manifest.json in the layout engine/data/prepare.py produces."""
    import numpy as np
    import pandas as pd

    data_dir.mkdir(parents=True, exist_ok=True)
    names = list(labels)
    splits: dict[str, Any] = {}
    digest = hashlib.sha256()
    row_id = 0
    for offset, (split, n) in enumerate((("train", n_train), ("validation", n_validation), ("test", n_test))):
        rows = synthetic_texts(n, names, seed * 1000 + offset)
        (data_dir / split).mkdir(exist_ok=True)
        shards: list[dict[str, Any]] = []
        for i, start in enumerate(range(0, n, shard_rows)):
            chunk = rows[start : start + shard_rows]
            frame = pd.DataFrame(
                {
                    "row": np.arange(row_id, row_id + len(chunk), dtype=np.int64),
                    "text": [t for t, _ in chunk],
                    "label": np.array([lab for _, lab in chunk], dtype=np.int32),
                }
            )
            row_id += len(chunk)
            rel = f"{split}/shard-{i:05d}.h5"
            frame.to_hdf(data_dir / rel, key="rows", format="table")
            digest.update(frame.to_json().encode())
            counts = {names[k]: int(v) for k, v in frame["label"].value_counts().sort_index().items()}
            shards.append({"path": rel, "rows": len(chunk), "label_counts": counts})
        totals = {name: sum(s["label_counts"].get(name, 0) for s in shards) for name in names}
        splits[split] = {"rows": n, "label_counts": totals, "shards": shards}
    manifest = {
        "version": 1,
        "labels": names,
        "label2id": {name: i for i, name in enumerate(names)},
        "seed": seed,
        "shard_rows": shard_rows,
        "splits": splits,
        "data_fingerprint": digest.hexdigest()[:16],
    }
    (data_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return data_dir


def make_tokenizer(folder: Path, texts: list[str] | None = None, vocab_size: int = 1000) -> Any:
    """Train a WordPiece tokenizer on the texts and save it as a BertTokenizerFast."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    if texts is None:
        texts = [t for t, _ in synthetic_texts(500, list(LABEL_WORDS), 123)]
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1, show_progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    wp.save_model(str(folder))  # vocab.txt
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True, model_max_length=64)
    tok.save_pretrained(str(folder))
    return tok


def tiny_config(vocab_size: int, num_labels: int = 2, dropout: float = 0.1) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=num_labels,
    )


def make_tiny_model(folder: Path, *, fmt: str = "tf", seed: int = 0, dropout: float = 0.1) -> Path:
    """A tiny pretrained-looking BERT folder: tokenizer plus tf_model.h5 or PyTorch-style safetensors.

    The "pt" variant holds only the encoder with PyTorch names and layouts, like a hub
    sentence-embedding model, so the loader must convert it and add a fresh head.
    """
    import tensorflow as tf
    from transformers import TFBertForSequenceClassification

    tok = make_tokenizer(folder)
    config = tiny_config(len(tok), dropout=dropout)
    tf.keras.utils.set_random_seed(seed)
    model = TFBertForSequenceClassification(config)
    model(model.dummy_inputs, training=False)
    if fmt == "tf":
        model.save_pretrained(str(folder))
    elif fmt == "pt":
        write_pt_safetensors(model, folder / "model.safetensors", drop_head=True)
        config.architectures = ["BertModel"]
        config.save_pretrained(str(folder))
    else:
        raise ValueError(fmt)
    return folder


def pt_state_dict(model: Any, *, drop_head: bool) -> dict[str, Any]:
    """The model's weights under PyTorch BertModel names and layouts (kernels transposed)."""
    import numpy as np
    from transformers.modeling_tf_pytorch_utils import (
        TransposeType,
        convert_tf_weight_name_to_pt_weight_name,
    )

    state = {}
    for var in model.variables:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(var.name, tf_weight_shape=var.shape)
        array = var.numpy()
        if transpose is TransposeType.SIMPLE:
            array = array.T
        if drop_head:
            if name.startswith("classifier"):
                continue
            name = name.removeprefix("bert.")
        state[name] = np.ascontiguousarray(array)
    return state


def write_pt_safetensors(model: Any, path: Path, *, drop_head: bool) -> dict[str, Any]:
    from safetensors.numpy import save_file

    state = pt_state_dict(model, drop_head=drop_head)
    save_file(state, str(path), metadata={"format": "pt"})
    return state
