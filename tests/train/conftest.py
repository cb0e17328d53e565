"""Fixtures for training tests: a tiny model folder, a learnable dataset and an in-process job context."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.jobs.base import Control, JobContext
from engine.session import SessionPaths
from tests.support.tiny import make_tiny_model, write_dataset


@pytest.fixture(scope="session")
def tiny_tf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-tf"), fmt="tf", seed=0)


@pytest.fixture(scope="session")
def tiny_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-pt"), fmt="pt", seed=0)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Several shards, so epochs cross shard boundaries and the shard order is shuffled too.
    return write_dataset(
        tmp_path_factory.mktemp("data"), n_train=128, n_validation=48, n_test=48, shard_rows=50
    )


class Recorder:
    """A JobContext's emit and update_state that keep everything for assertions."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.state: dict[str, Any] = {}
        self.on_event: Callable[[Any], None] | None = None

    def emit(self, body: Any) -> None:
        self.events.append(body)
        if self.on_event is not None:
            self.on_event(body)

    def update_state(self, **kw: Any) -> None:
        self.state.update(kw)

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.events if type(e).__name__ == kind]


def make_ctx(
    root: Path, *, resume: bool = False, config: dict[str, Any] | None = None
) -> tuple[JobContext, Recorder]:
    paths = SessionPaths(root)
    paths.create()
    rec = Recorder()
    ctx = JobContext(
        paths=paths,
        config=config or {},
        resume=resume,
        control=Control(),
        emit=rec.emit,  # type: ignore[arg-type]
        update_state=rec.update_state,
    )
    return ctx, rec


def train_config(model: Path, data: Path, **train: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seed": 7,
        "epochs": 2,
        "batch_size": 16,
        "max_length": 32,
        "learning_rate": 3e-3,
        "schedule": "linear",
        "warmup_steps": 2,
        "checkpoint_every_minutes": None,
        "checkpoint_every_steps": None,
    }
    base.update(train)
    return {
        "job": {"kind": "train"},
        "model": {"source": str(model)},
        "data": {"dir": str(data)},
        "train": base,
    }
