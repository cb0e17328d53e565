"""The runs bench/train_throughput.py compares, each meant for a fresh child process.

- ``ftc_child``: ftc's real ``Trainer``, with the journal, state.json and periodic checkpoints
  (overhead on) or with none of them (overhead off). With overhead on, it also accounts the
  time the training thread spends inside each of them, step by step.
- ``plain_child``: the seed's approach (pad to max_length, tf.data, ``model.compile`` + ``model.fit``).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

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
    saves: dict[int, float] = {}  # step -> when its periodic checkpoint_saved was emitted (written)
    journal = Journal(paths.events, paths.id) if overhead else None
    store = StateStore(paths) if overhead else None
    # (step, seconds) the training thread spent in each part of the overhead; the checkpoint
    # writer thread's own calls are not counted (they do not hold the loop up).
    spent: dict[str, list[tuple[int, float]]] = {"journal": [], "state": [], "checkpoint": []}
    at = {"step": 0}
    loop_thread = threading.current_thread()

    def timed(kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not loop_thread:
                return fn(*args, **kwargs)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[kind].append((at["step"], time.perf_counter() - t))

        return call

    append = timed("journal", journal.append) if journal is not None else None

    def emit(body: protocol._Body) -> Any:
        now = time.perf_counter()
        if isinstance(body, protocol.StepEnded):
            marks[body.step] = now
            at["step"] = body.step
            if body.step >= steps:
                control.request_stop("benchmark done")  # ends at this step's boundary, after timing
        elif isinstance(body, protocol.CheckpointSaved) and body.reason == "periodic":
            saves[body.step] = now
        return append(body, parent=control.cause) if append is not None else None

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

        def save(self, reason: str, *, background: bool = False) -> Path:
            if reason != "periodic":
                return super().save(reason, background=background)
            return timed("checkpoint", super().save)(reason, background=background)

    ctx = JobContext(
        paths=paths,
        config=config,
        resume=False,
        control=control,
        emit=emit,
        update_state=timed("state", store.update) if store is not None else _ignore,
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
        "spent": spent,
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
