"""H3's tests: one statistic per window, tested across windows.

Claims 1-3 are means over windows (a typical window of the text), so each window gives
one number and the mean of those numbers is tested with the product's skew-guarded mean
test (sinkbench.stats.mean_greater), equal weight per informative window. A test that
permutes within every window asks another question, "no effect in any of these windows":
when the true per-window effect varies around zero (a random-effects null) it passed claim
2 up to 0.20 of the time and claim 3 up to 0.12 (benchmarks/h3_nulls.py), and claim 1's
summed exact count weighted a window by its number of sink-like positions, unlike its
effect (0.475 on a null whose mean over windows is exactly 0).

Position is removed before the per-window statistic: each position's mean over windows is
subtracted (exact-position strata across windows: the drift of the first positions, where
the profile cosine falls from 0.989 to 0.961 on SmolLM2, cannot pass for an effect), and
after the first `exact` positions, each window's bin mean too (bins of nearby positions,
so a window's own slow drift cannot either)."""
from __future__ import annotations

import numpy as np
from scipy import stats


# ------------------------------------------------------------------ claim 1: frequent tokens
def hypergeometric_sum_greater(observed: int, population: np.ndarray, successes: np.ndarray,
                               draws: np.ndarray) -> float:
    """P(sum_w X_w >= observed) for independent X_w ~ Hypergeometric(population_w,
    successes_w, draws_w): the exact null distribution of the summed count is the
    convolution of the per-window ones."""
    pmf = np.ones(1)
    for n_pop, k, n in zip(population, successes, draws):
        support = np.arange(0, int(n) + 1)
        pmf = np.convolve(pmf, stats.hypergeom.pmf(support, int(n_pop), int(k), int(n)))
    return float(min(1.0, max(0.0, pmf[int(observed):].sum()))) if observed < pmf.size else 0.0


def informative_windows(sink: np.ndarray) -> np.ndarray:
    """[N, P] labels -> [N] bool: windows with at least one sink-like and one ordinary position
    (the only ones where claims 1 and 3 compare anything)."""
    k = sink.sum(1)
    return (k > 0) & (k < sink.shape[1])


def frequent_enrichment(sink: np.ndarray, frequent: np.ndarray) -> tuple[float, np.ndarray, dict]:
    """Claim 1 on [N, P] masks. Per informative window: the share of its sink-like positions
    on frequent tokens minus its base rate (share of all its positions on frequent tokens).
    Returns (exact p, per-window effects, metrics). The exact p is the within-window guard
    (under H0 a window's sink-like positions are a random subset of its positions, so the
    number of them on frequent tokens, summed over windows, is a convolution of
    hypergeometrics): the mean test over windows cannot see that a per-window share of one
    or two sink-like positions takes two or three values (at base rate 0.8, 8 windows all
    at +0.2 happen 0.8^8 = 0.17 of the time); the caller takes the larger p of the two."""
    n_sink = sink.sum(1)
    has = informative_windows(sink)
    hits = (sink & frequent).sum(1)
    base = frequent.mean(1)
    p = hypergeometric_sum_greater(int(hits[has].sum()), np.full(int(has.sum()), sink.shape[1]),
                                   frequent.sum(1)[has], n_sink[has])
    share = hits[has] / n_sink[has]
    return p, share - base[has], {"frequent_hits": int(hits[has].sum()),
                                  "frequent_hits_expected": float((n_sink * base)[has].sum()),
                                  "frequent_share_sinks": float(share.mean()) if has.any() else float("nan"),
                                  "frequent_share_all": float(frequent.mean()), "p_exact_within_windows": p}


# ------------------------------------------------------------------ position removed
def position_bins(n_positions: int, bins: int) -> np.ndarray:
    """Bin of each measured column: contiguous, equal-width runs of positions."""
    return np.arange(n_positions) * min(bins, n_positions) // n_positions


def position_residuals(x: np.ndarray, bins_count: int, exact: int) -> np.ndarray:
    """[N, P] -> what is left of x once its position is known: each column minus its mean over
    windows (width-1 strata across windows, at every position), then, at columns from `exact`
    on, minus the mean of the window's bin (`bins_count` bins over those columns). The first
    `exact` columns (positions 1..exact) are not binned: a bin there would mix the positions
    whose drift is steepest."""
    r = np.asarray(x, float) - np.asarray(x, float).mean(0, keepdims=True)
    e = min(max(exact, 0), r.shape[1])
    later = r[:, e:]
    if later.shape[1]:
        bins = position_bins(later.shape[1], bins_count)
        for b in np.unique(bins):
            cols = bins == b
            later[:, cols] -= later[:, cols].mean(1, keepdims=True)
    return r


# ------------------------------------------------------------------ claim 2: attention received and dark ratio
def position_adjusted_correlation(a: np.ndarray, b: np.ndarray, bins_count: int, exact: int) -> np.ndarray:
    """Claim 2 on [N, P] arrays: per window, the correlation of a's and b's within-window ranks
    after position is removed from both ranks (position_residuals): a Spearman-type coefficient
    with position partialled out. Windows where either has no spread left are dropped.
    Returns the per-window coefficients."""
    ra = position_residuals(stats.rankdata(a, axis=1), bins_count, exact)
    rb = position_residuals(stats.rankdata(b, axis=1), bins_count, exact)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    norm = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    keep = norm > 1e-12
    return (ra[keep] * rb[keep]).sum(1) / norm[keep]


# ------------------------------------------------------------------ claim 3: profile cosine
def label_difference(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[..., N, P] values, [..., N, P] bool labels -> [..., N]: mean of labelled minus unlabelled."""
    k = labels.sum(-1)
    inside = np.where(labels, values, 0).sum(-1) / np.maximum(k, 1)
    outside = np.where(labels, 0, values).sum(-1) / np.maximum(values.shape[-1] - k, 1)
    return inside - outside


def position_adjusted_difference(values: np.ndarray, labels: np.ndarray, bins_count: int, exact: int) -> np.ndarray:
    """Claim 3 on [N, P]: per informative window, the mean position-removed value
    (position_residuals, computed over all windows) at labelled minus unlabelled positions.
    Returns the per-window differences."""
    both = informative_windows(labels)
    r = position_residuals(values, bins_count, exact)
    return label_difference(r[both], labels[both])
