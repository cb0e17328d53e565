"""Data tests on prepared shards: per-split label balance, split proportions, each shard's order and mix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.data import stats
from engine.data.checks import CheckResult, OrderAcc, balance_result, worst
from engine.data.scan import Progress
from engine.data.shards import SPLITS, read_shard

# A shard is off when its mix differs from the whole prepared data's mix by more than this
# (in share of rows) ...
MIX_TOLERANCE = 0.03
# ... and by more than chance explains (Bonferroni over all shards).
ALPHA = 1e-3
# A shard holding one label fails when chance cannot explain it; one of this many rows or more
# that chance can explain (a short last shard of very imbalanced data) is still a warning.
SINGLE_LABEL_ROWS = 20


def prepared_results(
    out: Path, manifest: dict[str, Any], on_chunk: Progress | None = None
) -> list[CheckResult]:
    labels = manifest["labels"]
    results = [
        balance_result(manifest["splits"][s]["label_counts"], name=f"label_balance.{s}")
        for s in SPLITS
        if manifest["splits"][s]["rows"]
    ]
    results.append(labels_in_train_result(manifest))
    results.append(proportions_result(manifest))
    results.append(shard_order_result(out, manifest, len(labels), on_chunk))
    return results


def labels_in_train_result(manifest: dict[str, Any]) -> CheckResult:
    """Every label must have rows in train: a model cannot learn a class it never sees."""
    splits = manifest["splits"]
    missing = [lab for lab in manifest["labels"] if not splits["train"]["label_counts"].get(lab, 0)]
    if not missing:
        return CheckResult(
            "labels_in_train",
            "pass",
            f"all {len(manifest['labels'])} labels have train rows",
            0.0,
            "nothing to do",
        )
    where = {
        lab: ", ".join(f"{s} {splits[s]['label_counts'].get(lab, 0)}" for s in SPLITS[1:]) for lab in missing
    }
    figure = "no train rows for " + "; ".join(f"{lab!r} ({where[lab]})" for lab in missing[:5])
    return CheckResult(
        "labels_in_train",
        "fail",
        figure,
        float(len(missing)),
        "the model cannot learn these labels: add rows for them, merge them, or raise the train fraction",
        [],
        {"missing": missing},
    )


def proportions_result(manifest: dict[str, Any]) -> CheckResult:
    """Each split's label shares against the whole prepared set, in percentage points."""
    labels = manifest["labels"]
    whole = np.array(
        [sum(manifest["splits"][s]["label_counts"][lab] for s in SPLITS) for lab in labels], float
    )
    probs = whole / whole.sum()
    gaps: dict[str, float] = {}
    for s in SPLITS:
        counts = np.array([manifest["splits"][s]["label_counts"][lab] for lab in labels], float)
        if counts.sum():
            gaps[s] = float(np.abs(counts / counts.sum() - probs).max())
    worst_gap = max(gaps.values(), default=0.0)
    status = "pass" if worst_gap <= 0.01 else "warn" if worst_gap <= 0.03 else "fail"
    figure = "largest label-share gap vs the whole: " + ", ".join(
        f"{s} {g * 100:.2f} pt" for s, g in gaps.items()
    )
    advice = (
        "splits keep the label proportions"
        if status == "pass"
        else "splits differ in label mix: rare labels?"
    )
    return CheckResult(
        "split_proportions", status, figure, round(worst_gap * 100, 4), advice, [], {"gaps": gaps}
    )


def shard_order_result(out: Path, manifest: dict[str, Any], k: int, on_chunk: Progress | None) -> CheckResult:
    """Every shard: label mix vs the whole data (chi-square + tolerance), single label, runs inside it."""
    n_shards = sum(len(manifest["splits"][s]["shards"]) for s in SPLITS)
    bad: list[dict[str, Any]] = []
    offending: list[int] = []
    worst_gap, worst_status, seen = 0.0, "pass", 0
    # Against all splits together, not the shard's own split: a split that drifted from the
    # whole (split_proportions reports it) must not become the reference its shards agree with.
    probs = np.array(
        [sum(manifest["splits"][s]["label_counts"][lab] for s in SPLITS) for lab in manifest["labels"]],
        float,
    )
    probs /= probs.sum()
    for s in SPLITS:
        split = manifest["splits"][s]
        if not split["rows"]:
            continue
        for i, meta in enumerate(split["shards"]):
            frame = read_shard(out, s, i, columns=["row", "label"], manifest=manifest)
            ids = frame["label"].to_numpy()
            counts = np.bincount(ids, minlength=k).astype(float)
            gap = float(np.abs(counts / counts.sum() - probs).max())
            worst_gap = max(worst_gap, gap)
            order = OrderAcc(window=max(50, len(ids) // 20))
            order.add(ids.astype(np.int32), frame["row"].tolist())
            inner = order.result(counts.astype(np.int64), name="order")
            problems, notes = [], []
            single = (counts > 0).sum() == 1 and (probs > 0).sum() > 1
            if single and stats.single_label_chance(len(ids), probs) < ALPHA / n_shards:
                problems.append("single label")
            elif single and len(ids) >= SINGLE_LABEL_ROWS:
                # e.g. a 25-row last shard at 95/5: one label 28% of the time by chance alone.
                notes.append("single label (a short shard: chance can explain it)")
            elif gap > MIX_TOLERANCE and stats.chi2_pvalue(counts, probs) < ALPHA / n_shards:
                problems.append(f"label mix off by {gap * 100:.1f} pt")
            if inner.status == "fail":
                problems.append("labels sorted inside the shard")
            if problems or notes:
                worst_status = worst([worst_status, "fail" if problems else "warn"])
                bad.append({"shard": meta["path"], "problems": problems + notes})
                offending.extend(frame["row"].head(10).tolist())
            seen += 1
            if on_chunk is not None:
                on_chunk("shard-checks", seen, n_shards, seen / max(1, n_shards))
    figure = f"{len(bad)}/{n_shards} shards off; largest label-share gap {worst_gap * 100:.2f} pt"
    advice = (
        "shards are shuffled" if not bad else "shards are not shuffled: prepare again (do not hand-cut files)"
    )
    if bad:
        figure += " (" + "; ".join(f"{b['shard']}: {', '.join(b['problems'])}" for b in bad[:3]) + ")"
    status = worst([worst_status])
    return CheckResult(
        "shard_order", status, figure, round(worst_gap * 100, 4), advice, offending[:100], {"bad": bad}
    )
