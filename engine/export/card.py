"""The model card (README.md) of a session's model: hub metadata, data, data tests, training, evaluation.

``gather`` collects what the session knows about one set of weights (config.toml, the prepared
data's manifest.json and report.json, the journal's evaluations, steps, time and hardware);
``model_card`` writes it as a Hugging Face model card: YAML front matter the hub reads
(library_name, pipeline_tag, base_model, metrics and a model-index with values and splits)
and a Markdown body. Nothing here imports TensorFlow or a YAML library: the front matter is
written in YAML's block style with JSON scalars (YAML is a superset of JSON), so any YAML
parser reads it back.

Which evaluations belong to which weights:
- validation: the journal's ``evaluation_ended`` of split ``validation`` at the weights' step;
- test: training evaluates the test split once, at the end, with the weights it leaves in
  ``model/`` (the best ones when ``restore_best`` restored them, else the final ones). The
  event carries the final step, so the test figures are shown for ``model/`` and for the
  checkpoint at the step those weights come from, and for no other checkpoint.

The confusion matrix: evaluation events carry it since protocol 1.3. Older journals keep
per-class precision, recall, F1 and support only: for two classes the matrix follows exactly
from recall and support (and is checked against the recorded precision); for more it does not,
and the card says it is not recorded.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The journal line (LogRecorded, info) the training engine writes once per run with its hardware.
HARDWARE_PREFIX = "hardware: "
# Metric names in EvaluationEnded.metrics -> (hub metric id, pretty name, args)
HUB_METRICS: dict[str, tuple[str, str, dict[str, str]]] = {
    "accuracy": ("accuracy", "Accuracy", {}),
    "macro_f1": ("f1", "Macro F1", {"average": "macro"}),
    "macro_precision": ("precision", "Macro precision", {"average": "macro"}),
    "macro_recall": ("recall", "Macro recall", {"average": "macro"}),
    "roc_auc": ("roc_auc", "ROC AUC (one-vs-rest, macro)", {"average": "macro", "multi_class": "ovr"}),
}
SPLITS = ("train", "validation", "test")
_TRAIN_KEYS = (
    "epochs",
    "max_steps",
    "batch_size",
    "grad_accum_steps",
    "max_length",
    "learning_rate",
    "schedule",
    "warmup_steps",
    "warmup_ratio",
    "min_lr_ratio",
    "weight_decay",
    "clip_norm",
    "class_weights",
    "freeze",
    "freeze_layers",
    "mixed_precision",
    "seed",
)


@dataclass(frozen=True)
class Weights:
    """Which weights of the session are described: model/ or one checkpoint, at which step."""

    name: str  # "model/" or "ckpt-40"
    step: int | None
    note: str  # a few words: "the best weights, restored at the end of training (step 40)"
    final_model: bool  # the weights model/ holds (the ones the test split was evaluated with)


@dataclass(frozen=True)
class Evaluation:
    split: str
    step: int
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    # [true][predicted] counts, as the evaluation event records them (protocol 1.3 and later)
    confusion: list[list[int]] | None = None


@dataclass
class Facts:
    """Everything the card says, gathered from one session (see ``gather``)."""

    session_id: str
    base_model: str  # a hub name, or the local folder's name
    base_model_source: str
    labels: list[str]
    label_counts: dict[str, dict[str, int]]  # split -> label -> rows
    data_source: str | None
    report: dict[str, Any] | None
    train: dict[str, Any]
    weights: Weights
    total_steps: int | None = None
    steps_run: int | None = None  # the last step training reached (the weights may be from an earlier one)
    epoch: float | None = None
    seconds: float | None = None
    hardware: str | None = None
    stopped_early: bool | None = None
    early_stopping: dict[str, Any] = field(default_factory=dict)
    evaluations: list[Evaluation] = field(default_factory=list)
    language: str | None = None
    ftc_version: str = "unknown"
    notes: list[str] = field(default_factory=list)


def ftc_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ftc")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- gathering


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _data_dir(root: Path, config: dict[str, Any]) -> Path:
    from engine.train.checkpoints import session_path

    folder = config.get("data", {}).get("dir")
    return session_path(root, str(folder)) if folder else root / "data"


def model_weights(root: Path) -> Weights:
    """What the session's model/ holds, from the journal's job summary: best (restored) or final weights."""
    from engine import protocol

    summary = None
    for env in _events(root / "events.jsonl"):
        if isinstance(env.body, protocol.JobFinished) and env.body.summary.steps is not None:
            summary = env.body.summary
    if summary is None:
        return Weights("model/", None, "the model training saved at its end", True)
    if summary.restored_best and summary.best_step is not None:
        name = summary.best_metric_name or "the early-stopping metric"
        return Weights(
            "model/",
            summary.best_step,
            f"the best weights by {name} (step {summary.best_step} of {summary.steps}), restored at the "
            "end of training",
            True,
        )
    return Weights("model/", summary.steps, f"the final weights (step {summary.steps})", True)


def _events(path: Path) -> list[Any]:
    from engine.journal import read_all

    if not path.is_file():
        return []
    try:
        return read_all(path)
    except Exception:  # a damaged journal: the card says less, it does not fail an export
        return []


def _local_name(folder: Path) -> str:
    """A local model folder's name for the card; a generic one ('model/') is named by its parent."""
    folder = folder.resolve()
    generic = {"model", "models", "checkpoint", "weights", "hf", "export"}
    if folder.name.lower() in generic and folder.parent.name:
        return folder.parent.name
    return folder.name


def gather(root: Path, weights: Weights) -> Facts:
    """The facts of the session at ``root`` about ``weights``; what is missing is left out, not invented."""
    from engine import protocol
    from engine.config import ConfigError, load_toml
    from engine.train.checkpoints import _base_source
    from engine.train.config import TrainSection

    try:
        config = load_toml(root / "config.toml")
    except ConfigError:
        config = {}
    source = _base_source(root, config) or "unknown"
    base = _local_name(Path(source)) if Path(source).is_dir() else source
    data = _data_dir(root, config)
    manifest = _json(data / "manifest.json") or {}
    labels = [str(x) for x in manifest.get("labels", [])]
    counts = {
        split: {str(k): int(v) for k, v in info.get("label_counts", {}).items()}
        for split, info in manifest.get("splits", {}).items()
        if isinstance(info, dict)
    }
    report = _json(data / "report.json")
    train_raw = config.get("train", {})
    try:
        train = TrainSection.model_validate(train_raw).model_dump(mode="json")
    except Exception:
        train = dict(train_raw) if isinstance(train_raw, dict) else {}
    data_cfg = config.get("data", {})
    facts = Facts(
        session_id=root.name,
        base_model=base,
        base_model_source=source,
        labels=labels,
        label_counts=counts,
        data_source=str(data_cfg.get("source") or data_cfg.get("dir") or data),
        report=report if isinstance(report, dict) else None,
        train=train,
        weights=weights,
        early_stopping=dict(train.get("early_stopping") or {}),
        ftc_version=ftc_version(),
    )
    step = weights.step
    started: float | None = None
    last: float | None = None
    seconds = 0.0
    val: Evaluation | None = None
    test: Evaluation | None = None
    for env in _events(root / "events.jsonl"):
        body = env.body
        if isinstance(body, protocol.JobStarted) and body.job == "train":
            if started is not None and last is not None:
                seconds += last - started
            started, last = env.ts, None
            facts.total_steps = body.total_steps or facts.total_steps
        elif isinstance(body, protocol.StepEnded) and started is not None:
            last = env.ts
            facts.steps_run = body.step
            if step is None or body.step <= step:
                facts.epoch = body.epoch if body.epoch is not None else facts.epoch
        elif isinstance(body, protocol.EvaluationEnded):
            ev = Evaluation(
                body.split,
                body.step,
                dict(body.metrics),
                {k: dict(v) for k, v in body.per_class.items()},
                [list(row) for row in body.confusion] or None,  # journals before protocol 1.3 lack it
            )
            if body.split == "validation" and body.step == step:
                val = ev
            elif body.split == "test" and weights.final_model:
                test = ev
        elif isinstance(body, protocol.LogRecorded) and body.text.startswith(HARDWARE_PREFIX):
            facts.hardware = body.text[len(HARDWARE_PREFIX) :]
        elif isinstance(body, protocol.JobFinished) and body.summary.steps is not None:
            facts.stopped_early = body.summary.stopped_early
    if started is not None and last is not None:
        seconds += last - started
    facts.seconds = seconds if seconds > 0 else None
    facts.evaluations = [e for e in (val, test) if e is not None]
    if val is None and step is not None:
        facts.notes.append(f"No validation evaluation was recorded at step {step}.")
    if not weights.final_model:
        facts.notes.append(
            "The test split is evaluated once, at the end of training, with the model training leaves "
            "in model/; these weights are a checkpoint, so no test figures are given for them."
        )
    return facts


# ---------------------------------------------------------------- writing


def _scalar(value: Any) -> str:
    """A YAML scalar: JSON's form of it (strings quoted and escaped), which YAML reads as the same value."""
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return json.dumps(value, ensure_ascii=False)


def _key(key: str) -> str:
    """A mapping key: plain when it is a simple name (as hub cards write them), else quoted."""
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key) else _scalar(key)


def _yaml(value: Any, indent: int = 0) -> list[str]:
    """Block-style YAML lines for nested dicts and lists of JSON scalars."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_key(str(key))}:")
                lines.extend(_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{_key(str(key))}: {_scalar(item) if item != {} else '{}'}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and item:
                sub = _yaml(item, indent + 2)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return lines


def front_matter(facts: Facts) -> dict[str, Any]:
    """The card's metadata as the hub reads it (hub-docs modelcard.md): plain values only."""
    meta: dict[str, Any] = {}
    if facts.language:
        meta["language"] = [facts.language]
    meta["library_name"] = "transformers"
    meta["pipeline_tag"] = "text-classification"
    meta["base_model"] = facts.base_model
    meta["tags"] = ["ftc", "text-classification"]
    ids = []
    for ev in facts.evaluations:
        for name in ev.metrics:
            if name in HUB_METRICS and HUB_METRICS[name][0] not in ids:
                ids.append(HUB_METRICS[name][0])
    if ids:
        meta["metrics"] = ids
    results = []
    dataset = Path(facts.data_source).name if facts.data_source else "ftc-data"
    for ev in facts.evaluations:
        metrics = []
        for name, value in ev.metrics.items():
            if name not in HUB_METRICS:
                continue
            hub, pretty, args = HUB_METRICS[name]
            entry: dict[str, Any] = {"type": hub, "value": float(value), "name": f"{pretty} ({ev.split})"}
            if args:
                entry["args"] = args
            metrics.append(entry)
        results.append(
            {
                "task": {"type": "text-classification", "name": "Text Classification"},
                "dataset": {"name": dataset, "type": dataset, "split": ev.split},
                "metrics": metrics,
            }
        )
    if results:
        meta["model-index"] = [{"name": facts.session_id, "results": results}]
    return meta


def confusion_matrix(ev: Evaluation, labels: list[str]) -> list[list[int]] | None:
    """The confusion matrix [true][predicted]: recorded, or for two classes derived from recall and support;
    None if it cannot be exact."""
    n = len(labels)
    if ev.confusion is not None and len(ev.confusion) == n and all(len(row) == n for row in ev.confusion):
        return [[int(v) for v in row] for row in ev.confusion]
    if len(labels) != 2 or any(name not in ev.per_class for name in labels):
        return None
    fig = [ev.per_class[name] for name in labels]
    support = [round(f.get("support", 0.0)) for f in fig]
    hit = [round(f.get("recall", 0.0) * s) for f, s in zip(fig, support, strict=True)]
    matrix = [[hit[0], support[0] - hit[0]], [support[1] - hit[1], hit[1]]]
    for i in range(2):
        predicted = matrix[0][i] + matrix[1][i]
        precision = fig[i].get("precision", 0.0)
        if predicted and abs(matrix[i][i] / predicted - precision) > 1e-6:
            return None  # the recorded figures disagree with the derivation: say nothing rather than guess
    return matrix


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if value is None:
        return "-"
    return str(value)


def _duration(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s" if m else f"{sec}s"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def model_card(facts: Facts, *, export: dict[str, Any] | None = None) -> str:
    """README.md for the weights in ``facts``: front matter, then the body. ``export``: what the format's
    writer returned (its "format": hf or savedmodel), or None for the session's own model/ folder."""
    export_format = (export or {}).get("format")
    meta = front_matter(facts)
    lines = ["---", *_yaml(meta), "---", ""]
    n = len(facts.labels)
    lines += [
        f"# {facts.session_id}",
        "",
        f"A text classifier ({n} labels) fine-tuned with ftc from "
        f"`{facts.base_model}` on `{facts.data_source}`. "
        f"Weights: {facts.weights.name}, {facts.weights.note}.",
        "",
    ]
    lines += _labels_section(facts)
    lines += _report_section(facts)
    lines += _training_section(facts)
    lines += _evaluation_section(facts)
    if export:
        lines += _export_section(export)
    lines += _usage_section(facts, export_format)
    lines += [
        "## Provenance",
        "",
        f"- ftc version: {facts.ftc_version}",
        f"- session: `{facts.session_id}`",
        f"- weights: {facts.weights.name} ({facts.weights.note})",
        f"- base model: `{facts.base_model_source}`",
        f"- card written: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        "",
    ]
    return "\n".join(lines)


def _labels_section(facts: Facts) -> list[str]:
    splits = [s for s in SPLITS if s in facts.label_counts]
    lines = ["## Labels and class balance", ""]
    if not facts.labels:
        return [*lines, "The labels were not recorded (no manifest.json in the session's data).", ""]
    lines.append("| id | label | " + " | ".join(f"{s} rows" for s in splits) + " |")
    lines.append("|---|---|" + "---|" * len(splits))
    for i, name in enumerate(facts.labels):
        counts = []
        for s in splits:
            c = facts.label_counts[s].get(name, 0)
            total = sum(facts.label_counts[s].values()) or 1
            counts.append(f"{c:,} ({c / total:.1%})")
        lines.append(f"| {i} | {_cell(name)} | " + " | ".join(counts) + " |")
    return [*lines, ""]


def _report_section(facts: Facts) -> list[str]:
    lines = ["## Data tests", ""]
    report = facts.report
    if report is None:
        return [
            *lines,
            "No data-test report in the session (the data was prepared outside this session, "
            "or before ftc wrote data/report.json).",
            "",
        ]
    tests = [t for t in report.get("tests", []) if isinstance(t, dict)]
    by = {k: [t["name"] for t in tests if t.get("status") == k] for k in ("pass", "warn", "fail")}
    rows = report.get("rows", {})
    lines.append(
        f"Overall: **{report.get('status', '?')}** ({len(by['pass'])} passed, {len(by['warn'])} warned, "
        f"{len(by['fail'])} failed) on {rows.get('read', '?'):,} rows read, {rows.get('valid', '?'):,} "
        f"valid, {rows.get('rejected', 0):,} rejected."
        if isinstance(rows.get("read"), int) and isinstance(rows.get("valid"), int)
        else f"Overall: **{report.get('status', '?')}**"
    )
    lines += ["", "| test | status | figure |", "|---|---|---|"]
    for t in tests:
        lines.append(f"| {_cell(t.get('name'))} | {_cell(t.get('status'))} | {_cell(t.get('figure', ''))} |")
    return [*lines, ""]


def _training_section(facts: Facts) -> list[str]:
    lines = ["## Training", "", "| setting | value |", "|---|---|"]
    for key in _TRAIN_KEYS:
        if key == "epochs" and facts.train.get("max_steps"):
            continue  # max_steps decides the run's length
        if key in facts.train and facts.train[key] is not None:
            lines.append(f"| {key} | {_cell(_fmt(facts.train[key]))} |")
    es = facts.early_stopping
    if es:
        lines.append(
            f"| early_stopping | metric {es.get('metric')}, patience {es.get('patience')}, "
            f"restore_best {es.get('restore_best')} |"
        )
    lines.append("")
    step = facts.weights.step
    done = f"step {step:,}" if step is not None else "an unrecorded step"
    epoch = f" (epoch {facts.epoch:.2f})" if facts.epoch else ""
    lines.append(f"- weights from {done}{epoch}")
    if facts.steps_run is not None:
        total = f" of {facts.total_steps:,} planned" if facts.total_steps else ""
        lines.append(f"- training ran {facts.steps_run:,} steps{total}")
    if facts.stopped_early:
        lines.append("- stopped early (no improvement within the patience)")
    spent = f"{_duration(facts.seconds)} (the whole run)" if facts.seconds else "not recorded"
    lines.append(f"- training time: {spent}")
    lines.append(f"- hardware: {facts.hardware or 'not recorded'}")
    return [*lines, ""]


def _evaluation_section(facts: Facts) -> list[str]:
    lines = ["## Evaluation", ""]
    if not facts.evaluations:
        lines.append("No evaluation of these weights was recorded.")
    for ev in facts.evaluations:
        lines += [f"### {ev.split} split (step {ev.step})", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in ev.metrics.items()]
        lines += ["", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for name in facts.labels or list(ev.per_class):
            f = ev.per_class.get(name)
            if f is None:
                continue
            lines.append(
                f"| {_cell(name)} | {f.get('precision', 0):.4f} | {f.get('recall', 0):.4f} | "
                f"{f.get('f1', 0):.4f} | {round(f.get('support', 0)):,} |"
            )
        lines.append("")
        matrix = confusion_matrix(ev, facts.labels)
        how = (
            "as recorded by the evaluation"
            if ev.confusion is not None
            else "derived exactly from the recorded per-class recall and support, and checked against the "
            "precision"
        )
        if matrix is None:
            lines.append(
                "Confusion matrix: not recorded (ftc's evaluation events keep per-class precision, recall, "
                "F1 and support; with more than two classes the matrix does not follow from them)."
            )
        else:
            lines += [
                f"Confusion matrix (rows: true label, columns: predicted; {how}):",
                "",
                "| true \\ predicted | " + " | ".join(_cell(x) for x in facts.labels) + " |",
                "|---|" + "---|" * len(facts.labels),
            ]
            for name, row in zip(facts.labels, matrix, strict=True):
                lines.append(f"| {_cell(name)} | " + " | ".join(f"{v:,}" for v in row) + " |")
        lines.append("")
    lines += [f"- {note}" for note in facts.notes]
    return [*lines, ""] if facts.notes else lines


def _export_section(export: dict[str, Any]) -> list[str]:
    lines = ["## This export", "", "| | |", "|---|---|"]
    for key, value in export.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        lines.append(f"| {_cell(key)} | {_cell(_fmt(value))} |")
    return [*lines, ""]


def _usage_section(facts: Facts, export_format: str | None) -> list[str]:
    max_length = facts.train.get("max_length", 128)
    hf = [
        "### transformers v5 / PyTorch (`ftc export --format hf`)",
        "",
        "```python",
        "import torch",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("PATH")',
        'model = AutoModelForSequenceClassification.from_pretrained("PATH")',
        f'batch = tokenizer(["some text"], truncation=True, max_length={max_length}, return_tensors="pt")',
        "with torch.no_grad():",
        "    probs = model(**batch).logits.softmax(-1)",
        "print(model.config.id2label[int(probs.argmax(-1)[0])])",
        "```",
        "",
    ]
    sm = [
        "### TensorFlow SavedModel (`ftc export --format savedmodel`)",
        "",
        "```python",
        "import tensorflow as tf",
        "",
        'loaded = tf.saved_model.load("PATH")',
        'serve = loaded.signatures["serving_default"]',
        "from tokenizers import Tokenizer  # the tokenizer files are in the export's tokenizer/ folder",
        "",
        'tok = Tokenizer.from_file("PATH/tokenizer/tokenizer.json")',
        f"tok.enable_truncation({max_length})  # as in training",
        'enc = tok.encode_batch(["some text"])',
        "width = max(len(e.ids) for e in enc)",
        "ids = tf.constant([e.ids + [0] * (width - len(e.ids)) for e in enc], tf.int32)",
        "mask = tf.constant([[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in enc], tf.int32)",
        "out = serve(input_ids=ids, attention_mask=mask)  # probabilities, label_id, label",
        "```",
        "",
        "The label names, in class-id order, are in `assets/labels.txt` (and the `labels` signature).",
        "",
    ]
    tf4 = [
        "### TensorFlow with transformers 4.x (the session's `model/` folder)",
        "",
        "```python",
        "from transformers import AutoTokenizer, TFAutoModelForSequenceClassification",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("PATH")',
        'model = TFAutoModelForSequenceClassification.from_pretrained("PATH")',
        "```",
        "",
        "Or `ftc predict --model PATH --input FILE --output OUT.h5`; `ftc export` writes the other formats.",
        "",
    ]
    order = {"hf": [hf, sm], "savedmodel": [sm, hf], None: [tf4, hf, sm]}[export_format]
    lines = ["## How to use", "", "`PATH` is the folder of an export (or the session's model/ folder).", ""]
    for block in order:
        lines += block
    return lines
