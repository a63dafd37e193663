"""Statistics over evaluation windows (the unit of replication): one-sided
Wilcoxon signed-rank and binomial tests, bootstrap and Clopper-Pearson intervals,
Holm's step-down correction, and the smallest p-value a design can reach."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats


def wilcoxon_greater(diff) -> float:
    """p-value of H0 'median difference <= 0' against 'differences tend to be > 0'.
    All-zero (or no) differences give p = 1 (no evidence of an effect)."""
    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0 or np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d, alternative="greater", zero_method="wilcox").pvalue)


def prediction_greater(value: float, reference) -> float:
    """p-value of H0 'value is one more draw from the distribution of reference' against
    'value is larger': the one-sided prediction-interval t-test, t = (value - mean) /
    (sd * sqrt(1 + 1/S)) with S - 1 degrees of freedom (S = len(reference) >= 2; fewer, or
    a reference with no spread, cannot say and gives 1 unless value exceeds every reference
    value with zero spread, which gives 0)."""
    r = np.asarray(reference, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 2 or not np.isfinite(value):
        return 1.0
    sd = float(r.std(ddof=1))
    if sd == 0.0:
        return 0.0 if value > r[0] else 1.0
    t = (value - float(r.mean())) / (sd * np.sqrt(1 + 1 / r.size))
    return float(stats.t.sf(t, r.size - 1))


def binomial_greater(successes: int, n: int, p0: float = 0.5) -> float:
    """Exact one-sided p-value of H0 'success probability <= p0' (n = 0 gives 1)."""
    if n == 0:
        return 1.0
    return float(stats.binomtest(int(successes), int(n), p0, alternative="greater").pvalue)


def proportion_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson (exact) interval of a proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="exact")
    return (float(ci.low), float(ci.high))


def bootstrap_ci(values, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of values over windows (seeded: reproducible)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


def ratio_ci(num, den, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(num) / mean(den), resampling windows jointly."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    if num.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), (n_boot, len(num)))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num[idx].mean(1) / den[idx].mean(1)
    r = r[np.isfinite(r)]
    if not r.size:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(r, [(1 - level) / 2, 1 - (1 - level) / 2])
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


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest one-sided p-value an exact signed-rank test over n windows can give
    (every difference positive): 2^-n. (scipy uses the exact distribution for n <= 50.)"""
    return 0.5 ** n


def min_windows(alpha: float, family: int) -> int:
    """Fewest windows for which the best possible result survives Holm over `family`
    tests at level alpha: the smallest n with family * 2^-n < alpha."""
    return max(1, math.floor(math.log2(family / alpha)) + 1)
