"""The nulls a hypothesis unit declares its criteria with (sinkbench.stats layer: numpy and
scipy only). Two kinds, each run by its driver in the run layer over every registered unit:

* calibration nulls (`Criterion`, the window-level noise of a real run: hardness, AR(1)
  token noise, skew) -> sinkbench.run.calibration (false-pass rates and power);
* hostile nulls (`NULLS`: heavy tails, skew both ways, AR(1), zeros, NaN, and documents as
  units) at each test's boundary -> sinkbench.run.hostile.

How the per-window numbers are made (docs/calibration.md has the reasons and sources):

* an NLL change of a window is mu * h_w + s * e_w: h_w is the window's hardness (lognormal,
  mean 1, shared by every condition of that window: a window one filter hurts more, others
  hurt more too), and e_w is the mean over the window's 127 predictions of a per-token
  AR(1) process (phi 0.5) with skewed (centred exponential) innovations, scaled to unit
  variance, drawn independently per condition. Paired conditions therefore share the
  window effect, and window means keep the token-level skew that survives averaging;
* sink masses and attention shares are window-level proportions (base value per window,
  multiplicative change per window, small additive noise);
* H3 tables are (window, position) arrays with the sizes of a 128-token window: frequent
  tokens Bernoulli with a per-window base rate, sink-like positions placed at random
  (the within-window permutation null) or preferentially where the claim says;
* the null of each criterion sits at its boundary, and every other test of the Holm family
  is given a clear effect, which is the hardest case for the criterion under test (Holm
  then multiplies its p-value by the least).

Speed: `exact_fast_stats()` swaps in memoised/numpy versions of
the binomial test, the Clopper-Pearson interval and Spearman's rho that return
the same numbers as scipy (the exact signed-rank p-value depends only on (n, W+) when
there are no ties or zeros; anything else goes to scipy), checked for equality in
tests/test_calibration.py. The bootstrap is the real one; its resample count only changes
the intervals, which only two verdicts read (the upper end of the rise's interval: H2b and
H6 b-mean), so a criterion that reads one runs with the full 2000 resamples
(Criterion.reads_intervals) and the others with N_BOOT_CHEAP.

"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from sinkbench.stats import claims as _claims
from sinkbench.stats import inference as _stats

# Documented defaults ([tool.sinkbench] in pyproject.toml; sinkbench.measure.config.Settings).
DEFAULTS = dict(alpha=0.05, h1_min_delta=0.5, h1_min_sink_drop=0.2, frontier_tolerance=0.25, h2_min_frontier=0.25,
                h4_rho=3.0, h4_min_recovered=0.5, h5_min_share=0.5, h5_min_sink_drop=0.1, h5_min_nll_rise=0.05)
N_BOOT_FULL = 2000  # the default `bootstrap` setting
N_BOOT_CHEAP = 50  # where no verdict reads the interval
H3_PERMUTATIONS = 200  # benchmarks/h3_nulls.py passes it to h3_raw for the old within-window tests (no H3 claim permutes now)
TOKENS = 127  # predictions per 128-token window
POSITIONS = 128 - 1 - 8  # H3 positions per window (1 .. T-1-MIN_QUERIES)


# --------------------------------------------------------------------------- fast exact statistics
@lru_cache(maxsize=None)
def _binomial_memo(successes: int, n: int, p0: float) -> float:
    return _stats.binomial_greater(successes, n, p0)


def fast_binomial_greater(successes: int, n: int, p0: float = 0.5) -> float:
    return _binomial_memo(int(successes), int(n), float(p0))


@lru_cache(maxsize=None)
def _proportion_memo(successes: int, n: int, level: float) -> tuple:
    return _stats.proportion_ci(successes, n, level)


def fast_proportion_ci(successes: int, n: int, level: float = 0.95) -> tuple:
    return _proportion_memo(int(successes), int(n), float(level))


class _Spearman(tuple):
    """(correlation, pvalue) like scipy's result; the p-value is not computed (NaN)."""

    @property
    def statistic(self):
        return self[0]

    correlation = statistic


def _make_fast_spearmanr(original):
    def fast_spearmanr(a, b=None, *args, **kwargs):
        """scipy.stats.spearmanr's correlation for two tie-free, finite, non-constant 1-D
        arrays (the same computation: np.corrcoef of the ranks); anything else -> scipy."""
        if b is None or args or kwargs:
            return original(a, b, *args, **kwargs)
        a, b = np.asarray(a, float), np.asarray(b, float)
        if a.ndim != 1 or a.shape != b.shape or a.size < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
            return original(a, b)
        n = a.size
        x = np.empty((2, n))  # the ranks, as rows (np.cov's X after its transpose)
        for j, v in enumerate((a, b)):
            order = np.argsort(v, kind="stable")
            sv = v[order]
            if (sv[1:] == sv[:-1]).any():  # ties (including a constant input)
                return original(a, b)
            x[j, order] = np.arange(1, n + 1, dtype=float)
        # np.corrcoef(ranks, rowvar=False), operation for operation
        x -= x.mean(axis=1)[:, None]
        c = np.dot(x, x.T.conj())
        c *= np.true_divide(1, n - 1)
        sd = np.sqrt(np.diag(c).real)
        c /= sd[:, None]
        c /= sd[None, :]
        np.clip(c.real, -1, 1, out=c.real)
        return _Spearman((float(c[1, 0]), float("nan")))

    return fast_spearmanr


@contextlib.contextmanager
def exact_fast_stats(intervals: bool = True):
    """Inside the block, sinkbench.stats.claims uses the fast exact versions above (same numbers).
    intervals=False also skips the bootstrap intervals (claims.ci_mean and ci_ratio return
    NaN): only for criteria whose verdict reads no interval (every one but H2b and H6 b-mean; the
    equality of the verdicts with and without them is tested)."""
    import scipy.stats

    names = ("binomial_greater", "proportion_ci")
    saved = {name: getattr(_claims, name) for name in names}
    spearman = scipy.stats.spearmanr
    _claims.binomial_greater = fast_binomial_greater
    _claims.proportion_ci = fast_proportion_ci
    scipy.stats.spearmanr = _make_fast_spearmanr(spearman)
    try:
        with contextlib.nullcontext() if intervals else _claims.without_intervals():
            yield
    finally:
        for name, fn in saved.items():
            setattr(_claims, name, fn)
        scipy.stats.spearmanr = spearman


# --------------------------------------------------------------------------- window-level noise
@lru_cache(maxsize=None)
def _ar1_weights(tokens: int = TOKENS, phi: float = 0.5, burn: int = 12) -> np.ndarray:
    """Weights w with mean_t x_t = sum_j w_j e_j for x_t = phi x_{t-1} + e_t over the last
    `tokens` steps of tokens + burn (started at 0), scaled so sum w^2 = 1."""
    steps = tokens + burn
    j = np.arange(steps)
    t = np.arange(burn, steps)
    lag = t[None, :] - j[:, None]
    w = np.where(lag >= 0, phi ** np.maximum(lag, 0), 0.0).sum(1) / tokens
    return w / np.sqrt((w ** 2).sum())


def window_noise(rng, shape, tokens: int = TOKENS, phi: float = 0.5) -> np.ndarray:
    """Unit-variance per-window means of a per-token AR(1) process with skewed (centred
    exponential, skewness 2) innovations: the token structure of an NLL change, averaged
    over a window the way the harness averages it. Shape `shape`."""
    w = _ar1_weights(tokens, phi)
    e = rng.standard_exponential(tuple(shape) + (w.size,)) - 1.0
    return e @ w


def skewed_unit(rng, shape, skewness: float) -> np.ndarray:
    """Mean 0, sd 1, the given skewness (standardised gamma; normal at 0)."""
    if skewness == 0:
        return rng.standard_normal(shape)
    k = 4.0 / skewness ** 2
    return np.sign(skewness) * (rng.standard_gamma(k, shape) - k) / math.sqrt(k)


def hardness(rng, shape, cv: float) -> np.ndarray:
    """Lognormal window hardness with mean 1 and coefficient of variation cv."""
    s2 = math.log1p(cv ** 2)
    return np.exp(rng.normal(-s2 / 2, math.sqrt(s2), shape))


# --------------------------------------------------------------------------- criteria
@dataclass
class Criterion:
    """One verdict criterion: how to simulate it and where its nulls sit.

    simulate(rng, trials, n_windows, layers, effect, **profile) -> bool [trials, layers]:
    whether the criterion passed for the case under test at each layer (one layer for
    criteria without a layer grid). `effect` is in the units named by `effect_name`.
    nulls: name -> {'effect': value at the boundary, **profile overrides}.
    clear: an effect (and profile) at which a sound criterion passes nearly always."""

    name: str
    effect_name: str
    simulate: callable
    nulls: dict
    clear: dict
    profile: dict = field(default_factory=dict)
    description: str = ""
    reads_intervals: bool = False  # the verdict reads a bootstrap interval (H2b; H6 b-mean has no simulated criterion here)


def split_profile(effect, params, profile):
    p = dict(params)
    p.update(profile)
    return effect, p


# --------------------------------------------------------------------------- hostile nulls
ALPHA = 0.05
BOUNDARY = dict(min_delta=0.5, min_sink_drop=0.2, tolerance=0.25, rho=3.0, min_recovered=0.5, min_share=0.5,
         h5_min_sink_drop=0.1, h5_min_nll_rise=0.05)
N_BOOT = 200  # intervals: of the hostile nulls' criteria only H2b's verdict reads one, and it gets 2000
SIGMA_LN = 0.6


def _ar1(rng, n: int, rho: float = 0.5) -> np.ndarray:
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = rho * x[i - 1] + math.sqrt(1 - rho ** 2) * e[i]
    return x


def _lognormal(rng, n: int) -> np.ndarray:
    """Centred, unit-variance lognormal(0, 0.6): long tail up."""
    s2 = SIGMA_LN ** 2
    sd = math.sqrt((math.exp(s2) - 1) * math.exp(s2))
    return (rng.lognormal(0.0, SIGMA_LN, n) - math.exp(s2 / 2)) / sd


def _zeros(rng, n: int) -> np.ndarray:
    share = rng.uniform(0.5, 0.75)
    return np.where(rng.random(n) < share, 0.0, rng.standard_normal(n))


def _one_nan(rng, n: int) -> np.ndarray:
    x = rng.standard_normal(n)
    x[rng.integers(n)] = np.nan
    return x


# noise with mean 0 (the boundary); a positive value points the claimed way
NULLS = {
    "gaussian": lambda rng, n: rng.standard_normal(n),
    "t2": lambda rng, n: rng.standard_t(2, n),
    "lognormal, tail on the null side": lambda rng, n: -_lognormal(rng, n),
    "lognormal, tail on the claim side": _lognormal,
    "AR(1) rho 0.5": _ar1,
    "50-75% zeros": _zeros,
    "one NaN window": _one_nan,
}

# --units document under the same dependence: consecutive windows grouped into documents of
# g windows, each document one unit (its windows averaged), so the tests run over n / g units
DOCUMENT_UNITS = {
    f"AR(1) rho 0.5, documents of {g} windows as units": (lambda g: lambda rng, n: _ar1(rng, n).reshape(-1, g).mean(1))(g)
    for g in (2, 4)
}


def nll_like(rng, n):
    return 3.0 + 0.3 * rng.standard_normal(n)


def small(rng, n, sd=0.02):
    return sd * rng.standard_normal(n)
