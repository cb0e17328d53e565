"""The data-test result type and the label tests (rejects, order by position, balance), fed chunk by chunk."""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.data import stats

MAX_OFFENDING = 100
# Window counts are merged pairwise when there are more than this many, keeping memory bounded.
MAX_WINDOWS = 2048


@dataclass
class CheckResult:
    """One data test's outcome, as shown in the CLI, the report and the TUI table."""

    name: str
    status: str  # pass | warn | fail
    figure: str
    value: float | None
    advice: str
    offending_rows: list[int] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def worst(statuses: list[str]) -> str:
    order = {"pass": 0, "warn": 1, "fail": 2}
    return max(statuses, key=lambda s: order[s], default="pass")


def cap_rows(rows: Any) -> list[int]:
    return [int(r) for r in list(rows)[:MAX_OFFENDING]]


# ---------------------------------------------------------------- rejects


def rejects_result(
    by_reason: dict[str, int], first_rows: dict[str, list[int]], rows_read: int
) -> CheckResult:
    """Rows that could not be used (malformed, empty text, missing label): never dropped silently."""
    count = sum(by_reason.values())
    share = count / max(1, rows_read)
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(by_reason.items())) or "none"
    figure = f"{count:,} of {rows_read:,} rows rejected ({share:.2%}): {reasons}"
    if count == 0:
        status, advice = "pass", "every row is usable"
    elif share <= 0.01:
        status, advice = (
            "warn",
            "a few rows cannot be used: the rejects file (--rejects PATH) lists each row and its reason",
        )
    else:
        status, advice = (
            "fail",
            "many rows cannot be used: check --text-col/--label-col, delimiter and encoding",
        )
    rows = sorted(r for kept in first_rows.values() for r in kept)
    return CheckResult(
        "rejected_rows", status, figure, float(count), advice, cap_rows(rows), {"by_reason": dict(by_reason)}
    )


# ---------------------------------------------------------------- order


class OrderAcc:
    """Label runs and per-window label counts by row position (labels as int ids, in file order)."""

    def __init__(self, window: int = 500) -> None:
        self.window = window
        self.runs = 0
        self.n = 0
        self._last: int | None = None
        self._run_start_row = 0
        self._run_len = 0
        self._longest: list[tuple[int, int]] = []  # heap of (length, start row)
        self.windows: list[np.ndarray] = []
        self.window_rows: list[int] = []

    def add(self, ids: np.ndarray, rows: list[int]) -> None:
        if not len(ids):
            return
        starts = stats.run_starts(ids)
        lengths = np.diff(np.append(starts, len(ids)))
        if self._last is not None and int(ids[0]) == self._last:
            self._run_len += int(lengths[0])  # the chunk continues the previous chunk's run
            starts, lengths = starts[1:], lengths[1:]
        if len(starts):
            self._close_run()
            self.runs += len(starts)
            # Only the longest runs of a chunk can enter the top list; the last one stays open.
            body = np.argsort(lengths[:-1])[::-1][:MAX_OFFENDING]
            for j in body:
                self._push(int(lengths[j]), rows[int(starts[j])])
            self._run_start_row, self._run_len = rows[int(starts[-1])], int(lengths[-1])
        self._last = int(ids[-1])
        i = 0
        while i < len(ids):
            pos = self.n % self.window
            if pos == 0:
                if len(self.windows) >= MAX_WINDOWS:
                    self._merge_windows()
                self.windows.append(np.zeros(0, dtype=np.int64))
                self.window_rows.append(rows[i])
            take = min(self.window - pos, len(ids) - i)
            counts = np.bincount(ids[i : i + take])
            w = self.windows[-1]
            if len(w) < len(counts):
                w = self.windows[-1] = np.pad(w, (0, len(counts) - len(w)))
            w[: len(counts)] += counts
            self.n += take
            i += take

    def _push(self, length: int, start_row: int) -> None:
        heapq.heappush(self._longest, (length, start_row))
        if len(self._longest) > MAX_OFFENDING:
            heapq.heappop(self._longest)

    def _close_run(self) -> None:
        if self._run_len:
            self._push(self._run_len, self._run_start_row)
            self._run_len = 0

    def _merge_windows(self) -> None:
        pairs = range(0, len(self.windows) - 1, 2)
        self.windows = [_add(self.windows[i], self.windows[i + 1]) for i in pairs]
        self.window_rows = self.window_rows[::2][: len(self.windows)]
        self.window *= 2

    def result(self, counts: np.ndarray, name: str = "order") -> CheckResult:
        self._close_run()
        if self.n < 20 or (counts > 0).sum() < 2:
            return CheckResult(
                name,
                "pass",
                f"{self.n} rows with {(counts > 0).sum()} label(s): nothing to order",
                None,
                "nothing to do",
            )
        expected, z = stats.runs_z(self.runs, counts)
        ratio = self.runs / expected
        probs = counts / counts.sum()
        full = [
            (r, w) for r, w in zip(self.window_rows, self.windows, strict=True) if w.sum() >= self.window // 2
        ]
        noise = stats.expected_tvd(self.window, probs)
        off = [(r, d) for r, w in full if (d := stats.tvd(_vec(w, len(counts)), probs)) > 0.1 + 3 * noise]
        max_tvd = max((stats.tvd(_vec(w, len(counts)), probs) for _, w in full), default=0.0)
        share_off = len(off) / max(1, len(full))
        clustered = z < -4
        if (clustered and ratio < 0.8) or share_off > 0.2:
            status = "fail"
            advice = "labels are sorted or clustered by position: shuffle before splitting or chunking"
        elif (clustered and ratio < 0.95) or off:
            status = "warn"
            advice = "labels drift with position: make sure training shuffles across the whole file"
        else:
            status, advice = "pass", "labels look shuffled"
        longest = sorted(self._longest, reverse=True)
        figure = (
            f"{self.runs:,} label runs vs {expected:,.0f} expected if shuffled (z={z:.1f}); "
            f"{len(off)}/{len(full)} windows of {self.window:,} rows off the mix (max TVD {max_tvd:.2f})"
        )
        return CheckResult(
            name,
            status,
            figure,
            round(ratio, 4),
            advice,
            cap_rows(start for _, start in longest) if status != "pass" else [],
            {
                "runs": self.runs,
                "expected_runs": expected,
                "z": z,
                "window": self.window,
                "windows_off": len(off),
                "windows": len(full),
                "max_tvd": max_tvd,
                "longest_runs": [{"start_row": s, "rows": n} for n, s in longest[:10]],
            },
        )


def _vec(counts: np.ndarray, k: int) -> np.ndarray:
    v = np.zeros(k, dtype=np.float64)
    v[: len(counts)] = counts
    return v


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(max(len(a), len(b)), dtype=np.int64)
    out[: len(a)] += a
    out[: len(b)] += b
    return out


# ---------------------------------------------------------------- balance


def balance_result(label_counts: dict[str, int], name: str = "label_balance") -> CheckResult:
    counts = {k: v for k, v in label_counts.items() if v > 0}
    total = sum(counts.values())
    if len(counts) < 2:
        only = next(iter(counts), "none")
        return CheckResult(
            name,
            "fail",
            f"{len(counts)} label ({only!r}) in {total:,} rows",
            float(len(counts)),
            "a classifier needs at least two labels: check --label-col or the file",
        )
    minority, low = min(counts.items(), key=lambda kv: kv[1])
    high = max(counts.values())
    ratio = high / low
    share = low / total
    figure = (
        f"{len(counts)} labels; imbalance {ratio:.1f}:1; minority {minority!r} {share:.1%} ({low:,} rows)"
    )
    if ratio >= 20 or low < 10:
        status, advice = "fail", "too few minority rows: collect more, oversample it, or merge rare labels"
    elif ratio >= 3:
        status, advice = "warn", "imbalanced: train with class weights or balanced sampling, watch macro-F1"
    else:
        status, advice = "pass", "balanced enough for plain training"
    return CheckResult(name, status, figure, round(ratio, 3), advice, [], {"label_counts": counts})
