"""The engine's "check" and "prepare" jobs: the CLI's code run inside a session, with progress events.

Parameters come from the session config's ``[data]`` section: ``source`` (the raw file),
``text_col``, ``label_col``, ``encoding``, ``format``, ``key``, ``tokenizer``, ``max_length``,
and for prepare ``split`` ({train, validation, test} fractions), ``seed``, ``shard_rows``,
``dedupe``.
Output goes to the session's ``data/`` folder. A stopped or failed prepare leaves no
manifest.json, so it is simply run again (there is nothing worth resuming mid-way).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine import protocol
from engine.data.errors import DataError
from engine.data.readers import Source, open_source
from engine.fsio import atomic_write_json
from engine.jobs.base import JobContext


def _options(ctx: JobContext) -> dict[str, Any]:
    data = dict(ctx.config.get("data", {}))
    source = data.get("source") or data.get("path")
    if not source:
        raise DataError('the session config has no [data] source; set source = "path/to/data.csv"')
    path = Path(str(source)).expanduser()
    if not path.is_absolute() and not path.exists():
        path = ctx.paths.root / path  # relative to the session when not to the working directory
    data["source"] = str(path)
    data.setdefault("max_length", ctx.config.get("train", {}).get("max_length", 128))
    return data


def _open(opts: dict[str, Any]) -> Source:
    return open_source(
        opts["source"],
        fmt=opts.get("format"),
        encoding=opts.get("encoding"),
        text_col=opts.get("text_col"),
        label_col=opts.get("label_col"),
        hdf_key=opts.get("key"),
    )


class _Progress:
    """Turns the data code's per-chunk callback into ProgressReported events, phases and step boundaries.

    The phase (PhaseChanged, throttled) is ``phase``, except the data tests on the prepared shards
    ("shard-checks"), which are testing_data: the tests that gate a run.
    """

    def __init__(self, ctx: JobContext, phase: str) -> None:
        self.ctx = ctx
        self.phase = phase
        self.step = 0
        self._stage = ""
        self._t0 = time.monotonic()
        ctx.phases.enter(phase, done=0, unit="rows")

    def __call__(self, stage: str, done: int, total: int | None, fraction: float | None) -> None:
        now = time.monotonic()
        if stage != self._stage:
            self._stage, self._t0 = stage, now
        elapsed = now - self._t0
        rate = done / elapsed if elapsed > 0 else None
        eta = elapsed * (1 - fraction) / fraction if fraction and elapsed > 0 else None
        detail = protocol.ProgressDetail(fraction=None if fraction is None else round(fraction, 4))
        unit = "shards" if stage == "shard-checks" else "rows"
        phase = "testing_data" if stage == "shard-checks" else self.phase
        self.ctx.phases.enter(phase, done=done, total=total, unit=unit, detail=stage)
        self.ctx.emit(
            protocol.ProgressReported(
                stage=stage,
                done=done,
                total=total,
                unit=unit,
                rate=rate,
                eta_s=eta,
                detail=detail,
            )
        )
        self.step += 1
        self.ctx.update_state(step=self.step)
        self.ctx.boundary(self.step)  # pause / stop land between chunks, never inside one


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": doc["status"],
        "rows": doc["rows"],
        "tests": {t["name"]: t["status"] for t in doc["tests"]},
        "report": "data/report.json",
    }


def run_check(ctx: JobContext) -> dict[str, Any]:
    """Run the data tests on ``[data] source``; report to data/report.json, rejects to data/rejects.csv."""
    from engine.data.scan import report, scan

    opts = _options(ctx)
    ctx.emit(protocol.JobStarted(job="check"))
    out = ctx.paths.data
    out.mkdir(parents=True, exist_ok=True)
    src = _open(opts)
    ctx.emit(protocol.LogRecorded(text=f"checking {src.path}: text={src.text_col!r} label={src.label_col!r}"))
    result = scan(
        src,
        rejects_path=out / "rejects.csv",
        tokenizer=opts.get("tokenizer"),
        max_length=int(opts["max_length"]),
        workdir=out,
        on_chunk=_Progress(ctx, "testing_data"),
    )
    doc = report(result)
    doc["rejects"]["path"] = "rejects.csv"
    atomic_write_json(out / "report.json", doc)
    return _summary(doc)


def run_prepare(ctx: JobContext) -> dict[str, Any]:
    """Split and shard ``[data] source`` into data/ (manifest.json, shards, rejects.csv, report.json)."""
    from engine.data.prepare import PrepareOptions, prepare

    opts = _options(ctx)
    ctx.emit(protocol.JobStarted(job="prepare"))
    prep = PrepareOptions(
        out=ctx.paths.data, tokenizer=opts.get("tokenizer"), max_length=int(opts["max_length"])
    )
    if "split" in opts:
        split = opts["split"]
        prep.split = (
            dict(zip(("train", "validation", "test"), split, strict=True))
            if isinstance(split, list)
            else split
        )
    prep.seed = int(opts.get("seed", prep.seed))
    prep.shard_rows = int(opts.get("shard_rows", prep.shard_rows))
    prep.dedupe = bool(opts.get("dedupe", False))
    src = _open(opts)
    ctx.emit(
        protocol.LogRecorded(text=f"preparing {src.path}: text={src.text_col!r} label={src.label_col!r}")
    )
    done = prepare(src, prep, on_chunk=_Progress(ctx, "preparing_data"))
    manifest = done["manifest"]
    return {
        **_summary(done["report"]),
        "manifest": "data/manifest.json",
        "splits": {name: split["rows"] for name, split in manifest["splits"].items()},
        "labels": manifest["labels"],
        "data_fingerprint": manifest["data_fingerprint"],
    }
