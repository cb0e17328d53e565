"""The prediction pipeline: read chunks, tokenize ahead in a thread, run token-budget batches, append."""

from __future__ import annotations

import queue
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine import protocol
from engine.model import position_limit
from engine.predict import batching, models
from engine.predict.progress import LAST_ROWS, STAGE, Tracker
from engine.predict.shards import Shard, check_same_shard, parse_shard, shard_meta
from engine.predict.source import (
    InputChunk,
    Position,
    count_records,
    input_fingerprint,
    iter_input,
    open_input,
)
from engine.predict.writer import (
    DamagedOutput,
    OutputError,
    PredictionWriter,
    check_not_an_input,
    check_same_run,
)

DEFAULT_CHUNK_ROWS = 8192
DEFAULT_MAX_LENGTH = 512
PROGRESS_EVERY_S = 2.0
# Settings that change which rows land in which batch, hence the float results: a resume keeps them.
_PINNED = ("chunk_rows", "token_budget", "max_length", "multiple")


@dataclass
class Params:
    """The ``[predict]`` table of a session's config."""

    model: dict[str, str]
    input: str
    output: str
    text_col: str | None = None
    encoding: str | None = None
    format: str | None = None
    hdf_key: str | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    token_budget: int = batching.DEFAULT_TOKEN_BUDGET
    max_length: int | None = None
    multiple: int | None = None  # None: batching.default_multiple() for the devices present
    resume: bool = False
    overwrite: bool = False
    # bfloat16: the model computes under Keras 'mixed_bfloat16'; probabilities are still float32.
    precision: str = "float32"
    # "K/N": predict only shard K of N of the input's rows (engine.predict.shards); None: all of them.
    shard: str | None = None

    @classmethod
    def from_config(cls, cfg: dict[str, Any], sessions_root: Path | None = None) -> Params:
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(cfg) - known)
        if extra:
            raise ValueError(
                f"[predict]: unknown setting(s) {', '.join(extra)}; known: {', '.join(sorted(known))}"
            )
        for need in ("model", "input", "output"):
            if not cfg.get(need):
                raise ValueError(f"[predict] {need}: missing; give the {need}")
        values = dict(cfg)
        if isinstance(values["model"], str):
            values["model"] = models.resolve_model(values["model"], sessions_root or Path("sessions"))
        for name in ("chunk_rows", "token_budget", "multiple", "max_length"):
            if values.get(name) is not None and int(values[name]) <= 0:
                raise ValueError(f"[predict] {name}: must be a positive number, got {values[name]!r}")
        if values.get("shard") is not None:
            values["shard"] = str(parse_shard(str(values["shard"])))
        if values.get("precision", "float32") not in models.PRECISIONS:
            raise ValueError(
                f"[predict] precision: {values['precision']!r} is not one of {', '.join(models.PRECISIONS)}"
            )
        return cls(**values)


@dataclass
class Prepared:
    """One chunk, tokenized and batched ahead of the model."""

    chunk: InputChunk
    batches: list[batching.Batch] = field(default_factory=list)
    truncated: int = 0  # texts longer than max_length, cut to it


@dataclass
class Hooks:
    """How the pipeline talks to its host (the engine's JobContext, or a test)."""

    emit: Callable[[Any], Any]
    update_state: Callable[..., Any]
    boundary: Callable[[int], None]


def _log(hooks: Hooks, level: str, text: str) -> None:
    hooks.emit(protocol.LogRecorded(level=level, text=text))  # type: ignore[arg-type]


class _Prefetcher:
    """Reads and tokenizes the next chunk in a thread while the model runs the current one.

    The queue holds one chunk, so memory holds at most three: being read, waiting, being run.
    """

    _END = object()

    def __init__(self, chunks: Iterator[InputChunk], prepare: Callable[[InputChunk], Prepared]) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._work, args=(chunks, prepare), name="predict-prefetch", daemon=True
        )
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, chunks: Iterator[InputChunk], prepare: Callable[[InputChunk], Prepared]) -> None:
        try:
            for chunk in chunks:
                if not self._put(prepare(chunk)):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the main thread, which fails the job with it
            self._put(exc)

    def __iter__(self) -> Iterator[Prepared]:
        while True:
            item = self._q.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def run_prediction(params: Params, hooks: Hooks) -> dict[str, Any]:
    output = Path(params.output)
    src = open_input(
        params.input,
        fmt=params.format,
        encoding=params.encoding,
        text_col=params.text_col,
        hdf_key=params.hdf_key,
    )
    # The CLI refused this already; a config written by hand (or an old session) must not slip past.
    check_not_an_input(output, input_paths(params))
    params.precision = _output_precision(params, output, hooks)
    model, tokenizer, id2label, info = models.load(params.model, params.precision)
    labels = [id2label[i] for i in range(len(id2label))]
    trained = models.trained_max_length(params.model)
    params.max_length = _max_length(params.max_length, model, tokenizer, trained)
    if params.multiple is None:
        params.multiple = batching.default_multiple()
    meta = {
        "labels": labels,
        "label2id": {name: i for i, name in enumerate(labels)},
        "model": {**params.model, **info, "fingerprint": models.fingerprint(params.model)},
        "input": {**input_fingerprint(src), "encoding": src.encoding},
        "settings": {k: getattr(params, k) for k in _PINNED},
        "precision": params.precision,
    }
    shard = parse_shard(params.shard) if params.shard else None
    offsets: dict[int, int] = {}
    if shard is not None:
        meta["shard"], offsets = _shard_part(params, shard, src, output, hooks)
    writer = _open_writer(params, output, labels, meta, hooks)
    writer.resume_command = resume_command(params)
    part = writer.cursor["meta"].get("shard")
    first, last_row = (int(part["start"]), int(part["stop"])) if part else (0, None)
    writer.index_base = first  # a shard's index is the input's row position: the merge concatenates
    done_summary = {"shard": str(shard)} if shard is not None else {}
    if writer.cursor.get("done"):
        _log(hooks, "info", f"{output} is already complete ({writer.rows:,} rows); nothing to do")
        return {"rows": writer.rows, "output": str(output), "already_complete": True, **done_summary}
    settings = writer.cursor["meta"]["settings"]
    pos = Position(**writer.cursor["position"])
    if last_row is not None and writer.rows == 0 and first < last_row:
        pos = _shard_start(src, first, settings["chunk_rows"], offsets)
    total = last_row - first if last_row is not None else src.n_rows
    tracker = Tracker(writer.rows, total, pos.offset or 0, src.size)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    forward = batching.make_forward(model)
    n_classes = len(labels)

    def prepare(chunk: InputChunk) -> Prepared:
        keep = [i for i, f in enumerate(chunk.flags) if not f]
        kept = [chunk.texts[i] or "" for i in keep]
        ids = batching.tokenize(tokenizer, kept, settings["max_length"])
        truncated = batching.count_truncated(tokenizer, kept, ids, settings["max_length"])
        built = list(
            batching.batches(
                ids,
                pad_id=pad_id,
                token_budget=settings["token_budget"],
                multiple=settings["multiple"],
                max_length=settings["max_length"],
            )
        )
        for b in built:  # batch positions are among the kept texts; make them chunk positions
            b.index = np.asarray(keep, dtype=np.int64)[b.index]
        return Prepared(chunk, built, truncated)

    hooks.update_state(step=writer.rows, total_steps=total)
    hooks.emit(protocol.JobStarted(job="predict", step=writer.rows, total_steps=total))
    started = time.monotonic()
    prefetch = _Prefetcher(iter_input(src, settings["chunk_rows"], pos, last_row), prepare)
    last_report = time.monotonic()
    last_rows: list[protocol.RowWritten] | None = None
    try:
        for item in prefetch:
            chunk = item.chunk
            n = len(chunk.rows)
            probs = np.zeros((n, n_classes), dtype=np.float32)
            done_in_chunk = 0
            for b in item.batches:
                probs[b.index] = forward(b.input_ids, b.attention_mask)[: len(b.index)]
                tracker.add(0, 0, b.real_tokens, b.padded_tokens)
                done_in_chunk += len(b.index)
                if time.monotonic() - last_report > PROGRESS_EVERY_S:
                    _report(hooks, tracker, writer, output, extra_done=done_in_chunk)
                    last_report = time.monotonic()
            frame = writer.frame(chunk.rows, probs, probs.argmax(axis=1), chunk.flags)
            position = Position(chunk.rows[-1], chunk.last_offset).as_dict()
            writer.append(frame, position, truncated=item.truncated)
            tracker.add(n, chunk.bytes_done, 0, 0)
            last_rows = _last_rows(frame, chunk)
            _report(hooks, tracker, writer, output, last=last_rows)
            last_report = time.monotonic()
            hooks.update_state(step=writer.rows)
            hooks.boundary(writer.rows)
    finally:
        prefetch.close()
    elapsed = time.monotonic() - started
    summary = {
        "rows": writer.rows,
        "output": str(output),
        "label_counts": dict(writer.cursor["label_counts"]),
        "flag_counts": dict(writer.cursor["flag_counts"]),
        "seconds": round(elapsed, 3),
        "rows_per_s": round((writer.rows - tracker.start_done) / elapsed, 1) if elapsed > 0 else None,
        "padding": tracker.padding(),
        "real_tokens": tracker.real_tokens,
        "truncated": writer.truncated,
        **done_summary,
    }
    writer.finish(summary)
    _log(hooks, "info", truncation_line(writer.truncated, writer.rows, settings["max_length"]))
    tracker.total = writer.rows
    _report(hooks, tracker, writer, output, last=last_rows)
    return summary


def truncation_line(truncated: int, rows: int, max_length: int) -> str:
    """The one line a finished job prints about texts cut to max_length (also in the output's metadata)."""
    if not truncated:
        return f"no text was longer than max_length {max_length} tokens; none truncated"
    share = truncated / rows if rows else 0.0
    return (
        f"{truncated:,} of {rows:,} texts ({share:.1%}) were longer than max_length {max_length} tokens "
        "and were truncated (recorded as 'truncated' in the output's metadata)"
    )


def input_paths(params: Params) -> list[tuple[str, Path]]:
    """What the job reads, which its output must never be: the input file and the model's folder(s)."""
    found: list[tuple[str, Path]] = [("--input", Path(params.input)), ("--model", Path(params.model["path"]))]
    base = models.base_folder(params.model)
    if base is not None:
        found.append(("--model's base model", base))
    return found


def resume_command(params: Params) -> str:
    """The command that continues this job, for the advice in a failure's one line."""
    parts = ["ftc", "predict", "--model", params.model["path"], "--input", params.input]
    parts += ["--output", params.output]
    if params.text_col:
        parts += ["--text-col", params.text_col]
    if params.shard:
        parts += ["--shard", params.shard]
    return shlex.join([*parts, "--resume"])


def _shard_part(
    params: Params, shard: Shard, src: Any, output: Path, hooks: Hooks
) -> tuple[dict[str, Any], dict[int, int]]:
    """This shard's rows (from its output's cursor when resuming, else counted once) and, when
    counted, the byte offsets of the text input's chunk boundaries."""
    from engine.predict.writer import read_cursor

    cursor = read_cursor(output) if params.resume else None
    if cursor is not None:
        check_same_shard(cursor["meta"], shard, output)
        return dict(cursor["meta"]["shard"]), {}
    offsets: dict[int, int] = {}
    if src.n_rows is None:
        _log(hooks, "info", f"counting the rows of {Path(src.path).name} to find shard {shard}'s part")
        total, offsets = count_records(src, params.chunk_rows)
    else:
        total = src.n_rows
    part = shard_meta(shard, total, params.chunk_rows, src.path, src.hdf_key)
    _log(
        hooks,
        "info",
        f"shard {shard}: rows {part['start'] + 1:,}-{part['stop']:,} of {total:,}"
        if part["stop"] > part["start"]
        else f"shard {shard}: no rows (the input's {total:,} rows make fewer chunks than shards)",
    )
    return part, offsets


def _shard_start(src: Any, first: int, chunk_rows: int, offsets: dict[int, int]) -> Position:
    """Where a shard with nothing written yet starts reading: after data row ``first``."""
    if first == 0 or src.n_rows is not None:
        return Position(first, None)
    if first not in offsets:  # a resume of a shard killed before its first chunk: count again
        _total, offsets = count_records(src, chunk_rows)
    return Position(first, offsets[first])


def _max_length(asked: int | None, model: Any, tokenizer: Any, trained: int | None = None) -> int:
    """The tokens per text if not asked: the training session's max_length for a model it trained,
    else the model's (at most 512). More than the model's positions is refused."""
    limit = position_limit(model.config.to_dict())
    if asked is None:
        # What it learned from (a training session never exceeds the positions), else the model's own.
        limits = [trained] if trained is not None else [DEFAULT_MAX_LENGTH, int(tokenizer.model_max_length)]
        return min(limits + ([limit] if limit is not None else []))
    if limit is not None and asked > limit:
        # Past its position embeddings the model fails deep inside TensorFlow with a gather error.
        raise ValueError(models.max_length_error(asked, limit, "the model"))
    return asked


def _output_precision(params: Params, output: Path, hooks: Hooks) -> str:
    """The precision to build the model in: a resumed output keeps its own, so its rows match one run."""
    if not params.resume:
        return params.precision
    from engine.predict.writer import read_cursor

    cursor = read_cursor(output)
    if cursor is None:
        return params.precision
    # Outputs from before --precision existed were all float32.
    own = str(cursor.get("meta", {}).get("precision", "float32"))
    if own != params.precision:
        _log(hooks, "info", f"resuming with the output's own precision {own} (not {params.precision})")
    return own


def _open_writer(
    params: Params, output: Path, labels: list[str], meta: dict[str, Any], hooks: Hooks
) -> PredictionWriter:
    if not params.resume:
        return PredictionWriter.create(output, labels, meta, overwrite=params.overwrite)
    try:
        writer = PredictionWriter.resume(output, labels)
    except DamagedOutput as exc:
        writer = PredictionWriter(output, labels, _cursor_or_fail(output))
        aside = writer.set_aside()
        kept = f"moved it aside as {aside.name}" if aside is not None else "nothing to keep"
        _log(hooks, "warning", f"{exc}; {kept} and predicting again from the first row")
    for note in writer.notes:
        _log(hooks, "warning", note)
    check_same_run(writer.cursor["meta"], meta, output)
    check_same_shard(writer.cursor["meta"], parse_shard(params.shard) if params.shard else None, output)
    changed = [k for k in _PINNED if writer.cursor["meta"]["settings"][k] != meta["settings"][k]]
    if changed:
        _log(
            hooks,
            "info",
            f"resuming with the output's own {', '.join(changed)} so its rows match a single run",
        )
    if writer.cursor["meta"]["input"].get("encoding") != meta["input"]["encoding"]:
        _log(
            hooks,
            "warning",
            f"resuming with encoding {meta['input']['encoding']} (the output began with "
            f"{writer.cursor['meta']['input'].get('encoding')})",
        )
    _log(
        hooks,
        "info",
        f"resuming {output.name} after {writer.rows:,} rows (input row {writer.cursor['position']['row']:,})",
    )
    return writer


def _cursor_or_fail(output: Path) -> dict[str, Any]:
    from engine.predict.writer import read_cursor

    cursor = read_cursor(output)
    if cursor is None:
        raise OutputError(f"{output}: nothing to resume (no cursor next to it)")
    return cursor


def _last_rows(frame: Any, chunk: InputChunk) -> list[protocol.RowWritten]:
    tail = frame.tail(LAST_ROWS)
    texts = chunk.texts[-len(tail) :]
    return [
        protocol.RowWritten(
            row=int(r.row),
            label=str(r.label),
            score=None if r.score != r.score else round(float(r.score), 4),
            flag=str(r.flag),
            text=(t or "")[:80].replace("\n", " "),
        )
        for r, t in zip(tail.itertuples(), texts, strict=True)
    ]


def _report(
    hooks: Hooks,
    tracker: Tracker,
    writer: PredictionWriter,
    output: Path,
    *,
    extra_done: int = 0,
    last: list[protocol.RowWritten] | None = None,
) -> None:
    detail = protocol.ProgressDetail(
        written=writer.rows,
        output=str(output),
        label_counts=dict(writer.cursor["label_counts"]),
        flag_counts=dict(writer.cursor["flag_counts"]),
        estimated_total=tracker.estimated_total(),
        padding=tracker.padding(),
        tokens_per_s=tracker.tokens_per_s(),
        bytes_done=tracker.bytes_done,
        bytes_total=tracker.bytes_total,
        last_rows=last,
    )
    hooks.emit(
        protocol.ProgressReported(
            stage=STAGE,
            done=tracker.done + extra_done,
            total=tracker.total,
            unit="rows",
            rate=tracker.rate(),
            eta_s=tracker.eta_s(),
            detail=detail,
        )
    )
