"""Benchmark (not a test): bfloat16 against float32 prediction on this CPU, and why.

Usage::

    .venv/bin/python bench/bf16_predict.py                  # 3,000 tweets, 3 rounds
    .venv/bin/python bench/bf16_predict.py --write          # and write bench/results/bf16_predict.md
    .venv/bin/python bench/bf16_predict.py --texts 500 --rounds 1 --fit 300   # quick

One process, one model (the real MiniLM with a 3-class head fitted by logistic regression on
the float32 pooled features of other tweets, so labels are not coin flips), the same batches:

1. **forward**: the prediction forward alone over ftc's batches, three builds alternating in
   each round: float32; bfloat16 as ftc ran it before (Keras ``mixed_bfloat16``, every
   activation in bfloat16); bfloat16 now (``engine.precision.float32_activations``).
2. **end to end**: ftc's prediction job (``engine.predict.run``: CSV in chunks, tokenizing,
   batching, HDF5 with its cursor; model loading excluded) in float32 and bfloat16,
   alternating f, b, b, f, ...; labels compared row by row.
3. **where the time goes**: per-op time of one forward of a typical batch in each build, from
   TensorFlow's profiler (summed over threads, so it adds up to more than the wall time).
"""

from __future__ import annotations

import argparse
import collections
import glob
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402
from bench.predict_bench import MAX_LENGTH, MINILM, TWEETS, predict_file, write_input  # noqa: E402

# bench/results/bf16.md is the analysis of one run (kernels, profile, what was tried); --write
# writes a run's figures beside it, so a new run never overwrites the analysis.
RESULTS = REPO / "bench" / "results" / "bf16_predict.md"
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
BUILDS = ("float32", "bfloat16 before", "bfloat16 now")


def tweets(n: int, fit: int, seed: int = 0) -> tuple[list[str], list[str], list[int]]:
    """``n`` tweets to predict and ``fit`` others with labels, shuffled (the file is sorted by label)."""
    import pandas as pd

    frame = pd.read_csv(TWEETS, encoding="latin-1", keep_default_na=False).sample(frac=1.0, random_state=seed)
    texts = [str(t) for t in frame["text"]]
    ids = {name: i for i, name in LABELS.items()}
    labels = [ids[str(s)] for s in frame["sentiment"]]
    return texts[:n], texts[n : n + fit], labels[n : n + fit]


def build(kind: str, source: Path = MINILM) -> Any:
    """The MiniLM classifier under the build ``kind`` (one of BUILDS)."""
    from engine.model import load_model
    from engine.precision import float32_activations
    from engine.predict.models import precision_policy

    with precision_policy("float32" if kind == "float32" else "bfloat16"):
        model = load_model(source, 3, LABELS, {v: k for k, v in LABELS.items()}, seed=0)
    if kind == "bfloat16 now":
        float32_activations(model)
    return model


def fit_head(
    model: Any, tokenizer: Any, texts: list[str], labels: list[int], max_length: int = MAX_LENGTH
) -> tuple[Any, Any]:
    """A logistic-regression head on the float32 pooled features: (kernel, bias) for the classifier."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="np")
    main = getattr(model, model.base_model_prefix)
    feats = []
    for start in range(0, len(texts), 128):
        part = {k: v[start : start + 128] for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        feats.append(main(**part, training=False).pooler_output.numpy())
    lr = LogisticRegression(max_iter=2000, C=1.0).fit(np.concatenate(feats), labels)
    return lr.coef_.T.astype("float32"), lr.intercept_.astype("float32")


def forward_rounds(models: dict[str, Any], batches: list[Any], rounds: int) -> dict[str, dict[str, Any]]:
    """Seconds per pass over ``batches`` for each build, builds alternating (order rotated each round)."""
    import numpy as np

    from engine.predict.batching import make_forward

    forwards = {k: make_forward(m) for k, m in models.items()}
    out: dict[str, dict[str, Any]] = {k: {"seconds": []} for k in models}
    for fwd in forwards.values():  # trace and warm up
        fwd(batches[0].input_ids, batches[0].attention_mask)
    order = list(models)
    for r in range(rounds):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            labels = []
            start = time.perf_counter()
            for b in batches:
                labels.append(
                    np.argmax(forwards[name](b.input_ids, b.attention_mask), axis=1)[: len(b.index)]
                )
            out[name]["seconds"].append(time.perf_counter() - start)
            out[name]["labels"] = np.concatenate(labels)
    return out


def op_profile(model: Any, batch: Any, reps: int = 3) -> dict[str, float]:
    """Milliseconds per forward by TensorFlow op type (all threads summed), from the profiler."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from engine.predict.batching import make_forward

    fwd = make_forward(model)
    fwd(batch.input_ids, batch.attention_mask)
    with tempfile.TemporaryDirectory() as d:
        tf.profiler.experimental.start(d)
        for _ in range(reps):
            fwd(batch.input_ids, batch.attention_mask)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(glob.glob(f"{d}/**/*.xplane.pb", recursive=True)[0]).read_bytes())
    totals: collections.Counter[str] = collections.Counter()
    for plane in space.planes:
        if "host" not in plane.name.lower():
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                op = name.rsplit(":", 1)[1] if ":" in name else ""
                kernel = op[:1].isupper() or op.startswith("_Mkl")
                if kernel and op not in ("Run", "Process", "PartitionedCall", "StatefulPartitionedCall"):
                    totals[op] += event.duration_ps / 1e9 / reps
    return dict(totals)


def end_to_end(
    folder: Path, texts: list[str], work: Path, rounds: int, max_length: int = MAX_LENGTH
) -> dict[str, dict[str, Any]]:
    """ftc's prediction job per precision, alternating f, b, b, f, ...; texts/s and the outputs."""
    import pandas as pd

    inp = write_input(work / "input.csv", texts)
    out: dict[str, dict[str, Any]] = {p: {"seconds": []} for p in ("float32", "bfloat16")}
    for r in range(rounds):
        for precision in ("float32", "bfloat16") if r % 2 == 0 else ("bfloat16", "float32"):
            h5 = work / f"out-{precision}.h5"
            res = predict_file(folder, inp, h5, None, precision, max_length)
            out[precision]["seconds"].append(res["seconds"])
            out[precision]["padding"] = 1 - res["real_tokens"] / res["padded_tokens"]
            out[precision]["labels"] = pd.read_hdf(h5)["label"].to_numpy()
    return out


def report(args: argparse.Namespace, fwd: dict[str, Any], e2e: dict[str, Any], prof: dict[str, Any]) -> str:
    n = args.texts
    base = statistics.median(fwd["float32"]["seconds"])
    lines = [
        "# bfloat16 against float32 prediction on a CPU",
        "",
        f"{n:,} tweets (shuffled, seed 0), {args.model.name} (MiniLM unless --model) with a 3-class "
        f"head fitted by logistic regression on the float32 pooled features of {args.fit:,} other tweets; "
        f"max_length {args.max_length}, "
        "ftc's batches (token budget 8,192). One process; builds alternate within each round and the "
        f"order rotates ({args.rounds} rounds, median shown).",
        "",
        "## The forward alone",
        "",
        "| build | seconds | texts/s | vs float32 | labels agreeing with float32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in BUILDS:
        s = statistics.median(fwd[name]["seconds"])
        agree = (fwd[name]["labels"] == fwd["float32"]["labels"]).mean()
        lines.append(f"| {name} | {s:.2f} | {n / s:,.0f} | {base / s:.2f}x | {agree:.2%} |")
    e_base = statistics.median(e2e["float32"]["seconds"])
    lines += [
        "",
        "## End to end (ftc's prediction job, model loading excluded)",
        "",
        "| precision | seconds | texts/s | vs float32 | labels agreeing with float32 | padding |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("float32", "bfloat16"):
        s = statistics.median(e2e[name]["seconds"])
        agree = (e2e[name]["labels"] == e2e["float32"]["labels"]).mean()
        pad = e2e[name]["padding"]
        lines.append(f"| {name} | {s:.2f} | {n / s:,.0f} | {e_base / s:.2f}x | {agree:.2%} | {pad:.1%} |")
    lines += ["", "seconds per round: " + "; ".join(f"{k} {v['seconds']}" for k, v in {**fwd, **e2e}.items())]
    lines += [
        "",
        f"## Where one forward's time goes ({prof['shape']}; ms per forward, threads summed)",
        "",
        "| op | " + " | ".join(BUILDS) + " |",
        "|---|" + "---:|" * len(BUILDS),
    ]
    ops = sorted(prof["float32"], key=lambda k: -max(prof[b].get(k, 0.0) for b in BUILDS))
    for op in ops[:12]:
        lines.append(f"| {op} | " + " | ".join(f"{prof[b].get(op, 0.0):.1f}" for b in BUILDS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--fit", type=int, default=1500, help="tweets the head is fitted on")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--model", type=Path, default=MINILM, help="an encoder folder (smoke test: a tiny one)"
    )
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH, help="tokens per text (tiny model: 64)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    load_before = load_note()

    from engine.model import load_tokenizer
    from engine.predict.batching import batches as make_batches
    from engine.predict.batching import tokenize

    texts, fit_texts, fit_labels = tweets(args.texts, args.fit)
    tokenizer = load_tokenizer(args.model)
    models = {name: build(name, args.model) for name in BUILDS}
    kernel, bias = fit_head(models["float32"], tokenizer, fit_texts, fit_labels, args.max_length)
    for model in models.values():
        model.classifier.set_weights([kernel, bias])
    ids = tokenize(tokenizer, texts, args.max_length)
    pad = tokenizer.pad_token_id or 0
    batches = list(make_batches(ids, pad_id=pad, token_budget=8192, multiple=2, max_length=args.max_length))
    fwd = forward_rounds(models, batches, args.rounds)
    print({k: v["seconds"] for k, v in fwd.items()}, flush=True)
    typical = max(batches, key=lambda b: b.input_ids.size)
    prof: dict[str, Any] = {b: op_profile(models[b], typical) for b in BUILDS}
    prof["shape"] = "x".join(str(d) for d in typical.input_ids.shape)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        models["float32"].save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        del models
        e2e = end_to_end(folder, texts, Path(tmp), max(2, args.rounds + args.rounds % 2), args.max_length)
    text = report(args, fwd, e2e, prof)
    text += f"\nmachine: {describe()}\n{load_before.replace('when written', 'before')}\n{load_note()}\n"
    text += f"command: `python bench/bf16_predict.py {' '.join(sys.argv[1:] if argv is None else argv)}`\n"
    print(text)
    if args.write:
        RESULTS.write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    main()
