"""The matmul-share profile runs end to end on a tiny model, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.matmul_share import main
from tests.support.tiny import make_tiny_model


def test_profile_times_the_model_and_its_matmuls_for_both_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_tiny_model(tmp_path / "model", fmt="tf", seed=0)
    assert main(["--model", str(model), "--reps", "2", "--peak-gflops", "10"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert {"predict", "train"} <= set(rows)
    for kind, line in rows.items():
        if kind not in ("predict", "train"):
            continue
        cells = [c.strip() for c in line.split("|")[1:-1]]
        model_s, matmul_s, share = float(cells[3]), float(cells[4]), cells[5]
        assert model_s > 0 and matmul_s > 0 and share.endswith("%")
        assert (cells[8] == "-") == (kind == "predict")  # the AdamW update is timed for training only
