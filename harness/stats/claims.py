"""What every verdict function shares (the verdicts themselves live in their hypothesis units,
sinkbench.hypotheses.*: pure functions of per-window arrays).

The window is the unit of replication: every test below runs over one number per
window. Each claim is an effect size with a 95% interval (studentized bootstrap for a
mean and for a ratio of means, Clopper-Pearson for a proportion) plus a one-sided test
whose estimand is the claim's: a mean, or a ratio of means through the linear contrast
a - c * b (stats.mean_greater, skew-guarded). p-values are Holm-corrected over the
hypothesis's whole grid on one model (all layers, k, conditions, claims), then compared
with alpha. Every resampling is seeded from the case's identity (stats.case_seed).
docs/methods.md states every criterion and why; docs/calibration.md measures them."""
from __future__ import annotations

import contextlib

import numpy as np

from sinkbench.stats.inference import (case_seed, holm, informative, lag1_autocorrelation, mean_ci, mean_greater, ratio_ci,
                                       tail_diagnostics)
# H3 calls these through this module (claims.binomial_greater), where calibration.exact_fast_stats swaps them
from sinkbench.stats.inference import binomial_greater, proportion_ci  # noqa: F401


def holm_by_key(raw: dict) -> dict:
    """raw: key -> list of raw p-values. Holm over all of them; same shape back."""
    flat = [p for ps in raw.values() for p in ps]
    adjusted = iter(holm(flat)) if flat else iter(())
    return {key: [float(next(adjusted)) for _ in ps] for key, ps in raw.items()}


def mean_or_nan(x) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def test_mean(values, *key) -> float:
    """mean_greater with the seed of this case and test (key: hypothesis, case, test name)."""
    return mean_greater(values, seed=case_seed(*key))


_INTERVALS = [True]  # False inside without_intervals()
NO_INTERVAL = (float("nan"), float("nan"))


def ci_mean(values, n_boot: int, *key) -> tuple[float, float]:
    return mean_ci(values, n_boot, seed=case_seed("ci", *key)) if _INTERVALS[0] else NO_INTERVAL


def ci_ratio(num, den, n_boot: int, *key) -> tuple[float, float]:
    return ratio_ci(num, den, n_boot, seed=case_seed("ci", *key)) if _INTERVALS[0] else NO_INTERVAL


@contextlib.contextmanager
def without_intervals():
    """Inside the block ci_mean and ci_ratio return NaN. Intervals are not verdicts (except
    H2b's and H6 b-mean's upper end, whose callers keep them): verdict stability and calibration skip them,
    which makes a resampled verdict several times cheaper and changes no pass/fail. (A flag,
    not a swapped function: the hypothesis units import ci_mean by name.)"""
    saved = _INTERVALS[0]
    _INTERVALS[0] = False
    try:
        yield
    finally:
        _INTERVALS[0] = saved


def window_counts(*contrasts) -> dict:
    """How many windows the tests of a case actually used: all of them, the fewest
    informative (finite, non-zero) ones over its contrasts, the most NaN ones, and the lag-1
    autocorrelation of its first contrast in corpus order (window dependence), and the tails
    of its contrasts (stats.tail_diagnostics: the largest window's share, the most negative
    skewness, and whether any contrast is outside the tests' calibrated range)."""
    used = [informative(c) for c in contrasts]
    tails = [tail_diagnostics(c) for c in contrasts]
    finite = lambda key: [t[key] for t in tails if t[key] == t[key]]  # noqa: E731
    return {"n_windows": used[0].n_total if used else 0,
            "n_informative": min((u.informative for u in used), default=0),
            "n_nan": max((u.n_nan for u in used), default=0),
            "lag1_autocorrelation": lag1_autocorrelation(contrasts[0]) if contrasts else float("nan"),
            "largest_window_share": max(finite("largest_window_share"), default=float("nan")),
            "skewness_min": min(finite("skewness"), default=float("nan")),
            "outside_calibrated_range": any(t["outside_calibrated_range"] for t in tails)}


def windows_note(m: dict) -> str:
    """What an assertion message says of the estimand and the windows a case's tests used."""
    from sinkbench.stats.inference import MAX_NAN_SHARE

    n, used, nan = m.get("n_windows"), m.get("n_informative"), m.get("n_nan", 0)
    if n is None:
        return ""
    note = f" [estimand: mean over windows; {used} of {n} windows informative"
    if nan and nan > MAX_NAN_SHARE * n:
        note += f"; {nan} NaN windows, more than {MAX_NAN_SHARE:.0%}: the tests fail rather than test what is left"
    elif nan:
        note += f"; {nan} NaN windows dropped"
    if m.get("fragile"):
        note += f"; fragile verdict: same on {m['verdict_stability']:.0%} of window resamples"
    if m.get("outside_calibrated_range"):
        note += (f"; tails outside the calibrated range (largest window {m.get('largest_window_share', float('nan')):.2f} "
                 f"of the sum, skewness {m.get('skewness_min', float('nan')):.2f})")
    return note + "]"
