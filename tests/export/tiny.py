"""Tiny TF sequence classifiers of every architecture the hf export supports, for export tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Config arguments per model_type; the interop venv builds the same configs in PyTorch.
ARCHS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "tiny_archs.json").read_text())
# Parameter name -> shape of transformers v5's PyTorch class for each config above
# (written by tests/export/interop/pt_shapes.py in the interop venv; the slow test checks it is current).
PT_SHAPES = FIXTURES / "pt_state_shapes.json"

TEXTS = [
    "the food was great and the staff lovely",
    "awful phone, broken screen",
    "an okay day at the river",
    "i hate this order",
    "perfect",
    "we enjoy the music in the garden at night, the city is plain and the street is average",
]


def labels(n: int) -> dict[int, str]:
    return {i: name for i, name in enumerate(["neg", "pos", "mid", "other"][:n])}


def build(model_type: str, seed: int = 0, vocab_size: int | None = None) -> Any:
    """A TF ...ForSequenceClassification of ``model_type`` with random weights and labelled classes."""
    import tensorflow as tf
    from transformers import AutoConfig, TFAutoModelForSequenceClassification

    kwargs = dict(ARCHS[model_type])
    if vocab_size is not None:
        kwargs["vocab_size"] = vocab_size
    id2label = labels(kwargs["num_labels"])
    config = AutoConfig.for_model(
        model_type, **kwargs, id2label=id2label, label2id={v: k for k, v in id2label.items()}
    )
    tf.keras.utils.set_random_seed(seed)
    model = TFAutoModelForSequenceClassification.from_config(config)
    model(model.dummy_inputs, training=False)
    return model


def tf_logits(model: Any, tokenizer: Any, texts: list[str], max_length: int = 64) -> Any:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    return model(inputs, training=False).logits.numpy()


def make_bpe_tokenizer(folder: Path, texts: list[str], vocab_size: int = 1000) -> Any:
    """A byte-level BPE tokenizer trained on the texts, saved as a RobertaTokenizerFast (pad id 1)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(
        texts, vocab_size=vocab_size, min_frequency=1, special_tokens=special, show_progress=False
    )
    folder.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(folder))  # vocab.json, merges.txt
    tok = RobertaTokenizerFast(
        vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"), model_max_length=64
    )
    tok.save_pretrained(str(folder))
    return tok
