"""Peak memory stays flat: a 10x larger input does not raise the process's VmHWM beyond a constant."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.predict.conftest import texts, write_csv

CHILD = """
import json, sys
from pathlib import Path
from engine.predict.run import Hooks, Params, run_prediction
hooks = Hooks(emit=lambda e: None, update_state=lambda **k: None, boundary=lambda s: None)
cfg = {"model": sys.argv[1], "input": sys.argv[2], "output": sys.argv[3], "chunk_rows": 1000}
summary = run_prediction(Params.from_config(cfg), hooks)
status = Path("/proc/self/status").read_text().splitlines()
hwm = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
print("RESULT", json.dumps({"rows": summary["rows"], "hwm_kb": hwm}))
"""


def _peak(model: Path, inp: Path, out: Path) -> tuple[int, int]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(inp), str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    return int(result["rows"]), int(result["hwm_kb"])


@pytest.mark.slow
def test_ten_times_the_input_does_not_raise_peak_memory(tiny_classifier: Path, tmp_path: Path) -> None:
    base = texts(4000, seed=3)
    small = write_csv(tmp_path / "small.csv", base)
    # Ten times the rows (and bytes); repeating keeps the length mix and so the batch shapes the same.
    large = write_csv(tmp_path / "large.csv", base * 10)
    rows_small, peak_small = _peak(tiny_classifier, small, tmp_path / "small.h5")
    rows_large, peak_large = _peak(tiny_classifier, large, tmp_path / "large.h5")
    assert (rows_small, rows_large) == (4000, 40000)
    # Reading or tokenizing the whole input at once would add tens of MB here (40k texts as Python id lists).
    assert peak_large - peak_small < 24 * 1024, f"peak grew from {peak_small} kB to {peak_large} kB"
