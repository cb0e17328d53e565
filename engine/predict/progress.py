"""Throughput, ETA and the live label distribution of a prediction run, and their one-line rendering.

No TensorFlow here: the CLI's plain output and the TUI screen render the same typed ``detail``.
"""

from __future__ import annotations

import time
from collections import deque

from engine import protocol

STAGE = "predict"
LAST_ROWS = 5
# Without a TTY each chunk's last rows get one line: a few rows, texts cut short.
PLAIN_ROWS = 3
PLAIN_TEXT = 32
# Rates over a sliding window, so the ETA follows the current speed rather than the start-up.
WINDOW_S = 30.0


class Tracker:
    """Counts rows, tokens and padding; gives rates over a sliding window and an ETA."""

    def __init__(self, done: int, total: int | None, bytes_done: int, bytes_total: int) -> None:
        self.start_done = done
        self.done = done
        self.total = total
        self.bytes_done = bytes_done
        self.bytes_total = bytes_total
        self.real_tokens = 0
        self.padded_tokens = 0
        self.started = time.monotonic()
        self._window: deque[tuple[float, int, int]] = deque([(self.started, done, bytes_done)])

    def add(self, rows: int, bytes_done: int, real_tokens: int, padded_tokens: int) -> None:
        self.done += rows
        self.bytes_done = max(self.bytes_done, bytes_done)
        self.real_tokens += real_tokens
        self.padded_tokens += padded_tokens
        now = time.monotonic()
        self._window.append((now, self.done, self.bytes_done))
        while len(self._window) > 2 and now - self._window[0][0] > WINDOW_S:
            self._window.popleft()

    def rate(self) -> float | None:
        (t0, d0, _), (t1, d1, _) = self._window[0], self._window[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else None

    def eta_s(self) -> float | None:
        (t0, d0, b0), (t1, d1, b1) = self._window[0], self._window[-1]
        if t1 <= t0:
            return None
        if self.total is not None:
            rate = (d1 - d0) / (t1 - t0)
            return (self.total - self.done) / rate if rate > 0 else None
        # Text files have no row count up front: the byte position says how far along we are.
        byte_rate = (b1 - b0) / (t1 - t0)
        return (self.bytes_total - self.bytes_done) / byte_rate if byte_rate > 0 else None

    def estimated_total(self) -> int | None:
        if self.total is not None:
            return self.total
        if self.bytes_done <= 0 or self.done <= 0:
            return None
        return round(self.done * self.bytes_total / self.bytes_done)

    def padding(self) -> float | None:
        return 1 - self.real_tokens / self.padded_tokens if self.padded_tokens else None

    def tokens_per_s(self) -> float | None:
        elapsed = time.monotonic() - self.started
        return self.real_tokens / elapsed if elapsed > 0 and self.real_tokens else None


def line(report: protocol.ProgressReported) -> str:
    """One plain line for a prediction progress event: rows, speed, ETA, label mix and flags."""
    d = report.detail
    total = report.total or d.estimated_total
    approx = "~" if report.total is None and total else ""
    done = f"{report.done:,}" + (f"/{approx}{total:,}" if total else "")
    parts = [f"{report.stage}: {done} rows"]
    if report.rate:
        parts.append(f"{report.rate:,.0f} rows/s")
    if report.eta_s is not None:
        parts.append(f"eta {_duration(report.eta_s)}")
    if d.padding is not None:
        parts.append(f"pad {d.padding:.0%}")
    counts = d.label_counts
    n = sum(counts.values())
    if n:
        parts.append(" ".join(f"{k} {v / n:.0%}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    if d.flag_counts:
        parts.append("flagged " + " ".join(f"{k} {v:,}" for k, v in sorted(d.flag_counts.items())))
    return "  ".join(parts)


def rows_line(rows: list[protocol.RowWritten], n: int = PLAIN_ROWS, text_width: int = PLAIN_TEXT) -> str:
    """The last rows written, on one short line: row, label (or flag), score and the text's start."""
    parts = []
    for r in rows[-n:]:
        if r.label:
            score = "" if r.score is None else f" {r.score:.2f}"
            what = f"{r.label}{score}"
        else:
            what = f"[{r.flag or 'flagged'}]"
        text = " ".join(r.text.split())
        if len(text) > text_width:
            text = text[: text_width - 1] + "…"
        parts.append(f"#{r.row:,} {what}" + (f" {text!r}" if text else ""))
    return "last rows: " + " | ".join(parts)


def _duration(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
