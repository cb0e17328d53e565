"""One streaming pass over a raw dataset: validation, rejects, label counts and every raw-file data test."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.data import checks, textchecks
from engine.data.errors import AllRejected, DataError
from engine.data.hashindex import HashIndex, text_hashes
from engine.data.readers import DEFAULT_CHUNK_ROWS, Source, iter_chunks
from engine.data.validate import RejectsWriter, validate

# on_chunk(stage, rows done, rows total or None, fraction of the work done or None)
Progress = Callable[[str, int, "int | None", "float | None"], None]
REPORT_VERSION = 1


@dataclass
class ScanResult:
    """What the raw pass learned: counts, rejects and the raw-file test results."""

    source: Source
    rows_read: int
    valid: int
    label_counts: dict[str, int]
    rejects: dict[str, Any]
    results: list[checks.CheckResult] = field(default_factory=list)
    text_lengths: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    # Only with collect_duplicates: rows repeating an earlier text (sorted) and their count per label.
    duplicate_rows: Any = None
    duplicate_label_counts: dict[str, int] = field(default_factory=dict)


def _fraction(src: Source, done_rows: int, bytes_done: int) -> float | None:
    if src.n_rows:
        return done_rows / src.n_rows
    return bytes_done / src.size if src.size else None


def scan(
    src: Source,
    *,
    rejects_path: str | os.PathLike[str] | None,
    tokenizer: str | None = None,
    max_length: int = 128,
    workdir: str | os.PathLike[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_chunk: Progress | None = None,
    collect_duplicates: bool = False,
) -> ScanResult:
    """Read every row once, in chunks, and run the raw-file data tests."""
    t0 = time.monotonic()
    label_ids: dict[str, int] = {}
    order = checks.OrderAcc()
    rows_read = 0
    with RejectsWriter(rejects_path) as rejects, HashIndex(workdir) as index:
        texts = textchecks.TextAcc(index)
        for chunk in iter_chunks(src, chunk_rows):
            good = validate(chunk, rejects)
            rows_read += len(chunk.rows) + len(chunk.malformed)
            if good.rows:
                ids = np.fromiter(
                    (label_ids.setdefault(x, len(label_ids)) for x in good.label), dtype=np.int32
                )
                order.add(ids, good.rows)
                texts.add(good.text, good.rows, ids, text_hashes(good.text))
            if on_chunk is not None:
                on_chunk("scan", rows_read, src.n_rows, _fraction(src, rows_read, chunk.bytes_done))
        if rows_read == 0:
            raise DataError(f"{src.path}: the file has a header but no data rows")
        valid = texts.n
        if valid == 0:
            reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(rejects.by_reason.items()))
            raise AllRejected(
                f"{src.path}: all {rows_read:,} rows were rejected ({reasons}); "
                "check --text-col/--label-col and the file",
                str(rejects.path) if rejects.path else None,
            )
        names = sorted(label_ids, key=label_ids.__getitem__)
        counts = np.zeros(len(names), dtype=np.int64)
        for w in order.windows:
            counts[: len(w)] += w
        label_counts = {n: int(counts[i]) for i, n in enumerate(names)}
        results = [
            checks.rejects_result(rejects.by_reason, rejects.first_rows, rows_read),
            order.result(counts, "order"),
            checks.balance_result(label_counts),
        ]
        results += textchecks.duplicate_results(index, valid)
        results.append(
            texts.short_result(
                rejects.by_reason.get("empty_text", 0), rejects.first_rows.get("empty_text", [])
            )
        )
        results.append(texts.encoding_result(src.encoding))
        if tokenizer:
            results.append(textchecks.token_result(texts.sample, tokenizer, max_length))
        dup_rows, dup_counts = None, {}
        if collect_duplicates:
            dup_rows, dup_ids = textchecks.duplicate_rows(index)
            per_id = np.bincount(dup_ids, minlength=len(names))
            dup_counts = {n: int(per_id[i]) for i, n in enumerate(names)}
        return ScanResult(
            source=src,
            rows_read=rows_read,
            valid=valid,
            label_counts=dict(sorted(label_counts.items())),
            rejects=rejects.summary(),
            results=results,
            text_lengths=texts.length_summary(),
            seconds=time.monotonic() - t0,
            duplicate_rows=dup_rows,
            duplicate_label_counts=dup_counts,
        )


def report(
    scan_result: ScanResult, extra_results: list[checks.CheckResult] | None = None, **extra: Any
) -> dict[str, Any]:
    """The data-test report as one JSON-able document (``ftc check --json``, data/report.json)."""
    results = scan_result.results + (extra_results or [])
    return {
        "version": REPORT_VERSION,
        "source": scan_result.source.describe(),
        "rows": {
            "read": scan_result.rows_read,
            "valid": scan_result.valid,
            "rejected": scan_result.rejects["count"],
        },
        "label_counts": scan_result.label_counts,
        "rejects": scan_result.rejects,
        "text_lengths": scan_result.text_lengths,
        "status": checks.worst([r.status for r in results]),
        "tests": [r.as_dict() for r in results],
        "seconds": round(scan_result.seconds, 3),
        **extra,
    }
