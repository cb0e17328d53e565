"""The console, prediction-scale and preparation benchmarks run end to end at toy sizes; they cannot rot."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _bench(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# ---------------------------------------------------------------- console


def test_console_lag_is_measured_and_the_console_sees_every_journal_event(sessions_root: Path) -> None:
    from bench.console_bench import measure_lag

    r = measure_lag(seconds=2.0, rate=20.0, root=sessions_root)

    assert r.lags, "no live step_ended event was timed"
    assert all(math.isfinite(x) and x >= 0 for x in r.lags)
    assert r.summary()["median"] < 2.0, "the monitor is seconds behind a 20 events/s engine"
    assert r.engine_rate > 5
    assert r.console_events == r.journal_events > len(r.lags)
    assert r.in_order


def test_help_start_time_is_measured() -> None:
    from bench.console_bench import time_help

    (seconds,) = time_help(1)
    assert 0 < seconds < 60


@needs_tmux
def test_first_frame_and_lag_in_a_real_terminal() -> None:
    from bench.console_bench import measure_terminal_lag, time_first_frame

    (seconds,) = time_first_frame(1)
    assert 0 < seconds < 30
    r = measure_terminal_lag(seconds=1.5, rate=20.0)
    assert r.lags and all(math.isfinite(x) for x in r.lags)
    assert 0 < r.console_events <= r.journal_events  # steps seen on screen, of those the engine ran


# ---------------------------------------------------------------- prediction at scale


def test_predict_scale_mode_on_a_tiny_model(tmp_path: Path) -> None:
    import pandas as pd

    from tests.predict.conftest import make_classifier, texts, write_csv

    model = make_classifier(tmp_path / "model")
    source = write_csv(tmp_path / "texts.csv", texts(60))
    work = tmp_path / "work"
    out = _bench(
        "predict_bench.py",
        *("--scale", "200", "--model-dir", str(model), "--texts", str(source), "--encoding", "utf-8"),
        *("--max-length", "32", "--workdir", str(work)),
    )

    row = next(line for line in out.splitlines() if line.startswith("| 200 |"))
    _, rows, precision, seconds, per_s, _tok, _pad, rss, course, _ = (c.strip() for c in row.split("|"))
    assert rows == "200" and precision == "float32"
    assert float(seconds) > 0 and float(per_s.replace(",", "")) > 0 and float(rss.replace(",", "")) > 0
    # RSS sampled over the run (every 2 s): five figures, or "-" for a run too short to sample.
    assert course == "-" or len(course.split(" / ")) == 5
    frame = pd.read_hdf(work / "scale-200" / "out.h5")
    assert len(frame) == 200, "the output holds every row: the 60 texts cycled to 200"


# ---------------------------------------------------------------- preparation


def test_prepare_bench_reports_time_rate_and_peak_memory(tmp_path: Path) -> None:
    out = _bench("prepare_bench.py", "--rows", "2000", "--workdir", str(tmp_path))

    figures = {
        line.split(":", 1)[0].strip(): json.loads(line.split(":", 1)[1])
        for line in out.splitlines()
        if line.startswith(("  check:", "  prepare:"))
    }
    assert set(figures) == {"check", "prepare"}
    for mode, r in figures.items():
        assert r["rows"]["read"] == 2000, mode
        assert r["seconds"] > 0 and r["rows_per_s"] > 0 and r["peak_rss_mb"] > 0, mode
    assert any(line.startswith("| 2,000 |") for line in out.splitlines()), "the summary table has the row"
    assert not list(tmp_path.glob("bench-*.csv")), "the generated input is removed without --keep"


def test_rss_course_picks_the_memory_at_shares_of_the_run() -> None:
    from bench.predict_bench import rss_course

    samples = [(float(t), 1000.0 + t) for t in range(0, 100, 2)]  # 2 s apart, 0..98 s
    assert rss_course(samples) == "1,010 / 1,026 / 1,050 / 1,074 / 1,094"
    assert rss_course(samples[:4]) == "-"
