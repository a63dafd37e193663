"""H3's tests: exact and permutation tests conditional on each window.

Under H3's nulls the positions of a window are exchangeable in some respect (which of
them are sink-like, or which dark ratio goes with which attention within a position
bin), so each test permutes within windows and combines windows by summing one
statistic per window. Nothing pools (window, position) cells as independent samples,
and nothing assumes a distribution of per-window effects (a two-valued per-window
share broke the signed-rank test: docs/calibration.md)."""
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


def frequent_enrichment(sink: np.ndarray, frequent: np.ndarray) -> tuple[float, np.ndarray, dict]:
    """Claim 1 on [N, P] masks. Under H0 a window's sink-like positions are a random subset
    of its measured positions, so the number of them on frequent tokens is hypergeometric
    given the window's counts; the test sums that number over windows (exact p).
    Effect per window with a sink-like position: share of sink-like positions on frequent
    tokens minus the window's base rate."""
    n_sink = sink.sum(1)
    has = n_sink > 0
    hits = (sink & frequent).sum(1)
    base = frequent.mean(1)
    p = hypergeometric_sum_greater(int(hits[has].sum()), np.full(int(has.sum()), sink.shape[1]),
                                   frequent.sum(1)[has], n_sink[has])
    share = hits[has] / n_sink[has]
    return p, share - base[has], {"frequent_hits": int(hits.sum()),
                                  "frequent_hits_expected": float((n_sink * base).sum()),
                                  "frequent_share_sinks": float(share.mean()) if has.any() else float("nan"),
                                  "frequent_share_all": float(frequent.mean())}


# ------------------------------------------------------------------ claim 2: position partialled out
def position_bins(n_positions: int, bins: int) -> np.ndarray:
    """Bin of each measured column: contiguous, equal-width runs of positions."""
    return np.arange(n_positions) * min(bins, n_positions) // n_positions


def within_bin_ranks(x: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """[N, P] -> ranks within each (window, bin), centred on the bin's mean rank: what is left of x
    once its position bin is known."""
    out = np.zeros_like(x, dtype=float)
    for b in np.unique(bins):
        cols = bins == b
        r = stats.rankdata(x[:, cols], axis=1)
        out[:, cols] = r - r.mean(1, keepdims=True)
    return out


def permuted_within_bins(x: np.ndarray, bins: np.ndarray, rng, copies: int) -> np.ndarray:
    """[N, P] -> [copies, N, P]: every row shuffled independently within each bin
    (bins are contiguous and sorted, so sorting bin + uniform key shuffles within bins)."""
    keys = bins[None, None, :] + rng.random((copies,) + x.shape)
    return np.take_along_axis(np.broadcast_to(x, keys.shape), np.argsort(keys, axis=-1), axis=-1)


def sequential_p(draw, observed: float, permutations: int, seed: int, chunk: int, stop_hits: int = 20) -> float:
    """Monte Carlo p of `observed` against draw(rng, k) -> k null statistics, at most
    `permutations` of them. Sequential (Besag & Clifford 1991): once stop_hits null values
    reach the observed one after L draws, p = stop_hits / L (valid, and a clearly null
    case costs a few dozen permutations instead of all); otherwise (1 + hits) / (1 + permutations)."""
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < permutations:
        null = draw(rng, min(chunk, permutations - done))
        reached = np.cumsum(null >= observed - 1e-12) + hits
        if reached[-1] >= stop_hits:
            return stop_hits / (done + int(np.argmax(reached >= stop_hits)) + 1)
        hits, done = int(reached[-1]), done + null.size
    return (1 + hits) / (1 + permutations)


def stratified_correlation(a: np.ndarray, b: np.ndarray, bins_count: int, permutations: int,
                           seed: int = 0, chunk: int = 100) -> tuple[float, np.ndarray]:
    """Claim 2 on [N, P] arrays: per window, the correlation of a's and b's ranks within
    position bins (a Spearman coefficient with position partialled out); the test permutes
    b within bins of every window and compares the mean coefficient over windows with its
    permutation distribution (Monte Carlo p = (1 + hits) / (1 + permutations)).
    Windows where either has no spread within bins are left out. Returns (p, per-window rho)."""
    bins = position_bins(a.shape[1], bins_count)
    ra, rb = within_bin_ranks(a, bins), within_bin_ranks(b, bins)
    norm = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    keep = norm > 0
    if not keep.any():
        return 1.0, np.zeros(0)
    ra, rb, norm = ra[keep], rb[keep], norm[keep]
    rho = (ra * rb).sum(1) / norm
    observed = rho.mean()
    draw = lambda rng, k: ((ra[None] * permuted_within_bins(rb, bins, rng, k)).sum(-1) / norm).mean(-1)
    return sequential_p(draw, observed, permutations, seed, chunk), rho


# ------------------------------------------------------------------ claim 3: profile cosine
def label_difference(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[..., N, P] values, [..., N, P] bool labels -> [..., N]: mean of labelled minus unlabelled."""
    k = labels.sum(-1)
    inside = np.where(labels, values, 0).sum(-1) / np.maximum(k, 1)
    outside = np.where(labels, 0, values).sum(-1) / np.maximum(values.shape[-1] - k, 1)
    return inside - outside


def label_permutation_greater(values: np.ndarray, labels: np.ndarray, bins_count: int, permutations: int,
                              seed: int = 0, chunk: int = 100) -> tuple[float, np.ndarray]:
    """Claim 3 on [N, P]: per window with both kinds of position, mean value at labelled minus
    unlabelled positions; the test permutes the labels within position bins of each window
    (under H0 the sink-like positions of a bin are a random subset of it, so a value that
    drifts with position cannot pass for an effect) and compares the mean difference over
    windows. Returns (Monte Carlo p, per-window differences)."""
    k = labels.sum(1)
    both = (k > 0) & (k < labels.shape[1])
    if not both.any():
        return 1.0, np.zeros(0)
    v, lab = values[both], labels[both]
    diff = label_difference(v, lab)
    observed = diff.mean()
    bins = position_bins(v.shape[1], bins_count)
    draw = lambda rng, k: label_difference(v[None], permuted_within_bins(lab, bins, rng, k)).mean(-1)
    return sequential_p(draw, observed, permutations, seed, chunk), diff
