"""The hf export without torch: PyTorch names and layouts, checked against an independent numpy BERT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.errors import ModelError
from engine.export import FORMATS
from engine.export.hf import SUPPORTED, write_hf
from tests.export import tiny
from tests.support import numpy_bert
from tests.support.tiny import make_tiny_model


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """ftc's TF model of the tiny BERT with a fresh 3-class head, as engine/model.py loads it for training."""
    from engine.model import load_model, load_tokenizer

    folder = make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", fmt="tf")
    id2label = tiny.labels(3)
    model = load_model(folder, 3, id2label, {v: k for k, v in id2label.items()}, seed=1)
    for var in model.classifier.variables:  # a fresh head's logits are ~0.01: scale them to ~1
        var.assign(var * 50.0)
    return model, load_tokenizer(folder)


def numpy_logits(state: dict[str, np.ndarray], config: Any, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """BertForSequenceClassification's logits from PyTorch-named weights: encoder, tanh pooler, classifier."""
    hidden = numpy_bert.encode(state, config, ids, mask)
    pooled = np.tanh(hidden[:, 0] @ state["bert.pooler.dense.weight"].T + state["bert.pooler.dense.bias"])
    return np.asarray(pooled @ state["classifier.weight"].T + state["classifier.bias"])


def test_bert_export_matches_numpy_reference(tiny_bert: tuple[Any, Any], tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoTokenizer

    model, tokenizer = tiny_bert
    out = tmp_path / "hf"
    out.mkdir()
    info = write_hf(model, tokenizer, out)

    assert info["architecture"] == "BertForSequenceClassification"
    assert {"model.safetensors", "config.json", "tokenizer_config.json", "vocab.txt"} <= set(info["files"])
    assert all((out / name).is_file() for name in info["files"])
    assert (out / "model.safetensors").stat().st_mode == (out / "config.json").stat().st_mode
    with safe_open(str(out / "model.safetensors"), framework="np") as fh:
        assert fh.metadata() == {"format": "pt"}
    state = load_file(str(out / "model.safetensors"))
    assert info["tensors"] == len(state) == len(model.variables)
    # PyTorch layout: nn.Linear weights are [out, in], the transpose of the Keras kernel.
    assert state["bert.encoder.layer.0.intermediate.dense.weight"].shape == (64, 32)
    assert state["classifier.weight"].shape == (3, 32)

    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "neg", "1": "pos", "2": "mid"}
    assert config["label2id"] == {"neg": 0, "pos": 1, "mid": 2}
    assert not {"tf_legacy_loss", "use_bfloat16"} & set(config)

    texts = tiny.TEXTS
    exported_tok = AutoTokenizer.from_pretrained(str(out))
    batch = exported_tok(texts, padding=True, return_tensors="np")
    assert (batch["input_ids"] == tokenizer(texts, padding=True, return_tensors="np")["input_ids"]).all()
    expected = tiny.tf_logits(model, tokenizer, texts)
    got = numpy_logits(
        state, AutoConfig.from_pretrained(str(out)), batch["input_ids"], batch["attention_mask"]
    )
    diff = float(np.abs(got - expected).max())
    print(f"tiny BERT: numpy on the export vs ftc's TF model, max abs diff {diff:.2e}")
    assert diff < 1e-4, f"max abs diff {diff}"
    assert (got.argmax(-1) == expected.argmax(-1)).all()


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "electra", "roberta"])
def test_export_has_exactly_the_pytorch_parameters(
    model_type: str, tiny_bert: tuple[Any, Any], tmp_path: Path
) -> None:
    """Names and shapes equal the state_dict of transformers v5's PyTorch class for the same config."""
    from safetensors.numpy import load_file

    expected = json.loads(tiny.PT_SHAPES.read_text())[model_type]
    model = tiny.build(model_type)
    out = tmp_path / "hf"
    out.mkdir()
    info = write_hf(model, tiny_bert[1], out)  # any tokenizer: this test is about the weights
    assert info["architecture"] == SUPPORTED[model_type][0]
    got = {name: list(a.shape) for name, a in load_file(str(out / "model.safetensors")).items()}
    assert sorted(set(expected) - set(got)) == [], "parameters PyTorch expects that the export lacks"
    assert sorted(set(got) - set(expected)) == [], "parameters the export has that PyTorch does not"
    assert got == expected
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [SUPPORTED[model_type][0]]
    assert config["model_type"] == model_type


def test_every_supported_architecture_is_proven() -> None:
    """Each SUPPORTED model_type has a tiny model here and PyTorch shapes recorded from transformers v5."""
    assert set(SUPPORTED) == set(tiny.ARCHS) == set(json.loads(tiny.PT_SHAPES.read_text()))
    assert FORMATS == ("hf", "savedmodel")


def test_unsupported_architecture_refused_in_one_line(tmp_path: Path) -> None:
    import tensorflow as tf
    from transformers import AlbertConfig, TFAlbertForSequenceClassification

    tf.keras.utils.set_random_seed(0)
    config = AlbertConfig(
        vocab_size=100,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    model = TFAlbertForSequenceClassification(config)
    model(model.dummy_inputs, training=False)
    out = tmp_path / "hf"
    out.mkdir()
    with pytest.raises(ModelError) as err:
        write_hf(model, None, out)
    message = str(err.value)
    assert "\n" not in message
    assert "'albert'" in message and "bert, distilbert, electra, roberta" in message
    assert list(out.iterdir()) == []  # nothing written before the refusal
