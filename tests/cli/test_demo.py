"""``ftc demo``: the embedded default, end to end."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.journal import read_all
from engine.session import list_sessions
from tests.conftest import REPO
from tests.support.tiny import make_tiny_model, synthetic_texts


def _demo(root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
    return subprocess.run(
        [sys.executable, "-m", "tui", "--sessions-dir", str(root), "demo", "--headless", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_demo_plumbing_with_a_tiny_model(tmp_path: Path, sessions_root: Path) -> None:
    data = tmp_path / "tweets.csv"
    with data.open("w", newline="", encoding="latin-1") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentiment", "confidence", "text"])
        for text, label in sorted(synthetic_texts(300, ["neg", "pos"], seed=1), key=lambda r: r[1]):
            writer.writerow([["negative", "positive"][label], "1.0", text + " café"])
    model = make_tiny_model(tmp_path / "tiny", fmt="pt", seed=0)
    out = _demo(sessions_root, "--steps", "4", env={"FTC_DEMO_DATA": str(data), "FTC_DEMO_MODEL": str(model)})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr
    assert "fine-tuning" in out.stdout and "engine stopped: finished" in out.stdout
    (session,) = list_sessions(sessions_root)
    kinds = [e.type for e in read_all(session.path / "events.jsonl")]
    assert "progress_reported" in kinds and "evaluation_ended" in kinds
    assert session.step == 4 and (session.path / "model" / "config.json").is_file()


@pytest.mark.slow
def test_demo_on_the_real_tweets_and_minilm(sessions_root: Path) -> None:
    out = _demo(sessions_root, "--steps", "3", timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    (session,) = list_sessions(sessions_root)
    evals = [e for e in read_all(session.path / "events.jsonl") if e.type == "evaluation_ended"]
    assert evals and evals[-1].body.split == "test"
    assert set(evals[-1].body.per_class) == {"negative", "neutral", "positive"}
