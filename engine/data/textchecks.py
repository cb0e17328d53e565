"""Data tests on the texts: encoding damage, short texts, lengths, duplicates, conflicts, leakage, tokens."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from typing import Any

import numpy as np

from engine.data.checks import MAX_OFFENDING, CheckResult, cap_rows
from engine.data.hashindex import HashIndex, group_starts

SHORT_CHARS = 3
DENSE_LENGTHS = 1 << 16  # lengths below this are counted in an array; longer ones in a Counter
# UTF-8 read as cp1252/latin-1 (Ã©, â€™, Â , ðŸ emoji lead-in) or already replaced with U+FFFD.
_UTF8_AS_CP1252 = "Ã[\u0080-\u00bf\u0152-\u0192\u02c6-\u02dc\u2013-\u2122]|Â[\u00a0-\u00bf]|â€|ðŸ|ï»¿"
# cp1252 (or UTF-8) bytes read as a DOS or Mac code page: the accented letters of Western text turn
# into box drawing, Greek and math symbols (cp437: cafΘ, Stra▀e, caf├⌐) or into upper-case letters
# and marks inside lower-case words (mac_roman: cafÈ, ‡ la), which no real text writes.
_CODE_PAGE_GARBAGE = (
    "\u2500-\u259f\u2320\u2321\u2261\u2219\u221a\u207f\u2021\u2030\u00b8\u02c6\u02da\u02d9"
    "\u00f7\u00b1\u2264\u2265\u0393\u0398\u03a3\u03a6\u03a9\u03b1\u03b4\u03b5\u03c0\u03c3\u03c4\u03c6"
)
_READ_AS_CODE_PAGE = (
    f"[A-Za-z][{_CODE_PAGE_GARBAGE}]|[{_CODE_PAGE_GARBAGE}][A-Za-z]|[a-z][\u00c0-\u00d6\u00d8-\u00de]"
)
MOJIBAKE = re.compile(f"{_UTF8_AS_CP1252}|{_READ_AS_CODE_PAGE}")
# A character every MOJIBAKE match holds: one scan for it is ~10x cheaper than the full pattern.
_MOJIBAKE_CHAR = re.compile(f"[{_CODE_PAGE_GARBAGE}\u00c0-\u00d6\u00d8-\u00de\u00e2\u00f0\u00ef]")


def has_mojibake(text: str) -> bool:
    """Whether a text shows encoding damage (ASCII text cannot; most text has no suspect character)."""
    return (
        not text.isascii() and _MOJIBAKE_CHAR.search(text) is not None and MOJIBAKE.search(text) is not None
    )


REPLACEMENT = "\ufffd"
SPLIT_NAMES = ("train", "validation", "test")


# ---------------------------------------------------------------- texts


class TextAcc:
    """Per-row text facts: hashes (spilled to disk), mojibake, replacement chars, short texts, lengths."""

    def __init__(self, hashes: HashIndex, sample_size: int = 20_000, seed: int = 0) -> None:
        self.hashes = hashes
        self.sample_size = sample_size
        self.mojibake: list[int] = []
        self.replacement: list[int] = []
        self.n_mojibake = self.n_replacement = self.n_short = self.n = 0
        self.short: list[int] = []
        # Exact: one bin per length up to DENSE_LENGTHS, and a count per distinct longer length.
        self.length_hist = np.zeros(DENSE_LENGTHS, dtype=np.int64)
        self.long_lengths: Counter[int] = Counter()
        self.sample: list[str] = []
        self._rng = random.Random(seed)

    def add(
        self, texts: list[str], rows: list[int], ids: np.ndarray, hashes: np.ndarray, split: Any = -1
    ) -> None:
        self.hashes.add(hashes, rows, ids, split)
        lengths = np.fromiter((len(t.strip()) for t in texts), dtype=np.int64, count=len(texts))
        dense = lengths < DENSE_LENGTHS
        self.length_hist += np.bincount(lengths[dense], minlength=DENSE_LENGTHS)
        if not dense.all():
            self.long_lengths.update(int(n) for n in lengths[~dense])
        for i in np.flatnonzero(lengths < SHORT_CHARS):
            self.n_short += 1
            if len(self.short) < MAX_OFFENDING:
                self.short.append(rows[i])
        for row, text in zip(rows, texts, strict=True):
            if text.isascii():
                continue  # both tests need a non-ASCII character
            if has_mojibake(text):
                self.n_mojibake += 1
                if len(self.mojibake) < MAX_OFFENDING:
                    self.mojibake.append(row)
            if REPLACEMENT in text:
                self.n_replacement += 1
                if len(self.replacement) < MAX_OFFENDING:
                    self.replacement.append(row)
        # Reservoir sample for token lengths: uniform over the file without knowing its size.
        for text in texts:
            self.n += 1
            if len(self.sample) < self.sample_size:
                self.sample.append(text)
            elif (j := self._rng.randrange(self.n)) < self.sample_size:
                self.sample[j] = text

    def short_result(self, empty: int, empty_rows: list[int]) -> CheckResult:
        total = self.n + empty
        bad = empty + self.n_short
        share = bad / max(1, total)
        figure = (
            f"{empty:,} empty (rejected), {self.n_short:,} under {SHORT_CHARS} chars; {share:.2%} of rows"
        )
        status = "pass" if bad == 0 else "warn" if share <= 0.05 else "fail"
        advice = {
            "pass": "no empty or near-empty texts",
            "warn": "a few empty/near-empty texts: they are rejected or carry little signal",
            "fail": "many empty texts: is --text-col the right column?",
        }[status]
        return CheckResult(
            "short_texts", status, figure, round(share, 6), advice, cap_rows(sorted(empty_rows + self.short))
        )

    def encoding_result(self, encoding: str | None) -> CheckResult:
        bad = self.n_mojibake + self.n_replacement
        share = bad / max(1, self.n)
        figure = (
            f"{self.n_mojibake:,} rows with mojibake (e.g. 'Ã©', 'â€™', 'cafΘ', 'cafÈ'), "
            f"{self.n_replacement:,} with U+FFFD"
        )
        status = "pass" if bad == 0 else "warn" if share <= 0.01 else "fail"
        advice = {
            "pass": "no encoding damage seen",
            "warn": f"some texts were mis-decoded before they reached this file (read as {encoding}); "
            "fix them at the source or with ftfy",
            "fail": f"many texts look mis-decoded: try another --encoding (now {encoding})",
        }[status]
        return CheckResult(
            "encoding_artifacts",
            status,
            figure,
            round(share, 6),
            advice,
            cap_rows(sorted(self.mojibake + self.replacement)),
        )

    def length_summary(self) -> dict[str, Any]:
        # The histogram over every distinct length (long ones are few), so percentiles are exact.
        values = np.concatenate(
            [np.flatnonzero(self.length_hist), np.array(sorted(self.long_lengths), dtype=np.int64)]
        )
        weights = np.concatenate(
            [
                self.length_hist[self.length_hist > 0],
                np.array([self.long_lengths[v] for v in sorted(self.long_lengths)], dtype=np.int64),
            ]
        )
        cum = np.cumsum(weights)
        total = int(cum[-1]) if len(cum) else 0

        def pct(q: float) -> int:
            return int(values[min(int(np.searchsorted(cum, q * total)), len(values) - 1)]) if total else 0

        longest = int(values.max(initial=0))
        # Powers of two from 8, as many as the longest text needs: no bin is open-ended.
        edges = [0, 8, 16, 32, 64, 128, 256, 512, 1024]
        while edges[-1] <= longest:
            edges.append(edges[-1] * 2)
        counts = [int(weights[(values >= a) & (values < b)].sum()) for a, b in itertools.pairwise(edges)]
        return {
            "p50": pct(0.5),
            "p95": pct(0.95),
            "p99": pct(0.99),
            "max": longest,
            "max_bin": longest,  # the 0.1 name of "max"
            "edges": edges,
            "counts": counts,
        }


# ---------------------------------------------------------------- duplicates, conflicts, leakage


def duplicate_rows(index: HashIndex) -> tuple[np.ndarray, np.ndarray]:
    """Every row repeating an earlier row's text (sorted), and its label id: what --dedupe drops."""
    rows, labels = [], []
    for rec in index.partitions():
        dup = ~group_starts(rec)
        rows.append(rec["row"][dup])
        labels.append(rec["label"][dup])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    all_rows, all_labels = np.concatenate(rows), np.concatenate(labels)
    order = np.argsort(all_rows)
    return all_rows[order], all_labels[order]


def duplicate_results(index: HashIndex, n_rows: int, splits: bool = False) -> list[CheckResult]:
    """Exact duplicates and conflicting labels (always), and train/eval leakage when rows carry a split."""
    dup_rows: list[int] = []
    conflict_rows: list[int] = []
    leak_rows: list[int] = []
    n_dup = n_conflict_texts = n_conflict_rows = n_eval = 0
    leaked = Counter[str]()
    for rec in index.partitions():
        first = group_starts(rec)
        gid = np.cumsum(first) - 1
        dup = ~first
        n_dup += int(dup.sum())
        dup_rows.extend(rec["row"][dup][:MAX_OFFENDING].tolist())
        # A group conflicts when its labels differ: compare each label with its group's first label.
        firsts = rec["label"][first][gid]
        differs = np.zeros(gid.max() + 1 if len(gid) else 0, dtype=bool)
        np.logical_or.at(differs, gid, rec["label"] != firsts)
        in_conflict = differs[gid]
        n_conflict_texts += int(differs.sum())
        n_conflict_rows += int(in_conflict.sum())
        conflict_rows.extend(rec["row"][in_conflict][:MAX_OFFENDING].tolist())
        if splits:
            in_train, in_val = np.zeros(len(differs), dtype=bool), np.zeros(len(differs), dtype=bool)
            np.logical_or.at(in_train, gid, rec["split"] == 0)
            np.logical_or.at(in_val, gid, rec["split"] == 1)
            n_eval += int((rec["split"] > 0).sum())
            val_in_train = (rec["split"] == 1) & in_train[gid]
            test_in_train = (rec["split"] == 2) & in_train[gid]
            # Test rows seen in validation inflate the scores early stopping picked the model by.
            test_in_val = (rec["split"] == 2) & in_val[gid]
            leaked["validation"] += int(val_in_train.sum())
            leaked["test"] += int(test_in_train.sum())
            leaked["test_in_validation"] += int(test_in_val.sum())
            leaked["rows"] += int((val_in_train | test_in_train | test_in_val).sum())
            for mask in (val_in_train, test_in_train | test_in_val):
                leak_rows.extend(rec["row"][mask][:MAX_OFFENDING].tolist())
    share = n_dup / max(1, n_rows)
    results = [
        CheckResult(
            "duplicates",
            "pass" if n_dup == 0 else "warn" if share <= 0.05 else "fail",
            f"{n_dup:,} rows repeat an earlier text ({share:.2%}, lower-cased, whitespace collapsed)",
            float(n_dup),
            "no duplicates"
            if n_dup == 0
            else "drop duplicates (retweets, re-posts) so they do not outweigh other rows",
            cap_rows(sorted(dup_rows)),
            {"duplicate_rows": n_dup},
        ),
        CheckResult(
            "conflicting_labels",
            "pass"
            if n_conflict_texts == 0
            else "warn"
            if n_conflict_rows / max(1, n_rows) <= 0.01
            else "fail",
            f"{n_conflict_texts:,} texts carry different labels ({n_conflict_rows:,} rows)",
            float(n_conflict_texts),
            "no conflicts"
            if n_conflict_texts == 0
            else "review these rows: a text cannot be two classes; relabel or drop",
            cap_rows(sorted(conflict_rows)),
        ),
    ]
    if splits:
        n_leak = leaked["rows"]
        share = n_leak / max(1, n_eval)
        results.append(
            CheckResult(
                "leakage",
                "pass" if n_leak == 0 else "warn" if share <= 0.005 else "fail",
                f"{leaked['validation']:,} validation and {leaked['test']:,} test rows also occur in train, "
                f"{leaked['test_in_validation']:,} test rows in validation",
                float(n_leak),
                "no leakage"
                if n_leak == 0
                else "deduplicate before splitting (ftc prepare --dedupe) or scores will be too high",
                cap_rows(sorted(leak_rows)),
                dict(leaked),
            )
        )
    return results


# ---------------------------------------------------------------- token lengths


DEFAULT_MODEL_LIMIT = 512  # what BERT-style encoders take when the tokenizer folder does not say


def model_limit(tokenizer_dir: str) -> tuple[int, str]:
    """The most tokens the model takes, and where that figure came from.

    tokenizer_config.json's model_max_length (when real: unset ones are 1e30), else
    config.json's max_position_embeddings, else 512.
    """
    import json
    from pathlib import Path

    folder = Path(tokenizer_dir)
    found: list[tuple[int, str]] = []
    for name, key in (
        ("tokenizer_config.json", "model_max_length"),
        ("config.json", "max_position_embeddings"),
    ):
        try:
            value = json.loads((folder / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int | float) and 0 < value < 1_000_000:
            found.append((int(value), f"{name} {key}"))
    return min(found, default=(DEFAULT_MODEL_LIMIT, "the usual encoder limit"))


def token_result(sample: list[str], tokenizer_dir: str, max_length: int) -> CheckResult:
    """Token length distribution and truncation rate on the reservoir sample (lazy tokenizer import).

    Advice never proposes a max_length beyond the model's limit; past it, it says how much is cut
    and suggests chunking the long texts.
    """
    lengths = np.array(_token_lengths(sample, tokenizer_dir), dtype=np.int64)
    if not len(lengths):
        return CheckResult("token_lengths", "pass", "no texts", None, "nothing to tokenize")
    limit, limit_from = model_limit(tokenizer_dir)
    usable = min(max_length, limit)
    over = float((lengths > usable).mean())
    past_limit = float((lengths > limit).mean())
    p50, p95, p99 = (int(np.percentile(lengths, q)) for q in (50, 95, 99))
    figure = f"p50 {p50}, p95 {p95}, p99 {p99}, max {lengths.max()} tokens; {over:.1%} over {usable}" + (
        f" (max_length {max_length} is capped at the model's {limit})" if max_length > limit else ""
    )
    chunking = (
        f"{past_limit:.1%} of texts are longer than the model's limit of {limit} tokens ({limit_from}) "
        "and are cut whatever max_length is: split long texts into chunks of at most "
        f"{limit} tokens (and pool their predictions)"
    )
    if over <= 0.01:
        status = "pass" if max_length <= limit else "warn"
        advice = (
            f"max_length {max_length} fits the texts"
            if max_length <= limit
            else f"max_length {max_length} is beyond the model's limit of {limit} ({limit_from}): use {limit}"
        )
    else:
        status = "warn" if over <= 0.10 else "fail"
        cut = "some texts are cut" if status == "warn" else "many texts are cut"
        if p99 <= limit:
            target = f"{p99}" if status == "warn" else f"about {p95}-{p99}"
            advice = f"{cut}: raise max_length to {target}"
        elif usable < limit:
            advice = f"{cut}: raise max_length to {limit}, the model's limit; beyond it, {chunking}"
        else:
            advice = f"{cut}: {chunking}"
    details = {
        "sample": len(lengths),
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "max": int(lengths.max()),
        "truncated_share": over,
        "max_length": max_length,
        "model_limit": limit,
        "beyond_model_limit_share": past_limit,
    }
    return CheckResult("token_lengths", status, figure, round(over, 6), advice, [], details)


def _token_lengths(texts: list[str], tokenizer_dir: str) -> list[int]:
    from pathlib import Path

    from engine.data.errors import DataError

    folder = Path(tokenizer_dir)
    if (folder / "tokenizer.json").exists():
        from tokenizers import Tokenizer  # light: no transformers needed for a fast tokenizer file

        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        return [len(e.ids) for e in tok.encode_batch(texts)]
    if not folder.is_dir():
        raise DataError(
            f"{tokenizer_dir}: no tokenizer folder there; give a folder saved with save_pretrained"
        )
    from transformers import AutoTokenizer

    slow = AutoTokenizer.from_pretrained(str(folder))
    return [len(ids) for ids in slow(texts, truncation=False)["input_ids"]]
