"""Paired statistics over sequences: one-sided Wilcoxon signed-rank tests,
bootstrap confidence intervals and Holm's step-down correction."""
from __future__ import annotations

import numpy as np
from scipy import stats


def wilcoxon_greater(diff) -> float:
    """p-value of H0 'median difference <= 0' against 'differences tend to be > 0'.
    All-zero differences give p = 1 (no evidence of an effect)."""
    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0 or np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d, alternative="greater", zero_method="wilcox").pvalue)


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of values (seeded: reproducible)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values (same order as the input), controlling the family-wise error."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted
