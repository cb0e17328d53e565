"""A training session given a raw file: the train job prepares it into the session, then trains."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from engine.train.config import ConfigError, parse_config
from engine.train.job import run as run_job
from tests.support.tiny import synthetic_texts
from tests.train.conftest import make_ctx


def test_raw_source_is_prepared_then_trained(tiny_tf: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    rows = synthetic_texts(240, ["neg", "pos"], seed=3)
    rows.sort(key=lambda r: r[1])  # sorted by label, as real exports often are
    with raw.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "stars"])
        writer.writerows([[text, ["neg", "pos"][label]] for text, label in rows])
    config = {
        "job": {"kind": "train"},
        "model": {"source": str(tiny_tf)},
        "data": {"source": str(raw), "text_col": "review", "label_col": "stars", "shard_rows": 64},
        "train": {"max_steps": 6, "batch_size": 16, "max_length": 32, "checkpoint_every_minutes": None},
    }
    ctx, rec = make_ctx(tmp_path / "session", config=config)
    summary = run_job(ctx)
    manifest = ctx.paths.data / "manifest.json"
    assert manifest.is_file()
    assert [e.job for e in rec.of("JobStarted")] == ["prepare", "train"]
    assert summary["steps"] == 6
    report = (ctx.paths.data / "report.json").read_text()
    assert "shard_order" in report and "token_length" in report
    # Resuming must not prepare again: the manifest is there.
    ctx2, rec2 = make_ctx(ctx.paths.root, resume=True, config=config)
    run_job(ctx2)
    assert [e.job for e in rec2.of("JobStarted")] == ["train"]


def test_dir_and_source_together_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[data\].*dir and source both set"):
        parse_config({"model": {"source": "m"}, "data": {"dir": "d", "source": "s.csv"}})
