"""Small statistics for the data tests: the k-category runs test, window divergence and chi-square."""

from __future__ import annotations

import math

import numpy as np


def runs_expectation(counts: np.ndarray) -> tuple[float, float]:
    """Mean and variance of the number of runs in a random order of a multiset (k-category Wald-Wolfowitz)."""
    n = float(counts.sum())
    if n < 2:
        return n, 0.0
    s2 = float((counts.astype(np.float64) ** 2).sum())
    s3 = float((counts.astype(np.float64) ** 3).sum())
    mean = (n * (n + 1) - s2) / n
    var = (s2 * (s2 + n * (n + 1)) - 2 * n * s3 - n**3) / (n**2 * (n - 1))
    return mean, max(var, 0.0)


def runs_z(runs: int, counts: np.ndarray) -> tuple[float, float]:
    """(expected runs, z). Strongly negative z means labels come in blocks: sorted or clustered."""
    mean, var = runs_expectation(counts)
    if var <= 0:
        return mean, 0.0
    return mean, (runs - mean) / math.sqrt(var)


def run_starts(ids: np.ndarray) -> np.ndarray:
    """Indices where a new run of equal labels starts (0 is always one)."""
    starts = np.ones(len(ids), dtype=bool)
    starts[1:] = ids[1:] != ids[:-1]
    return np.flatnonzero(starts)


def tvd(counts: np.ndarray, probs: np.ndarray) -> float:
    """Total variation distance between a count vector's mix and a reference distribution."""
    total = counts.sum()
    if total == 0:
        return 0.0
    return 0.5 * float(np.abs(counts / total - probs).sum())


def expected_tvd(n: int, probs: np.ndarray) -> float:
    """Roughly the TVD a random sample of n rows shows by chance (sum of half-normal means)."""
    if n <= 0:
        return 1.0
    return 0.5 * float(np.sqrt(2 * probs * (1 - probs) / (math.pi * n)).sum())


def chi2_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    """Goodness-of-fit p-value of counts against probs (scipy imported only when a check needs it)."""
    from scipy.stats import chi2

    n = counts.sum()
    keep = probs > 0
    expected = probs[keep] * n
    if n == 0 or keep.sum() < 2:
        return 1.0
    stat = float(((counts[keep] - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, df=int(keep.sum()) - 1))


def single_label_chance(n: int, probs: np.ndarray) -> float:
    """Probability that n random rows all share one label."""
    return float(sum(p**n for p in probs if p > 0))
