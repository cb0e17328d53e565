"""--model as a training session, its folder or one of its checkpoints: the same labels and probabilities."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.config import dump_toml
from engine.predict.models import ModelRefError, resolve_model
from engine.predict.run import Hooks, Params, run_prediction
from engine.session import SessionPaths, write_state
from tests.predict.conftest import LABELS, make_classifier, texts, write_csv
from tests.support.tiny import write_dataset
from tests.train.conftest import make_ctx, train_config

SESSION = "20260101-000000-train-abcd"
STEPS = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SessionPaths:
    """A finished training session whose [model] source and [data] dir are relative to its folder.

    It trains in its own folder, as its engine would (the launcher starts engines there).
    """
    root = tmp_path_factory.mktemp("refs") / "sessions" / SESSION
    root.mkdir(parents=True)
    make_classifier(root / "base", seed=3)  # wide random weights: varied labels after a short training
    labels = tuple(LABELS)
    write_dataset(root / "prepared", n_train=48, n_validation=16, n_test=16, shard_rows=24, labels=labels)
    cfg = train_config(Path("base"), Path("prepared"), max_steps=STEPS, batch_size=8)
    cfg["train"]["early_stopping"] = {"restore_best": False}  # model/ holds the final step's weights
    ctx, _ = make_ctx(root, config=cfg)
    ctx.paths.config.write_text(dump_toml(cfg))
    write_state(ctx.paths, status="new", job="train")  # as the launcher writes it
    from engine.train.job import run as train

    with contextlib.chdir(root):
        train(ctx)
    assert (ctx.paths.model / "config.json").is_file()
    assert (ctx.paths.checkpoints / f"ckpt-{STEPS}" / "COMPLETE").is_file()
    assert not (ctx.paths.data / "manifest.json").exists(), "the labels must come from [data] dir"
    return ctx.paths


def _predict(ref: dict[str, str], inp: Path, out: Path, **kw: Any) -> pd.DataFrame:
    hooks = Hooks(emit=lambda _e: None, update_state=lambda **_: None, boundary=lambda _s: None)
    cfg = {"model": ref, "input": str(inp), "output": str(out), "chunk_rows": 40, "max_length": 32, **kw}
    run_prediction(Params.from_config(cfg), hooks)
    return pd.read_hdf(out)


def _probs(frame: pd.DataFrame) -> np.ndarray:
    return frame[[c for c in frame.columns if c.startswith("prob_")]].to_numpy()


def test_checkpoint_and_session_predict_as_the_saved_model(trained: SessionPaths, tmp_path: Path) -> None:
    inp = write_csv(tmp_path / "in.csv", texts(120, seed=8))
    sessions_root = trained.root.parent
    folder = _predict(resolve_model(str(trained.model), sessions_root), inp, tmp_path / "folder.h5")
    assert set(folder["label"]) <= set(LABELS) and len(set(folder["label"])) > 1
    base = _predict(resolve_model(str(trained.root / "base"), sessions_root), inp, tmp_path / "base.h5")
    assert not np.allclose(_probs(base), _probs(folder), atol=1e-3), "training should change the weights"

    ckpt_ref = resolve_model(str(trained.checkpoints / f"ckpt-{STEPS}"), sessions_root)
    assert ckpt_ref["kind"] == "checkpoint"
    # A prediction engine runs in its own session folder: the training session's relative
    # [model] source and [data] dir must not be looked for there.
    elsewhere = tmp_path / "predict-session"
    elsewhere.mkdir()
    with contextlib.chdir(elsewhere):
        ckpt = _predict(ckpt_ref, inp, tmp_path / "ckpt.h5")
    assert list(ckpt["label"]) == list(folder["label"])
    np.testing.assert_allclose(_probs(ckpt), _probs(folder), atol=1e-5)

    for given in (SESSION, str(trained.root)):  # a session id, and a session folder
        ref = resolve_model(given, sessions_root)
        assert ref == {"kind": "folder", "path": str(trained.model.resolve())}
        frame = _predict(ref, inp, tmp_path / "session.h5", overwrite=True)
        assert list(frame["label"]) == list(folder["label"])
        np.testing.assert_allclose(_probs(frame), _probs(folder), atol=1e-6)


def test_a_checkpoint_whose_labels_are_gone_is_one_clear_error(trained: SessionPaths, tmp_path: Path) -> None:
    copy = tmp_path / "sessions" / SESSION
    shutil.copytree(trained.root, copy, ignore=shutil.ignore_patterns("prepared", "tensorboard"))
    inp = write_csv(tmp_path / "in.csv", texts(5))
    ref = resolve_model(str(copy / "checkpoints" / f"ckpt-{STEPS}"), copy.parent)
    with pytest.raises(ModelRefError, match=r"prepared/manifest.json, which is missing"):
        _predict(ref, inp, tmp_path / "out.h5")


def test_a_trained_model_predicts_at_its_training_max_length_unless_asked(
    trained: SessionPaths, tmp_path: Path
) -> None:
    from engine.predict.writer import read_cursor

    inp = write_csv(tmp_path / "in.csv", texts(30, seed=4))
    sessions_root = trained.root.parent
    trained_at = train_config(Path("base"), Path("prepared"))["train"]["max_length"]

    def used(ref: str, out: str, max_length: int | None = None) -> int:
        _predict(resolve_model(ref, sessions_root), inp, tmp_path / out, max_length=max_length)
        cursor = read_cursor(tmp_path / out)
        assert cursor is not None
        return int(cursor["meta"]["settings"]["max_length"])

    # The base model knows nothing of the training: its own limit (the tiny model's positions).
    base = used(str(trained.root / "base"), "base.h5")
    assert base > trained_at
    assert used(SESSION, "session.h5") == trained_at
    assert used(str(trained.checkpoints / f"ckpt-{STEPS}"), "ckpt.h5") == trained_at
    assert used(SESSION, "asked.h5", max_length=base) == base
