"""--precision bfloat16: the model computes in bf16; results stay near float32 and record the precision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine import protocol
from engine.predict.run import Params
from engine.predict.writer import read_metadata
from tests.predict.conftest import LABELS, run_job, texts, write_csv

PROBS = [f"prob_{x}" for x in LABELS]


def _run(model: Path, inp: Path, out: Path, stop_at: int | None = None, **kw: Any) -> list[Any]:
    return run_job(model, inp, out, stop_at, chunk_rows=50, **kw)


def test_bfloat16_agrees_with_float32_and_is_recorded(tiny_classifier: Path, tmp_path: Path) -> None:
    import tf_keras

    inp = write_csv(tmp_path / "in.csv", texts(300, seed=11))
    _run(tiny_classifier, inp, tmp_path / "f32.h5")
    before = tf_keras.mixed_precision.global_policy().name
    _run(tiny_classifier, inp, tmp_path / "bf16.h5", precision="bfloat16")
    assert tf_keras.mixed_precision.global_policy().name == before == "float32", "policy must be restored"
    f32, bf16 = pd.read_hdf(tmp_path / "f32.h5"), pd.read_hdf(tmp_path / "bf16.h5")
    assert bf16[PROBS].dtypes.eq(np.float32).all() and bf16["score"].dtype == np.float32
    diff = np.abs(bf16[PROBS].to_numpy() - f32[PROBS].to_numpy())
    assert diff.max() > 0, "bfloat16 gave bit-identical results: the model did not compute in bf16"
    # bf16 keeps ~3 significant digits; this test model's wide random weights make large logits,
    # so a few rows move more than a real model's would. Most rows stay within 0.05.
    row_diff = diff.max(axis=1)
    assert (row_diff < 0.05).mean() >= 0.9 and diff.mean() < 0.02 and diff.max() < 0.3
    assert (bf16["label"] == f32["label"]).mean() >= 0.9
    np.testing.assert_allclose(bf16[PROBS].sum(axis=1), 1.0, atol=1e-5)
    assert read_metadata(tmp_path / "bf16.h5")["precision"] == "bfloat16"
    assert read_metadata(tmp_path / "f32.h5")["precision"] == "float32"


def test_the_policy_is_restored_when_loading_fails(tmp_path: Path) -> None:
    import tf_keras

    from engine.predict import models

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(Exception, match="broken"):
        models.load({"kind": "folder", "path": str(broken)}, "bfloat16")
    assert tf_keras.mixed_precision.global_policy().name == "float32"


def test_a_resume_keeps_the_outputs_precision(tiny_classifier: Path, tmp_path: Path) -> None:
    inp = write_csv(tmp_path / "in.csv", texts(200, seed=12))
    _run(tiny_classifier, inp, tmp_path / "ref.h5", precision="bfloat16")
    out = tmp_path / "out.h5"
    _run(tiny_classifier, inp, out, stop_at=100, precision="bfloat16")
    assert len(pd.read_hdf(out)) == 100
    events = _run(tiny_classifier, inp, out, resume=True)  # float32 asked: bfloat16 kept
    logs = [e.text for e in events if isinstance(e, protocol.LogRecorded)]
    assert any("own precision bfloat16" in t for t in logs), logs
    pd.testing.assert_frame_equal(pd.read_hdf(out), pd.read_hdf(tmp_path / "ref.h5"))
    assert read_metadata(out)["precision"] == "bfloat16"


def test_an_unknown_precision_is_refused(tiny_classifier: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="precision: 'float16' is not one of float32, bfloat16"):
        Params.from_config(
            {"model": str(tiny_classifier), "input": "x", "output": "y", "precision": "float16"}
        )
