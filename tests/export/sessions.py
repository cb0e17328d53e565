"""A real, finished tiny-BERT training session for export tests, trained once per test process.

The session is trained by a real engine (``create_session`` + ``start_engine``, as ``ftc train``
does) from a raw CSV, so it has everything an export reads: config.toml, data/manifest.json and
data/report.json, a journal with evaluations, checkpoints and model/. Each test gets its own copy
(``copy_session``), so a test that damages or removes something leaves the others theirs.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from engine.launcher import create_session, start_engine
from engine.session import SessionPaths, engine_lock_held, live_status, read_state
from tests.conftest import wait_for
from tests.support.tiny import make_tiny_model, synthetic_texts

LABELS = ["neg", "pos"]
_BUILT: dict[str, SessionPaths] = {}


def train_config(model: Path, raw: Path, **train: object) -> dict[str, object]:
    return {
        "job": {"kind": "train"},
        "model": {"source": str(model)},
        # The synthetic texts repeat (duplicates, conflicting labels): the gate shows them, training goes on.
        "data": {"source": str(raw), "text_col": "text", "label_col": "label", "on_fail": "warn"},
        "train": {
            "max_steps": 36,
            "batch_size": 16,
            "max_length": 32,
            "learning_rate": 3e-3,
            "warmup_steps": 2,
            "eval_every_steps": 9,
            "checkpoint_every_steps": 9,
            "checkpoint_every_minutes": None,
            "keep_last": 2,
            "seed": 7,
            **train,
        },
    }


def trained_session(factory: pytest.TempPathFactory) -> SessionPaths:
    """The finished session (built on first use in this process); copy it before changing anything."""
    if "session" in _BUILT:
        return _BUILT["session"]
    base = factory.mktemp("export-session")
    model = make_tiny_model(base / "tiny", fmt="tf", seed=0)
    raw = base / "raw.csv"
    with raw.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([t, LABELS[y]] for t, y in synthetic_texts(400, LABELS, seed=5))
    paths = create_session(base / "sessions", train_config(model, raw), name="export")
    start_engine(paths)

    def ended() -> str | None:
        status = live_status(read_state(paths))
        return status if status in ("finished", "failed", "stopped", "crashed") else None

    status = wait_for(ended, timeout=300, what="the tiny training session to end")
    log = paths.log.read_text(errors="replace")[-3000:] if paths.log.exists() else ""
    assert status == "finished", f"training ended {status}: {log}"
    # The engine writes its last records and removes its own files (.space-reserve) after "finished".
    wait_for(lambda: not engine_lock_held(paths), timeout=60, what="the engine to exit")
    _BUILT["session"] = paths
    return paths


def copy_session(source: SessionPaths, root: Path) -> SessionPaths:
    """A copy of the session under the sessions folder ``root`` (same id)."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / source.id
    shutil.copytree(source.root, target, ignore=shutil.ignore_patterns("engine.lock", "*.sock"))
    return SessionPaths(target)
