"""The training-throughput benchmark runs end to end on a tiny model and tiny data, so it cannot rot."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from bench.train_throughput import parse_args, render, run
from tests.support.tiny import make_tiny_model, synthetic_texts


def test_harness_measures_all_three_runs(tmp_path: Path) -> None:
    model = make_tiny_model(tmp_path / "model", fmt="tf", seed=0)
    raw = tmp_path / "raw.csv"
    with raw.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentiment", "confidence", "text"])
        writer.writerows(
            [["neg", "pos"][label], 1.0, text] for text, label in synthetic_texts(240, ["neg", "pos"], 5)
        )
    args = parse_args(
        [
            *(
                "--model",
                str(model),
                "--data",
                str(raw),
                "--encoding",
                "utf-8",
                "--work",
                str(tmp_path / "work"),
            ),
            *("--steps", "8", "--warmup", "2", "--batch-size", "8", "--max-length", "32"),
            *("--checkpoint-every", "3", "--peak-gflops", "10", "--repeats", "2"),
        ]
    )
    res = run(args)

    for name in ("ftc", "ftc_off", "plain"):
        fig = res["figures"][name]
        assert fig["steps"] == (6 if name == "plain" else 12), name  # ftc: two runs of 6 pooled
        assert fig["examples_per_s"] > 0 and fig["tokens_per_s"] > 0, name
        assert 0 < fig["mfu"] < 1, name
        assert fig["peak_rss_mib"] > 0, name
    assert res["same_rows"]
    # Padding to max_length wastes more than ftc's dynamic padding of the same examples.
    assert res["figures"]["plain"]["padding"] > res["figures"]["ftc"]["padding"]
    assert math.isfinite(res["overhead"]) and len(res["overheads"]) == 2
    assert [len(runs) for runs in res["each"].values()] == [2, 2, 1]
    # Checkpoints after steps 3 and 6 (inside the timed steps 3..8), in each of the two ftc runs:
    # the loop's share (the snapshot) and the background write, each timed.
    assert len(res["checkpoint_s"]) == 4 and len(res["checkpoint_written_s"]) == 4
    assert all(s > 0 for s in res["checkpoint_s"] + res["checkpoint_written_s"])
    assert res["in_loop"]["journal"] > 0  # state.json: once a second, maybe not in 6 tiny steps
    assert 0 < res["in_loop_share"] < 1
    assert res["journal_events"] > 16
    text = render(res)
    assert "| plain (pad to max_length" in text and "ftc / plain" in text
    assert "inside the training loop" in text and "alternated pair(s)" in text
