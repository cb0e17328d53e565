"""The GPU check on a CPU: arguments, the skip path, timeouts, MFU and the report (whole or partial)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import gpu_check
from bench.gpu_check import NAMES, Result, main, parse_args, run_all

REPO = Path(__file__).resolve().parents[2]


def test_dry_run_writes_the_report_with_every_phase_skipped(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    assert main(["--dry-run", "--results", str(out)]) == 0
    text = out.read_text()
    for name in NAMES:
        assert f"| {name} | skipped | 0 | dry run |" in text
    assert "MFU >= 40%: not measured" in text and "50,000 texts/s on the tweets: not measured" in text
    assert "nvidia-smi:" in text and "load average" in text and "--dry-run" in text


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--only", "peak,warp"], "--only: unknown phase warp"),
        (["--timeout", "peak=soon"], "--timeout peak=soon: give PHASE=SECONDS"),
        (["--timeout", "nap=5"], "--timeout nap=5"),
        (["--steps", "10", "--warmup", "10"], "--warmup 10 must be less than --steps 10"),
        (["--predict-runs", "8192"], "8192: give a token budget and a multiple, as in 65536x8"),
    ],
)
def test_bad_arguments_are_refused_with_one_line(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert says in capsys.readouterr().err.strip().splitlines()[-1]


def canned(gpus: list[str], fail: str = "") -> tuple[Any, list[str]]:
    """A phase runner returning figures a GPU would give (``fail``: that phase fails); the calls."""
    calls: list[str] = []
    train = {
        "steps": 300,
        "timed_steps": 280,
        "seconds": 10.0,
        "examples_per_s": 5000.0,
        "real_tokens_per_s": 1e6,
        "padding": 0.05,
        "flops_per_token": 3e8,
        "loss_first": 1.1,
        "loss_last": 0.7,
        "losses_finite": True,
    }
    details: dict[str, dict[str, Any]] = {
        "environment": {"tensorflow": "2.21.0", "cuda": "12.5", "cudnn": "9", "gpus": gpus},
        "peak": {
            d: {"shapes": {"8192x8192x8192": p, "16384x4096x4096": p / 2}, "peak": p}
            for d, p in (("float32", 4e5), ("bfloat16", 1e6), ("float16", 1.2e6))
        },
        "tests": {"command": "pytest ...", "summary": "40 passed in 61.2s"},
        "prepare": {"data_dir": "/tmp/prepared"},
        "train-bf16": {**train, "precision": "mixed_bfloat16", "loss_scale": {"kind": "none (bfloat16)"}},
        "train-fp16": {
            **train,
            "precision": "mixed_float16",
            "loss_scale": {"kind": "dynamic", "value": 32768.0, "good_steps_since_change": 280},
        },
        "predict-fp32": {"precision": "float32", "runs": []},
        "predict-bf16": {
            "precision": "bfloat16",
            "runs": [
                {
                    "token_budget": 65536,
                    "multiple": 8,
                    "rows": 152632,
                    "seconds": 2.5,
                    "texts_per_s": 61052.8,
                    "texts_per_s_after_first_chunk": 80000.0,
                    "padding": 0.1,
                }
            ],
        },
    }

    def runner(name: str, opts: dict[str, Any], timeout: float) -> Result:
        calls.append(name)
        assert timeout > 0
        if name in gpu_check.PRECISIONS:
            assert opts["data_dir"] == "/tmp/prepared" and opts["precision"] == gpu_check.PRECISIONS[name]
        if name == fail:
            return Result(name, "failed", 3.0, why="exit 1; RuntimeError: CUDA_ERROR_OUT_OF_MEMORY")
        return Result(name, "ok", 1.0, detail=details[name])

    return runner, calls


def test_without_a_gpu_the_gpu_phases_are_skipped_with_the_reason(tmp_path: Path) -> None:
    args = parse_args(["--results", str(tmp_path / "gpu.md")])
    runner, calls = canned(gpus=[])
    results = run_all(args, runner)
    assert calls == ["environment"]
    assert {r.status for n, r in results.items() if n != "environment"} == {"skipped"}
    text = (tmp_path / "gpu.md").read_text()
    assert "| peak | skipped | 0 | TensorFlow sees no GPU (run with --allow-cpu" in text
    assert "GPUs it sees: none" in text


def test_with_a_gpu_the_report_has_mfu_loss_scale_texts_per_s_and_a_failed_phase(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    args = parse_args(["--results", str(out), "--note", "installed .[gpu,dev]"])
    runner, calls = canned(gpus=["NVIDIA H200"], fail="train-fp16")
    seen: list[str] = []

    def recording(name: str, opts: dict[str, Any], timeout: float) -> Result:
        seen.append(out.read_text() if out.exists() else "")  # the report as the phase starts
        return runner(name, opts, timeout)

    results = run_all(args, recording)
    assert calls == list(NAMES)
    # Rewritten after each phase: when train-fp16 starts, train-bf16's figures are already there.
    assert "| train-bf16 | ok |" in seen[NAMES.index("train-fp16")]
    text = out.read_text()
    # 1e6 real tokens/s x 3e8 FLOPs per token / a bfloat16 peak of 1e6 GFLOP/s = 30%.
    assert "| mixed_bfloat16 | 5,000 | 1,000,000 | 5.0% | 30.0% | 1.100 -> 0.700 | none (bfloat16) |" in text
    assert "| train-fp16 | failed | 3 | exit 1; RuntimeError: CUDA_ERROR_OUT_OF_MEMORY |" in text
    assert "| bfloat16 | 65,536 | 8 | 152,632 | 2.50 | 61,053 | 80,000 | 10.0% |" in text
    assert "MFU >= 40%: missed (30.0%)" in text and "texts/s on the tweets: met (61,053)" in text
    assert (
        "Note: installed .[gpu,dev]" in text and "| bfloat16 | 1,000,000 | 500,000 | **1,000,000** |" in text
    )
    assert results["train-fp16"].status == "failed"


def test_dynamic_loss_scale_is_reported(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    runner, _ = canned(gpus=["NVIDIA H200"])
    run_all(parse_args(["--results", str(out), "--only", "environment,peak,prepare,train-fp16"]), runner)
    assert (
        "| mixed_float16 | 5,000 | 1,000,000 | 5.0% | 25.0% | 1.100 -> 0.700 | dynamic, 32768 (280 good"
        in (out.read_text())
    )


def test_phases_past_the_budget_are_skipped(tmp_path: Path) -> None:
    runner, calls = canned(gpus=["NVIDIA H200"])
    results = run_all(parse_args(["--results", str(tmp_path / "gpu.md"), "--budget-s", "5"]), runner)
    assert calls == []
    assert results["environment"].why == "out of time: under 20 s left of --budget-s 5"


def test_a_phase_past_its_timeout_is_stopped_and_reported(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    # A real child: importing TensorFlow alone takes longer than half a second.
    rc = main(["--only", "environment,peak", "--timeout", "environment=0.5", "--results", str(out)])
    assert rc == 1
    text = out.read_text()
    assert "| environment | timed out |" in text and "after 0.5 s" in text
    assert "| peak | skipped | 0 | the environment phase did not complete, so no GPU is known |" in text


def test_the_shell_script_runs_the_check_with_the_python_given(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    env = {**os.environ, "FTC_GPU_PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--dry-run", "--results", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert f"Command: `bash bench/gpu_check.sh --dry-run --results {out}`" in text
    assert "| train-bf16 | skipped | 0 | dry run |" in text


@pytest.mark.slow
def test_every_phase_but_the_peak_runs_on_the_cpu_with_a_tiny_model(tmp_path: Path) -> None:
    """The real children (Trainer, loss scale, prediction pipeline), on the CPU: the code a GPU will run."""
    from tests.support.tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny", dropout=0.0)
    out = tmp_path / "gpu.md"
    argv = ["--allow-cpu", "--only", ",".join(n for n in NAMES if n != "peak"), "--results", str(out)]
    argv += ["--model", str(model), "--work", str(tmp_path / "work"), "--max-length", "32"]
    argv += ["--steps", "4", "--warmup", "1", "--batch-size", "8", "--predict-limit", "300"]
    argv += ["--budget-s", "1800", *(f"--timeout={n}=600" for n in NAMES)]  # a loaded 2-core machine
    argv += [
        "--predict-repeat",
        "1",
        "--predict-runs",
        "1024x2",
        "--tests",
        "tests/bench/test_gpu_check.py::test_ladder",
    ]
    main(argv)
    text = out.read_text()
    for name in NAMES:
        if name not in (
            "peak",
            "tests",
        ):  # the tests phase names a test that is not there: it fails, one line
            assert f"| {name} | ok |" in text
    assert "| tests | failed |" in text and "RuntimeError: pytest exit 4" in text
    assert "| mixed_float16 |" in text and "dynamic, " in text and "| mixed_bfloat16 |" in text
    assert "| float32 | 1,024 | 2 | 300 |" in text and "| bfloat16 | 1,024 | 2 | 300 |" in text
