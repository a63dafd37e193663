"""A max-T step-down over a family of one-sided mean tests measured on the same windows
(Westfall and Young 1993; Romano and Wolf 2005), skew-guarded the way `mean_greater` is.

A family here is m claims "mean > 0", each a per-window contrast over the same n windows:
an [n, m] matrix, one column per test. Holm treats the m tests as if nothing were known of
how they depend on each other; when the columns are correlated (the same windows feed
every test of a layer), resampling the windows jointly shows how often the *largest* of
the m statistics exceeds a value under the null, and the step-down uses that instead of
m x p.

How (`maxt_stepdown`):

* each column is tested over its informative windows (finite, non-zero), exactly as
  `mean_greater` does: more than MAX_NAN_SHARE NaN windows or fewer than 2 informative
  ones, and the column's adjusted p is 1 (it can never pass, so it is left out of the max:
  a test that never rejects adds no false rejections);
* the columns are ordered by their Student-t p-values (the order of the t statistics
  when every column has the same informative windows; with unequal counts the step-down
  compares columns on the p scale, min-P style);
* two null distributions of the family's best statistic, both with the windows resampled
  as rows so that the tests' dependence is kept:
  - the bootstrap: rows resampled with replacement (the same multinomial counts for every
    column), each column studentized around its own mean (the null imposed by centring),
    as in mean_greater's bootstrap-t;
  - the Gaussian: rows drawn from a normal with the columns' sample covariance, each
    column's t computed over its informative rows (Student's t exactly, per column, on
    Gaussian windows; the multivariate analogue of mean_greater's Student p);
* at step k (the k best columns' hypotheses removed), the step's probability is the larger
  of the two shares of draws in which some remaining column exceeds its own threshold at
  the k-th column's p, times the small-sample margin skew_margin(n) of that column: the
  same "larger of the two, times the margin" that calibrates mean_greater on skewed windows;
* a column whose informative windows have no spread (all equal and positive: the sign
  test's 2^-n) cannot be resampled; it enters every step it is part of by Bonferroni
  (its threshold added to the step's probability);
* fewer than MIN_HITS draws beyond the threshold is below the resampling's resolution:
  the step then takes Holm's value for it (remaining tests x p), capped at MIN_HITS /
  resamples, rather than a probability that hinges on the resample count;
* every adjusted p is at least the column's own mean_greater p (a family never makes a
  test stronger than it is alone), and the adjusted p's are made monotone in the order.

One draw of windows serves every test of the family, so the pairs stay paired. Seeded:
the same matrix and seed give the same p-values.

Status: measured, not used by any verdict (benchmarks/maxt_nulls.py, 16 windows, 1000
trials per cell, results in benchmarks/out/maxt_nulls.jsonl). It gains power over Holm where
a family's tests correlate (Gaussian windows, one true test of 12 at 1 window-sd: 0.68 ->
0.88 at rho 0.9, 0.67 -> 0.74 at 0.5) and holds every null Holm holds, but its family-wise
false-pass rate is over alpha + 3 SE under AR(1) windows (0.14-0.34, as Holm's) and with 5%
of windows at -10 when the tests correlate (0.12-0.18): the rule for adopting it (within the
bound under every hostile null) is not met, so the verdicts keep Holm.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import special

from sinkbench.errors import SinkbenchError
from sinkbench.stats.inference import TEST_RESAMPLES, _counts, mean_greater, skew_margin, too_many_nan

MIN_HITS = 10  # fewer draws beyond a step's threshold than this: the step falls back to Holm's value
_CHUNK = 4_000_000  # floats per Gaussian block (memory bound for large families)


def _as_matrix(matrix) -> np.ndarray:
    try:
        x = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError) as e:
        raise SinkbenchError(f"maxt_stepdown: the matrix must be numbers, windows x tests ({e})") from None
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise SinkbenchError(f"maxt_stepdown: expected a 2-d matrix windows x tests, got shape {x.shape}")
    return x


def _boot_t(x: np.ndarray, v: np.ndarray, means: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Bootstrap t* [B, m] of every column, rows resampled jointly (counts [B, n]); each
    column studentized over its informative rows in the resample, around its own mean.
    A resample with no spread in a column (or a single informative row) gets +-inf by the
    side its mean falls on, 0 when equal (as inference._studentized)."""
    vf = v.astype(float)
    xz = np.where(v, x, 0.0)
    k = counts @ vf
    s1 = counts @ xz
    s2 = counts @ (xz * xz)
    with np.errstate(divide="ignore", invalid="ignore"):
        mb = s1 / k
        var = np.maximum(s2 / k - mb * mb, 0.0) * k / (k - 1)
        t = (mb - means) / np.sqrt(var / k)
    bad = ~np.isfinite(t)
    if bad.any():
        side = np.sign(np.nan_to_num(mb - means, nan=0.0))
        t[bad] = np.where(side[bad] > 0, np.inf, np.where(side[bad] < 0, -np.inf, 0.0))
    return t


@lru_cache(maxsize=8)
def _normals(draws: int, n: int, m: int, seed: int) -> np.ndarray:
    """Standard normals [draws, n, m] of one seed (cached: a case's draws are the same on every call)."""
    return np.random.default_rng([seed, 7]).standard_normal((draws, n, m))


def _gauss_t(x: np.ndarray, v: np.ndarray, means: np.ndarray, cols: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """t [draws, m] (columns not in `cols` are -inf) of samples of n rows from a normal with
    the columns' sample covariance (centred informative values, 0 elsewhere), each column's t
    over its own informative rows: Student's t with n_j - 1 df per column, jointly."""
    n, m = x.shape
    e = np.where(v, x - means, 0.0)[:, cols]
    cov = e.T @ e / max(n - 1, 1)
    w, q = np.linalg.eigh(cov)
    root = q * np.sqrt(np.clip(w, 0.0, None))  # cov = root @ root.T, singular covariances included
    vf = v[:, cols].astype(float)
    k = vf.sum(0)
    out = np.full((draws, m), -np.inf)
    small = draws * n * cols.size <= _CHUNK
    rng = None if small else np.random.default_rng([seed, 7])
    step = draws if small else max(1, _CHUNK // max(1, n * cols.size))
    for start in range(0, draws, step):
        b = min(step, draws - start)
        g = _normals(draws, n, cols.size, seed) if small else rng.standard_normal((b, n, cols.size))
        z = (g.reshape(-1, cols.size) @ root.T).reshape(b, n, cols.size) * vf  # masked rows do not count
        s1 = z.sum(1)
        s2 = (z * z).sum(1)
        mz = s1 / k
        var = np.maximum(s2 / k - mz * mz, 0.0) * k / (k - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = mz / np.sqrt(var / k)
        out[start:start + b, cols] = np.nan_to_num(t, nan=0.0)
    return out


def maxt_stepdown(matrix, seed: int = 0, resamples: int = TEST_RESAMPLES, raw: Sequence[float] | None = None,
                  margin: bool = True) -> np.ndarray:
    """Step-down max-T adjusted p-values of a family of one-sided tests "mean > 0" whose
    contrasts share the windows: `matrix` is [n windows, m tests] (a 1-d array is one test).
    Returns m adjusted p-values (input order), monotone in the step-down order, each at least
    the test's own mean_greater p (`raw`, computed here with seeds seed + j when not given).
    NaN and zero windows are handled per column as mean_greater handles them; see the module
    docstring for the procedure. `margin=False` drops the small-sample margin (for comparison
    only: the margin is what holds skewed windows)."""
    x = _as_matrix(matrix)
    n, m = x.shape
    if raw is None:
        raw = [mean_greater(x[:, j], seed=seed + j, resamples=resamples) for j in range(m)]
    raw = np.asarray(raw, dtype=float)
    if raw.shape != (m,):
        raise SinkbenchError(f"maxt_stepdown: raw has {raw.size} p-values for {m} tests (one per column)")
    finite = np.isfinite(x)
    v = finite & (x != 0.0)
    k = v.sum(0)
    adjusted = np.ones(m)
    testable = np.array([k[j] >= 2 and not too_many_nan(int((~finite[:, j]).sum()), n) for j in range(m)])
    if not testable.any():
        return adjusted
    xz = np.where(v, x, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = xz.sum(0) / k
        sd = np.sqrt(np.maximum((np.where(v, x - means, 0.0) ** 2).sum(0), 0.0) / (k - 1))
    const = testable & (sd == 0.0)
    resampled = testable & ~const
    q = np.ones(m)  # the ordering p (Student's t; the sign test's 2^-n for a constant column)
    t0 = np.full(m, -np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t0[resampled] = means[resampled] / (sd[resampled] / np.sqrt(k[resampled]))
    q[resampled] = special.stdtr(k[resampled] - 1, -t0[resampled])
    positive_const = const & (means > 0)
    q[positive_const] = 0.5 ** k[positive_const]
    members = np.flatnonzero(resampled | positive_const)  # a constant column at or below 0 never passes
    order = members[np.argsort(q[members], kind="stable")]
    cols = np.flatnonzero(resampled)
    if cols.size:
        t_boot = _boot_t(x, v, means, _counts(n, resamples, seed))
        t_gauss = _gauss_t(x, v, means, cols, resamples, seed)
    running = 0.0
    for step, j in enumerate(order):
        rest = order[step:]
        c = q[j]
        rest_r = rest[resampled[rest]]
        n_const = int(positive_const[rest].sum())
        if rest_r.size:
            # each remaining column's threshold at the k-th column's p; the column itself at its own t
            thr = -special.stdtrit(k[rest_r] - 1, np.full(rest_r.size, c)) if c > 0 else np.full(rest_r.size, np.inf)
            if resampled[j]:
                thr[rest_r == j] = t0[j]
            hits = max(int(np.count_nonzero((t_boot[:, rest_r] >= thr).any(1))),
                       int(np.count_nonzero((t_gauss[:, rest_r] >= thr).any(1))))
            f = hits / resamples if hits >= MIN_HITS else min(rest_r.size * c, MIN_HITS / resamples)
        else:
            f = 0.0
        f += n_const * c
        value = min(1.0, f * (skew_margin(int(k[j])) if margin else 1.0))
        running = max(running, raw[j], value)
        adjusted[j] = min(1.0, running)
    return adjusted
