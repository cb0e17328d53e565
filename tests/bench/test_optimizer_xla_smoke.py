"""The optimizer XLA benchmark runs end to end on a tiny model, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.optimizer_xla import main
from tests.support.tiny import make_tiny_model


def test_both_settings_run_and_the_table_reports_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_tiny_model(tmp_path / "model", fmt="tf", seed=0)
    assert main(["--model", str(model), "--shape", "4", "16", "--repeats", "1", "--reps", "2"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| o")}
    assert set(rows) == {"on", "off"}
    for line in rows.values():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        assert float(cells[1]) > 0 and float(cells[2]) > 0 and float(cells[3]) > 0
        assert len(cells[4].split(", ")) == 1  # one figure per run
    assert "the fused update takes" in out
