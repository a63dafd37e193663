"""Calibration of the H1-H5 criteria by simulation: false-pass rates under nulls with
realistic within-window structure, and power (windows needed) at given effects.

Every simulated trial builds the per-window arrays one real run would hand to the verdict
functions of sinkbench.claims (H1Inputs, H2Inputs/H2bInputs, a PositionTable, WriteResults,
the H4-B dict, H5Inputs) and calls those functions unchanged; a criterion "passes" in a
trial when the verdict function says so for the case under test. Nothing here re-implements
a verdict.

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
the intervals, which no verdict reads except H2b's (upper end of the rise's interval), so
H2b runs with the full 2000 resamples and the others with N_BOOT_CHEAP.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from . import claims as _claims
from . import stats as _stats
from .claims import (H1Inputs, H2bInputs, H2Inputs, H5Inputs, h1_verdicts, h2_verdicts, h3_raw, h3_verdicts, h4a_raw,
                     h4a_verdicts, h4b_verdicts, h5_verdicts)

# Documented defaults ([tool.sinkbench] in pyproject.toml; sinkbench.config.Settings).
DEFAULTS = dict(alpha=0.05, h1_min_delta=0.5, h1_min_sink_drop=0.2, frontier_tolerance=0.25, h2_min_frontier=0.25,
                h4_rho=3.0, h4_min_recovered=0.5, h5_min_share=0.5, h5_min_sink_drop=0.1, h5_min_nll_rise=0.05)
N_BOOT_FULL = 2000  # the default `bootstrap` setting
N_BOOT_CHEAP = 50  # where no verdict reads the interval
H3_PERMUTATIONS = 200  # H3's permutation tests in simulation (see _h3_sim)
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
    """Inside the block, sinkbench.claims uses the fast exact versions above (same numbers).
    intervals=False also skips the bootstrap intervals (claims.ci_mean and ci_ratio return
    NaN): only for criteria whose verdict reads no interval (every one but H2b; the
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
    reads_intervals: bool = False  # the verdict reads a bootstrap interval (H2b)


def _split(effect, params, profile):
    p = dict(params)
    p.update(profile)
    return effect, p


# ---- H1
# Measured on SmolLM2-135M, layer 15, 16 x 128-token pydoc windows (benchmarks/calibrate_zoo.py
# and the default run's H1 records): a random 28-dim subspace costs 1.09 nats, the window sd
# of one subspace's rise beyond the shared hardness is 0.18, window hardness cv 0.11, the
# middle band costs 0.15; between random subspaces the mean cost varies with sd 0.27
# (tau = 0.24), which the first null leaves out (tau = 0) and the second puts in.
H1_PROFILE = dict(random_rise=1.09, tau=0.0, random_sd=0.18, dark_sd=0.3, middle_rise=0.15, middle_sd=0.05, cv=0.11,
                  sink_rise=0.6, sink_sd=0.25, sink_drop=0.4, drop_sd=0.1, mass=0.5, mass_sd=0.05, seeds=3)


def _h1_arrays(rng, trials, n, layers, excess, p):
    shape = (trials, layers, n)
    h = hardness(rng, shape, p["cv"])
    base = 3.1 + 0.35 * rng.standard_normal((trials, 1, n)) + 0.02 * rng.standard_normal(shape)
    # each random subspace (and, under the null, the "dark" one) has its own mean effect:
    # random_rise * (1 + tau * z_s), fixed across the windows of a trial
    sub = p["random_rise"] * (1 + p["tau"] * rng.standard_normal((trials, layers, p["seeds"] + 1, 1)))
    rand = base[:, :, None] + sub[:, :, 1:] * h[:, :, None] + p["random_sd"] * window_noise(rng, (trials, layers, p["seeds"], n))
    random = rand.mean(2)
    dark_mean = sub[:, :, 0] + excess  # [trials, layers, 1]
    dark_sd = p["random_sd"] if excess == 0 else p["dark_sd"]
    dark_all = base + dark_mean * h + dark_sd * window_noise(rng, shape)
    middle = base + p["middle_rise"] * h + p["middle_sd"] * window_noise(rng, shape)
    base_rest = base - 0.01
    dark_sink_rest = base_rest + p["sink_rise"] * h + p["sink_sd"] * window_noise(rng, shape)
    mass0 = np.clip(p["mass"] + p["mass_sd"] * rng.standard_normal(shape), 0.05, 0.95)
    drop = p["sink_drop"] + p["drop_sd"] * rng.standard_normal(shape)
    mass1 = np.clip(mass0 * (1 - drop) + 0.005 * rng.standard_normal(shape), 0.0, 1.0)
    return dict(base=base * np.ones(shape), dark_all=dark_all, random=random, random_each=rand, middle=middle,
                base_rest=base_rest * np.ones(shape),
                dark_all_rest=dark_all - 0.01, dark_sink=dark_sink_rest + 0.01, dark_sink_rest=dark_sink_rest,
                sink_mass_base=mass0, sink_mass_dark_sink=mass1)


def _h1_sim(claim):
    def simulate(rng, trials, n, layers, effect, **profile):
        _, p = _split(effect, H1_PROFILE, profile)
        if claim == "a":
            arr = _h1_arrays(rng, trials, n, layers, effect, p)
        else:
            arr = _h1_arrays(rng, trials, n, layers, p.pop("excess", 2.0), dict(p, sink_drop=effect))
        out = np.zeros((trials, layers), bool)
        s = DEFAULTS
        for t in range(trials):
            grid = {l: H1Inputs(**{k: v[t, l] for k, v in arr.items()}) for l in range(layers)}
            res = h1_verdicts(grid, alpha=s["alpha"], min_delta=s["h1_min_delta"], min_sink_drop=s["h1_min_sink_drop"],
                              n_boot=N_BOOT_CHEAP)
            out[t] = [res[l][1]["claim_" + claim] for l in range(layers)]
        return out

    return simulate


# ---- H2
H2_PROFILE = dict(omega_rise=0.4, gap_sd=0.08, cv=0.3, other_gap=0.5, b_rise=0.05, b_sd=0.08, ks=1)


def _h2_sim(which):
    """H2a at (layer, first k): family = the ks H2a tests of each layer (the others at
    other_gap), no H2b. H2b: family = the H2b test of each layer alone. Either way the
    criterion's own tests are the whole family, which is the hardest case for it."""

    def simulate(rng, trials, n, layers, effect, **profile):
        _, p = _split(effect, H2_PROFILE, profile)
        s = DEFAULTS
        shape = (trials, layers, n)
        base = 3.1 + 0.35 * rng.standard_normal((trials, 1, n)) * np.ones(shape)
        ks = p["ks"] if which == "a" else 0
        hk = hardness(rng, (trials, layers, ks, n), p["cv"])
        noise = lambda: p["gap_sd"] * window_noise(rng, (trials, layers, ks, n))
        omega = base[:, :, None] + p["omega_rise"] * hk + noise()
        gaps = np.full(ks, p["other_gap"])
        if which == "a":
            gaps[0] = effect  # the case under test: the first k of the grid
        head = base[:, :, None] + (p["omega_rise"] + gaps[None, None, :, None]) * hk + noise()
        if which == "b":
            hb = hardness(rng, shape, p["cv"])
            omega_b = base + (s["frontier_tolerance"] - effect) * hb + p["b_sd"] * window_noise(rng, shape)
        out = np.zeros((trials, layers), bool)
        for t in range(trials):
            grid = {(l, k): H2Inputs(base[t, l], omega[t, l, k], head[t, l, k], 30, 30)
                    for l in range(layers) for k in range(ks)}
            grid_b = {l: H2bInputs(base[t, l], omega_b[t, l], 14, 0.3) for l in range(layers)} if which == "b" else None
            res = h2_verdicts(grid, grid_b, alpha=s["alpha"], n_boot=N_BOOT_FULL if which == "b" else N_BOOT_CHEAP,
                              tolerance=s["frontier_tolerance"], min_frontier=s["h2_min_frontier"])
            out[t] = [res[(l, 0) if which == "a" else (l, "b")][0] for l in range(layers)]
        return out

    return simulate


# ---- H3
# Measured on SmolLM2-135M's H3 tables (16 x 128 windows, bos and nobos): 57% of positions
# are frequent tokens (window sd 0.10), 0.8-1.9 sink-like positions per window besides
# position 0, which is sink-like in 75-88% of windows; profile cosines to position 0 have
# mean 0.92, within-window sd 0.034-0.037 and skewness -0.11 to -0.25; real effects: claim 1 0.36-0.43, claim 2
# 0.18-0.24, claim 3 0.07-0.08.
H3_PROFILE = dict(positions=POSITIONS, frequent_rate=0.57, rate_sd=0.10, extra_sinks=0.8, position0=0.8,
                  on_frequent=0.4, rho=0.3, cos_mean=0.92, cos_sd=0.035, cos_skew=-0.2, cos_gap=0.08, many=0.4)


@dataclass
class _Table:
    """A PositionTable with the fields h3_raw reads."""

    sink_like: np.ndarray
    frequent: np.ndarray
    profile_cos: np.ndarray
    bar_ratio: np.ndarray
    dark_ratio: np.ndarray
    position0_sink_like: np.ndarray


def h3_table(rng, n, claim_null: str | None, p) -> _Table:
    """One simulated H3 table. claim_null: the claim at its null ('1', '2', '3', '4'), the
    others at the effects in p (p['on_frequent'], p['rho'], p['cos_gap'], p['many'])."""
    P = p["positions"]
    rate = np.clip(p["frequent_rate"] + p["rate_sd"] * rng.standard_normal((n, 1)), 0.02, 0.98)
    frequent = rng.random((n, P)) < rate
    # sink-like positions besides position 0. Claim 4 reads P(count >= 2), where position 0
    # counts when it is sink-like (probability position0): a window "has many" with
    # probability 0.5 under claim 4's null, 0.5 + many otherwise; a window with many has the
    # minimum that makes 2 plus Poisson(extra_sinks) more, one without has at most 1 in all
    pos0 = rng.random(n) < p["position0"]
    share_many = 0.5 if claim_null == "4" else 0.5 + p["many"]
    has_many = rng.random(n) < share_many
    need = np.where(pos0, 1, 2)
    n_sink = np.where(has_many, need + rng.poisson(p["extra_sinks"], n), np.where(pos0, 0, rng.integers(0, 2, n)))
    n_sink = np.minimum(n_sink, P // 2)[:, None]
    rank = lambda u: np.argsort(np.argsort(u, axis=1), axis=1)  # 0-based rank within each window
    u = rng.random((n, P))
    if claim_null == "1":  # the within-window permutation null: positions uniformly at random
        sink = rank(u) < n_sink
    else:  # each sink lands on a frequent token with probability base rate + on_frequent
        q = np.minimum(1.0, frequent.mean(1, keepdims=True) + p["on_frequent"])
        nf = np.minimum(rng.binomial(n_sink, q), frequent.sum(1, keepdims=True))
        no = np.minimum(n_sink - nf, (~frequent).sum(1, keepdims=True))
        sink = np.where(frequent, rank(np.where(frequent, u, 2.0)) < nf, rank(np.where(frequent, 2.0, u)) < no)
    # bar ratio: lognormal for ordinary positions, >= 5 at sink-like ones
    log_bar = 0.6 * rng.standard_normal((n, P))
    bar = np.where(sink, 5.0 + np.exp(log_bar), np.exp(log_bar))
    # dark ratio: Gaussian copula with the (log) bar ratio, correlation rho (0 under claim 2's null)
    z = (np.log(bar) - np.log(bar).mean(1, keepdims=True)) / np.log(bar).std(1, keepdims=True)
    rho = 0.0 if claim_null == "2" else p["rho"]
    dark = np.exp(0.3 + 0.4 * (rho * z + math.sqrt(1 - rho ** 2) * rng.standard_normal((n, P))))
    # profile cosine to position 0: mean cos_mean, sd cos_sd, skewness cos_skew (a standardised
    # gamma, mirrored for a left skew), at most 1; sink-like ones shifted up by cos_gap
    cos = np.minimum(p["cos_mean"] + p["cos_sd"] * skewed_unit(rng, (n, P), p["cos_skew"]), 1.0)
    if claim_null != "3":
        cos = np.where(sink, np.minimum(cos + p["cos_gap"], 1.0), cos)
    return _Table(sink, frequent, cos, bar, dark, pos0)


def _h3_sim(claim):
    def simulate(rng, trials, n, layers, effect, **profile):
        p = dict(H3_PROFILE)
        p.update(profile)
        key = {"1": "on_frequent", "2": "rho", "3": "cos_gap", "4": "many"}[claim]
        null = claim if effect == 0 else None
        if effect != 0:
            p[key] = effect
        out = np.zeros((trials, 1), bool)
        for t in range(trials):
            # 200 permutations: valid Monte-Carlo p-values ((1 + hits) / 201), small enough for the
            # family of four claims (alpha / 4 = 0.0125 > 1 / 201), ten times cheaper than the default
            raws = {"x": h3_raw(h3_table(rng, n, null, p), permutations=H3_PERMUTATIONS)}
            for extra in range(layers - 1):  # more BOS conditions in the family: clear effects
                raws[f"c{extra}"] = h3_raw(h3_table(rng, n, None, dict(H3_PROFILE)), permutations=H3_PERMUTATIONS)
            res = h3_verdicts(raws, alpha=DEFAULTS["alpha"], n_boot=N_BOOT_CHEAP)
            out[t, 0] = res["x", claim][0]
        return out

    return simulate


# ---- H4-A
H4A_PROFILE = dict(att_t=0.01, att_t_cv=0.4, att0=0.6, att0_sd=0.05, ratio=10.0, ratio_cv=0.4, fall=0.15, fall_sd=0.05,
                   control_ratio=1.5, rise=0.5, rise_cv=0.4, rise_sd=0.05, share=0.9, targets=1)


def _lognormal(rng, shape, cv):
    return hardness(rng, shape, cv)


def _h4a_sim(case):
    def simulate(rng, trials, n, layers, effect, **profile):
        from .designate import WriteResult

        p = dict(H4A_PROFILE)
        p.update(profile)
        if case == "A1":
            p["ratio"] = effect
        elif case == "A2":
            p["ratio"] = effect * p["control_ratio"]  # effect: dark capture over the control's
        else:
            p["share"] = effect
        s = DEFAULTS
        cells = layers * p["targets"]
        shape = (trials, cells, n)
        att_t = p["att_t"] * _lognormal(rng, shape, p["att_t_cv"])
        att_0 = np.clip(p["att0"] + p["att0_sd"] * rng.standard_normal(shape), 0.05, 0.99)
        nll = 3.1 + 0.3 * rng.standard_normal(shape)
        mult = lambda ratio: ratio * _lognormal(rng, shape, p["ratio_cv"])
        fall_add = p["fall"] + p["fall_sd"] * rng.standard_normal(shape)
        add_att0 = att_0 * (1 - fall_add) if not p.get("att0_null") else att_0 + p["att0_sd"] * 0.3 * (
            rng.standard_normal(shape) - rng.standard_normal(shape)) / math.sqrt(2)
        h = hardness(rng, shape, p["rise_cv"])
        broken_nll = nll + p["rise"] * h + p["rise_sd"] * window_noise(rng, shape)
        rescued_nll = nll + (1 - p["share"]) * p["rise"] * h + p["rise_sd"] * window_noise(rng, shape)
        modes = {
            "base": (att_t, att_0, nll),
            "add": (att_t * mult(p["ratio"]), add_att0, nll + 0.01 * window_noise(rng, shape)),
            "transplant": (att_t * mult(max(p["ratio"], 1.0) * 1.5), att_0 * (1 - 2 * fall_add), rescued_nll),
            "control": (att_t * mult(p["control_ratio"]), att_0 * (1 - 0.2 * fall_add), nll + 0.01 * window_noise(rng, shape)),
            "broken": (att_t, att_0 * (1 - 2 * fall_add), broken_nll),
        }
        target = {"A1": ("A1", "add"), "A2": ("A2", "add"), "A3": ("A3", "transplant")}[case]
        out = np.zeros((trials, layers), bool)
        for t in range(trials):
            raws = {}
            for c in range(cells):
                w = {m: WriteResult(a[t, c], b[t, c], x[t, c]) for m, (a, b, x) in modes.items()}
                raws[c // p["targets"], c % p["targets"]] = h4a_raw(w, s["h4_rho"], N_BOOT_CHEAP, s["h4_min_recovered"],
                                                                  key=(c // p["targets"], c % p["targets"]))
            res = h4a_verdicts(raws, alpha=s["alpha"])
            out[t] = [res[(l, 0) + target][0] for l in range(layers)]
        return out

    return simulate


# ---- H4-B
H4B_PROFILE = dict(att_gap=0.2, att=0.3, att_sd=0.05, nll_gap=0.3, nll_sd=0.1, cv=0.3, dark_gap=0.3, dark_mu=0.5,
                   dark_sigma=0.5, ordinary=60)


def _h4b_sim(case):
    def simulate(rng, trials, n, layers, effect, **profile):
        p = dict(H4B_PROFILE)
        p.update(profile)
        if case == "B1-attention":
            p["att_gap"] = effect
        elif case == "B1-nll":
            p["nll_gap"] = effect
        else:
            p["dark_gap"] = effect
        shape = (trials, layers, n)
        att_0 = np.clip(p["att"] + p["att_sd"] * rng.standard_normal(shape), 0.01, 0.99)
        att_k = np.clip(att_0 + p["att_gap"] + p["att_sd"] * (rng.standard_normal(shape) - rng.standard_normal(shape)) / math.sqrt(2),
                        0.0, 1.0)
        nll = 1.6 + 0.1 * rng.standard_normal(shape)
        h = hardness(rng, shape, p["cv"])
        nll_0 = nll + 0.2 * h + p["nll_sd"] * window_noise(rng, shape)
        nll_k = nll + (0.2 + p["nll_gap"]) * h + p["nll_sd"] * window_noise(rng, shape)
        # dark ratio per position: lognormal with a per-window level; k is one more position
        level = p["dark_sigma"] * 0.5 * rng.standard_normal(shape + (1,))
        ordinary = np.exp(p["dark_mu"] + level + p["dark_sigma"] * rng.standard_normal(shape + (p["ordinary"],)))
        k_one = np.exp(p["dark_mu"] + level[..., 0] + p["dark_sigma"] * rng.standard_normal(shape))
        dark_k = k_one + p["dark_gap"]
        out = np.zeros((trials, layers), bool)
        claim = "B2" if case == "B2" else "B1"
        for t in range(trials):
            grid = {l: {"att_k": att_k[t, l], "att_0": att_0[t, l], "nll_base": nll[t, l], "nll_dark_k": nll_k[t, l],
                        "nll_dark_0": nll_0[t, l], "dark_ratio_k": dark_k[t, l],
                        "dark_ratio_ordinary": ordinary[t, l].mean(-1)} for l in range(layers)}
            res = h4b_verdicts(grid, alpha=DEFAULTS["alpha"], n_boot=N_BOOT_CHEAP)
            out[t] = [res[l, claim][0] for l in range(layers)]
        return out

    return simulate


# ---- H5
H5_PROFILE = dict(share_sd=0.1, share_skew=0.0, share=0.8, mass=0.55, mass_sd=0.05, drop=0.3, drop_sd=0.08,
                  nll_rise=0.5, nll_sd=0.1, cv=0.3, control_drop=0.0, control_nll=0.0)


def _h5_shares(rng, shape, mean, sd, skew):
    """Per-window shares with the given mean and sd: Beta when skew == 0 (symmetric at 0.5),
    else a two-point-plus-noise mixture whose long tail points down (skew < 0) or up."""
    if skew == 0:
        m = min(max(mean, 1e-3), 1 - 1e-3)
        k = max(m * (1 - m) / sd ** 2 - 1, 1.0)
        return rng.beta(m * k, (1 - m) * k, shape)
    # mixture: with probability q a window is shifted by -delta (skew < 0) or +delta
    q = 0.15
    delta = sd / math.sqrt(q * (1 - q)) * np.sign(skew)
    bump = (rng.random(shape) < q) * delta
    x = bump - q * delta + 0.3 * sd * rng.standard_normal(shape)
    return mean + x


def _h5_sim(claim):
    def simulate(rng, trials, n, layers, effect, **profile):
        p = dict(H5_PROFILE)
        p.update(profile)
        s = DEFAULTS
        if claim == "1":
            p["share"] = s["h5_min_share"] + effect
        else:
            p["drop"] = p["control_drop"] + effect  # effect: relative sink-mass drop beyond the controls
        shape = (trials, n)
        share = _h5_shares(rng, shape, p["share"], p["share_sd"], p["share_skew"])
        base_nll = 3.1 + 0.3 * rng.standard_normal(shape)
        base_mass = np.clip(p["mass"] + p["mass_sd"] * rng.standard_normal(shape), 0.05, 0.95)
        h = hardness(rng, shape, p["cv"])
        drop = lambda d: d + p["drop_sd"] * rng.standard_normal(shape)
        removed_mass = base_mass * (1 - drop(p["drop"]))
        control_mass = base_mass * (1 - drop(p["control_drop"]))
        removed_nll = base_nll + (p["control_nll"] + p["nll_rise"]) * h + p["nll_sd"] * window_noise(rng, shape)
        control_nll = base_nll + p["control_nll"] * h + p["nll_sd"] * window_noise(rng, shape)
        out = np.zeros((trials, 1), bool)
        for t in range(trials):
            x = H5Inputs(share[t], base_nll[t], base_mass[t], removed_nll[t], removed_mass[t], control_nll[t],
                         control_mass[t])
            res = h5_verdicts(x, alpha=s["alpha"], min_share=s["h5_min_share"], min_sink_drop=s["h5_min_sink_drop"],
                              min_nll_rise=s["h5_min_nll_rise"], n_boot=N_BOOT_CHEAP)
            out[t, 0] = res[claim][0]
        return out

    return simulate


D = DEFAULTS
CRITERIA: dict[str, Criterion] = {c.name: c for c in [
    Criterion("H1a", "dark-tail NLL rise minus the random-subspace rise (nats)", _h1_sim("a"),
              nulls={"random-like": dict(effect=0.0),
                     "random-like, subspaces differ": dict(effect=0.0, tau=0.24),
                     "at min_delta": dict(effect=D["h1_min_delta"] - 0.1, random_rise=0.1)},
              clear=dict(effect=1.0), profile=H1_PROFILE,
              description="H1(a): band K removed everywhere raises NLL >= min_delta, more than a random subspace and the middle band"),
    Criterion("H1b", "relative sink-mass drop (tail removed at the sink)", _h1_sim("b"),
              nulls={"no NLL effect": dict(effect=0.4, sink_rise=0.0),
                     "drop at min_sink_drop": dict(effect=D["h1_min_sink_drop"])},
              clear=dict(effect=0.4), profile=H1_PROFILE,
              description="H1(b): band K removed at the sink lowers later sink mass by >= min_sink_drop and raises NLL"),
    Criterion("H2a", "head_{k+1} NLL minus Omega_k NLL (nats)", _h2_sim("a"),
              nulls={"omega like head": dict(effect=0.0)}, clear=dict(effect=0.15), profile=H2_PROFILE,
              description="H2a: Omega_k has lower NLL than head_{k+1}"),
    Criterion("H2b", "tolerance minus the true NLL rise of Omega_k (nats)", _h2_sim("b"),
              nulls={"rise at tolerance": dict(effect=0.0),
                     "rise at tolerance, skewed windows": dict(effect=0.0, cv=0.8, b_sd=0.04)},
              clear=dict(effect=0.2), profile=H2_PROFILE, reads_intervals=True,
              description="H2b: Omega_k deleting >= min_frontier of the dimensions raises NLL by at most the tolerance"),
    Criterion("H3-1", "excess probability that a sink-like position is a frequent token", _h3_sim("1"),
              nulls={"labels permuted": dict(effect=0.0)}, clear=dict(effect=0.4), profile=H3_PROFILE,
              description="H3 claim 1: sink-like positions fall on frequent tokens more than the window's base rate"),
    Criterion("H3-2", "within-window correlation of attention received and dark ratio (Gaussian copula)", _h3_sim("2"),
              nulls={"dark ratio permuted": dict(effect=0.0)}, clear=dict(effect=0.3), profile=H3_PROFILE,
              description="H3 claim 2: attention received and dark ratio correlate within windows"),
    Criterion("H3-3", "cosine-to-position-0 shift of sink-like positions", _h3_sim("3"),
              nulls={"labels permuted": dict(effect=0.0)}, clear=dict(effect=0.08), profile=H3_PROFILE,
              description="H3 claim 3: sink-like positions' band profiles are closer to position 0's"),
    Criterion("H3-4", "P(window has >= 2 sinks) - 0.5", _h3_sim("4"),
              nulls={"P(>= 2 sinks) = 0.5": dict(effect=0.0)}, clear=dict(effect=0.4), profile=H3_PROFILE,
              description="H3 claim 4: a typical window has at least two sink-like positions"),
    Criterion("H4-A1", "capture ratio of the dark write (attention to t, edit / base)", _h4a_sim("A1"),
              nulls={"attention to 0 does not fall": dict(effect=10.0, att0_null=True),
                     "capture at rho": dict(effect=D["h4_rho"])},
              clear=dict(effect=10.0), profile=H4A_PROFILE,
              description="H4-A1: writing the dark component into t raises attention to t >= rho-fold and lowers attention to 0"),
    Criterion("H4-A2", "dark capture over the control's (ratio of the two capture ratios)", _h4a_sim("A2"),
              nulls={"control in place of the dark write": dict(effect=1.0, control_ratio=D["h4_rho"]),
                     "control captures at rho": dict(effect=10.0 / D["h4_rho"], control_ratio=D["h4_rho"])},
              clear=dict(effect=6.0), profile=H4A_PROFILE,
              description="H4-A2: the dark write captures more than a same-norm control, which stays below rho"),
    Criterion("H4-A3", "recovered share of the damage", _h4a_sim("A3"),
              nulls={"no rescue": dict(effect=0.0), "share at min_recovered": dict(effect=D["h4_min_recovered"])},
              clear=dict(effect=0.9), profile=H4A_PROFILE,
              description="H4-A3: with the tail removed at 0, writing it into t recovers >= min_recovered of the damage"),
    Criterion("H4-B1", "attention to k minus attention to 0", _h4b_sim("B1-attention"),
              nulls={"attention to k like to 0": dict(effect=0.0),
                     "removal at k like at 0": dict(effect=0.2, nll_gap=0.0)},
              clear=dict(effect=0.1), profile=H4B_PROFILE,
              description="H4-B1: attention goes to k more than to 0, and removing the tail at k hurts more"),
    Criterion("H4-B2", "dark ratio at k minus a random ordinary position's", _h4b_sim("B2"),
              nulls={"k is an ordinary position": dict(effect=0.0)}, clear=dict(effect=1.5), profile=H4B_PROFILE,
              description="H4-B2: the residual at k is darker than at ordinary positions"),
    Criterion("H5-1", "writer's dark share minus min_share", _h5_sim("1"),
              nulls={"share at min_share": dict(effect=0.0),
                     "share at min_share, skewed windows": dict(effect=0.0, share_skew=-1.0)},
              clear=dict(effect=0.2), profile=H5_PROFILE,
              description="H5 claim 1: the largest early dark writer wrote >= min_share of the dark norm after it"),
    Criterion("H5-2", "relative sink-mass drop beyond the controls", _h5_sim("2"),
              nulls={"controls equal to the removal": dict(effect=0.0, nll_rise=0.0, control_drop=0.3, control_nll=0.5),
                     "effects at the minimums": dict(effect=D["h5_min_sink_drop"], nll_rise=D["h5_min_nll_rise"])},
              clear=dict(effect=0.3), profile=H5_PROFILE,
              description="H5 claim 2: removing the writer's dark write at the sink lowers sink mass and raises NLL beyond controls"),
]}


def parse(criterion: str) -> tuple[Criterion, str | None]:
    """'H1a' (its first null) or 'H1a:random-like' -> (Criterion, null name)."""
    name, _, null = criterion.partition(":")
    if name not in CRITERIA:
        raise KeyError(f"unknown criterion {name!r}; known: {sorted(CRITERIA)}")
    c = CRITERIA[name]
    null = null or next(iter(c.nulls))
    if null not in c.nulls:
        raise KeyError(f"{name}: unknown null {null!r}; known: {list(c.nulls)}")
    return c, null


def simulate(criterion: str, effect: float, *, trials: int, n_windows: int = 16, seed: int = 0, layers: int = 1,
             intervals: bool | None = None, **profile) -> np.ndarray:
    """bool [trials, layers]: whether the criterion passed in each simulated trial.
    intervals: compute the bootstrap intervals (None: only where the verdict reads one)."""
    c, _ = parse(criterion)
    rng = np.random.default_rng(seed)
    with exact_fast_stats(intervals=c.reads_intervals if intervals is None else intervals):
        return c.simulate(rng, trials, n_windows, layers, effect, **profile)


def pass_rate(criterion: str, effect: float, *, trials: int, n_windows: int = 16, seed: int = 0, layers: int = 1,
              family: bool = False, **profile) -> tuple[float, float]:
    """Share of trials in which the criterion passed (at the first layer; family=True: at any
    layer of the grid), with its Monte-Carlo standard error sqrt(r (1 - r) / trials)."""
    passed = simulate(criterion, effect, trials=trials, n_windows=n_windows, seed=seed, layers=layers, **profile)
    hits = passed.any(1) if family else passed[:, 0]
    rate = float(hits.mean())
    return rate, math.sqrt(rate * (1 - rate) / trials)


def false_pass_rate(criterion: str, trials: int = 1000, n_windows: int = 16, seed: int = 0, layers: int = 1,
                    family: bool = False, **profile) -> tuple[float, float]:
    """(rate, Monte-Carlo SE) of passing under the criterion's null ('H1a' -> its first
    null, 'H1a:<null>' -> that one). layers > 1: the null holds at every layer of the grid;
    family=True counts a trial when any layer passes (the family-wise rate)."""
    c, null = parse(criterion)
    params = dict(c.nulls[null])
    params.update(profile)
    effect = params.pop("effect")
    return pass_rate(c.name, effect, trials=trials, n_windows=n_windows, seed=seed, layers=layers, family=family, **params)


def power(criterion: str, effect: float, n_windows: int = 16, trials: int = 400, seed: int = 1, layers: int = 1,
          **profile) -> float:
    """Share of trials passing at `effect` (units: CRITERIA[name].effect_name), with the
    criterion's realistic profile (overridable) and `layers` layers in the Holm family."""
    return pass_rate(criterion.partition(":")[0], effect, trials=trials, n_windows=n_windows, seed=seed, layers=layers,
                     **profile)[0]


def windows_needed(criterion: str, effect: float, target_power: float = 0.8, trials: int = 400, max_windows: int = 256,
                   layers: int = 1, seed: int = 1, **profile) -> int | None:
    """Fewest windows with power >= target_power at `effect` (None: not within max_windows).
    Doubling from the Holm floor, then bisection (power is taken as monotone in windows)."""
    from .stats import min_windows

    lo = max(2, min_windows(DEFAULTS["alpha"], 1))
    if power(criterion, effect, lo, trials, seed, layers, **profile) >= target_power:
        return lo
    hi = lo
    while True:
        hi = min(hi * 2, max_windows)
        if power(criterion, effect, hi, trials, seed, layers, **profile) >= target_power:
            break
        if hi >= max_windows:
            return None
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power(criterion, effect, mid, trials, seed, layers, **profile) >= target_power:
            hi = mid
        else:
            lo = mid
    return hi


def calibration_table(trials: int = 1000, n_windows: int = 16, seed: int = 0) -> list[dict]:
    """Every criterion x null: false-pass rate, MC SE, the bound alpha + 3 SE(alpha), verdict."""
    rows = []
    alpha = DEFAULTS["alpha"]
    bound = alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)
    for name, c in CRITERIA.items():
        for null in c.nulls:
            rate, se = false_pass_rate(f"{name}:{null}", trials, n_windows, seed)
            rows.append(dict(criterion=name, null=null, rate=rate, se=se, bound=bound, calibrated=rate <= bound))
    return rows


# --------------------------------------------------------------------------- power at real effects
def _ci_sd(ci, n: int) -> float | None:
    """Per-window sd implied by a 95% interval of a mean over n windows."""
    if not ci or ci[0] is None or ci[1] is None:
        return None
    return (ci[1] - ci[0]) / 3.92 * math.sqrt(n)


def never_passes(criterion: str, effect: float, profile: dict) -> str | None:
    """Why the criterion cannot reach power at this effect however many windows (a point
    estimate on the failing side of its threshold, or no effect), or None."""
    d, p = DEFAULTS, profile
    rules = {
        "H1a": effect <= 0 or p.get("random_rise", H1_PROFILE["random_rise"]) + effect < d["h1_min_delta"],
        "H1b": effect < d["h1_min_sink_drop"] or p.get("sink_rise", 1.0) <= 0,
        "H2a": effect <= 0, "H2b": effect <= 0, "H3-1": effect <= 0, "H3-2": effect <= 0, "H3-3": effect <= 0,
        "H3-4": effect <= 0, "H4-A1": effect < d["h4_rho"],
        "H4-A2": p.get("control_ratio", H4A_PROFILE["control_ratio"]) >= d["h4_rho"] or effect <= 1
        or effect * p.get("control_ratio", H4A_PROFILE["control_ratio"]) < d["h4_rho"],
        "H4-A3": effect < d["h4_min_recovered"], "H4-B1": effect <= 0 or p.get("nll_gap", 1.0) <= 0, "H4-B2": effect <= 0,
        "H5-1": effect <= 0,
        "H5-2": effect < d["h5_min_sink_drop"] or p.get("nll_rise", 1.0) < d["h5_min_nll_rise"],
    }
    return "effect on the failing side of the criterion's threshold" if rules[criterion] else None


def effect_specs(records: list[dict], real) -> list[dict]:
    """Effect sizes seen on real models as simulator inputs. records: result records
    (results.jsonl lines, each with its '_source'; older metric names tolerated); real:
    (model, output) pairs of benchmarks/calibrate_zoo.py --json files (each output with its
    '_source'; a dict model -> output is accepted). A later source replaces an earlier one
    for the same criterion, model and case. Each spec: criterion, model, case, effect,
    profile, grid (layers or conditions of the default grid: the family the run uses), source."""
    specs = []
    if isinstance(real, dict):
        real = list(real.items())

    def add(criterion, model, case, effect, profile, grid, source):
        if effect is None or not np.isfinite(effect):
            return
        prof = {k: (v if isinstance(v, int) else float(v)) for k, v in profile.items() if v is not None}
        key = (criterion, model, case)
        specs[:] = [x for x in specs if (x["criterion"], x["model"], x["case"]) != key]  # a later source wins
        specs.append(dict(criterion=criterion, model=model, case=case, effect=float(effect), profile=prof, grid=grid,
                          source=source))

    for r in records:
        m, h, model, src = r["metrics"], r["hypothesis"], r["model"], r.get("_source", "results.jsonl")
        n = int(r.get("params", {}).get("n_seqs", 16))
        layer = r.get("layer")
        if h == "H1":
            add("H1a", model, f"layer {layer}", m["dark_all_delta"] - m["random_delta"],
                {"random_rise": m["random_delta"]}, 3, src)
            add("H1b", model, f"layer {layer}", m.get("sink_mass_drop"),
                {"sink_rise": m.get("dark_sink_delta"), "sink_sd": _ci_sd(m.get("dark_sink_delta_ci"), n),
                 "drop_sd": _ci_sd(m.get("sink_mass_drop_ci"), n)}, 3, src)
        elif h == "H2" and "head_minus_omega" in m:
            sd = _ci_sd(m.get("head_minus_omega_ci"), n)
            add("H2a", model, f"layer {layer}, k {r['params'].get('k')}", m["head_minus_omega"],
                {"omega_rise": m.get("omega_delta"), "gap_sd": sd / math.sqrt(2) if sd else None, "ks": 3}, 3, src)
        elif h == "H2" and "deleted_share" in m and m.get("k") is not None:
            add("H2b", model, f"layer {layer}, k {m['k']}", m.get("tolerance", 0.25) - m["omega_delta"],
                {"b_sd": _ci_sd(m.get("omega_delta_ci"), n), "cv": 0.0}, 3, src)
        elif h == "H4" and "capture_ratio" in m and r["params"].get("variant") == "add" and r["params"].get("target") == "middle":
            add("H4-A1", model, f"layer {layer}, middle", m["capture_ratio"], {}, 3, src)
        elif h == "H4" and "control_capture_ratio" in m and r["params"].get("target") == "middle":
            add("H4-A2", model, f"layer {layer}, middle", m["dark_capture_ratio"] / max(m["control_capture_ratio"], 1e-9),
                {"control_ratio": m["control_capture_ratio"]}, 3, src)
        elif h == "H4" and "recovered_share" in m and r["params"].get("target") == "middle":
            add("H4-A3", model, f"layer {layer}, middle", m["recovered_share"],
                {"rise": m.get("delta_broken"), "rise_sd": _ci_sd(m.get("delta_broken_ci"), n)}, 3, src)
        elif h == "H5" and "dark_share" in m:
            add("H5-1", model, "", m["dark_share"] - DEFAULTS["h5_min_share"],
                {"share_sd": _ci_sd(m.get("dark_share_ci"), n)}, 1, src)
        elif h == "H5" and "sink_drop_beyond_control" in m:
            sd = _ci_sd(m.get("nll_rise_beyond_control_ci"), n)
            add("H5-2", model, "", m["sink_drop_beyond_control"],
                {"nll_rise": m.get("nll_rise_beyond_control"), "nll_sd": sd / math.sqrt(2) if sd else None}, 1, src)
    for model, out in real:
        src = out.get("_source", "benchmarks/calibrate_zoo.py")
        for cond, t in out.get("h3", {}).get("tables", {}).items():
            e = t.get("real_effect", {})
            add("H3-1", model, cond, e.get("1"), {}, 2, src)
            r2 = e.get("2")
            add("H3-2", model, cond, 2 * math.sin(math.pi * r2 / 6) if r2 is not None else None, {}, 2, src)
            add("H3-3", model, cond, e.get("3"), {}, 2, src)
            add("H3-4", model, cond, e["4"] - 0.5 if e.get("4") is not None else None, {}, 2, src)
        for layer, sh in out.get("h2", {}).get("shape", {}).items():
            add("H2b", model, f"layer {layer}, k {sh['k']}", DEFAULTS["frontier_tolerance"] - sh["mean"],
                {"b_sd": sh["sd"], "cv": 0.0}, 3, src)
        for key, m in out.get("h4", {}).get("real", {}).items():
            layer, target, claim, variant = key.split("/")
            if target != "middle":
                continue
            if claim == "A1" and variant == "add":
                add("H4-A1", model, f"layer {layer}, middle", m.get("capture_ratio"), {}, 3, src)
            elif claim == "A2" and m.get("control_capture_ratio"):
                add("H4-A2", model, f"layer {layer}, middle", m["dark_capture_ratio"] / m["control_capture_ratio"],
                    {"control_ratio": m["control_capture_ratio"]}, 3, src)
            elif claim == "A3":
                add("H4-A3", model, f"layer {layer}, middle", m.get("recovered_share"), {"rise": m.get("delta_broken")}, 3, src)
        eff = out.get("effects", {})
        for key, m in eff.get("H2", {}).items():
            layer, k = key.split("/")
            if k != "b":
                sd = _ci_sd(m.get("head_minus_omega_ci"), 16)
                add("H2a", model, f"layer {layer}, k {k}", m["head_minus_omega"],
                    {"omega_rise": m.get("omega_delta"), "gap_sd": sd / math.sqrt(2) if sd else None, "ks": 3}, 3, src)
        for key, m in eff.get("H4B", {}).items():
            layer, claim = key.split("/")
            if claim == "B1":
                nsd = _ci_sd(m.get("nll_dark_k_minus_0_ci"), 16)
                add("H4-B1", model, f"layer {layer}", m["att_k"] - m["att_0"],
                    {"att": m["att_0"], "att_sd": _ci_sd(m.get("att_k_minus_0_ci"), 16),
                     "nll_gap": m["nll_dark_k"] - m["nll_dark_0"], "nll_sd": nsd / math.sqrt(2) if nsd else None}, 1, src)
            else:  # the dark ratio's scale and spread as measured: lognormal with the ordinary
                # positions' mean and the spread that gives the measured window sd of the gap
                sd = _ci_sd(m.get("difference_ci"), 16) or 0.1
                mean = max(m["dark_ratio_ordinary"], 1e-6)
                sigma = math.sqrt(math.log1p((sd / mean) ** 2))
                add("H4-B2", model, f"layer {layer}", m["dark_ratio_k"] - m["dark_ratio_ordinary"],
                    {"dark_mu": math.log(mean) - sigma ** 2 / 2, "dark_sigma": sigma}, 1, src)
        h5 = eff.get("H5", {})
        if "1" in h5:
            add("H5-1", model, "", h5["1"]["dark_share"] - DEFAULTS["h5_min_share"],
                {"share_sd": max(_ci_sd(h5["1"].get("dark_share_ci"), 16) or 0.0, 1e-3)}, 1, src)
        if "2" in h5:
            add("H5-2", model, "", h5["2"]["sink_drop_beyond_control"], {"nll_rise": h5["2"]["nll_rise_beyond_control"]}, 1, src)
    return specs


def power_rows(specs: list[dict], trials: int = 300, target_power: float = 0.8, max_windows: int = 128) -> list[dict]:
    """windows_needed at each spec's effect: alone (the criterion's own tests as the family)
    and in the default grid (the same effect at each of `grid` layers / conditions)."""
    rows = []
    for sp in specs:
        why = never_passes(sp["criterion"], sp["effect"], sp["profile"])
        row = dict(sp, why=why, own=None, grid_windows=None, power16=None)
        if why is None:
            kw = dict(trials=trials, max_windows=max_windows, **sp["profile"])
            row["own"] = windows_needed(sp["criterion"], sp["effect"], target_power, **kw)
            grid_kw = dict(sp["profile"], **({"targets": 3} if sp["criterion"].startswith("H4-A") else {}))
            row["power16"] = power(sp["criterion"], sp["effect"], 16, trials, layers=sp["grid"], **grid_kw)
            if sp["criterion"].startswith("H4-A"):  # the default grid: 3 layers x 3 target kinds
                kw["targets"] = 3
            if sp["grid"] > 1 or "targets" in kw:
                row["grid_windows"] = windows_needed(sp["criterion"], sp["effect"], target_power, layers=sp["grid"], **kw)
            else:
                row["grid_windows"] = row["own"]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- docs
SIM_BEGIN, SIM_END = "<!-- simulated-calibration:begin -->", "<!-- simulated-calibration:end -->"
POW_BEGIN, POW_END = "<!-- power-table:begin -->", "<!-- power-table:end -->"


def replace_block(text: str, begin: str, end: str, body: str) -> str:
    if begin not in text:
        return text + f"\n{begin}\n{body}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + body + "\n" + end + tail


def calibration_markdown(rows: list[dict], trials: int) -> str:
    lines = [f"{trials} trials per null, 16 windows, seed 0; bound = alpha + 3 SE(alpha) = {rows[0]['bound']:.4f}.", "",
             "| criterion | null | false-pass rate | MC SE | within bound |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['criterion']} | {r['null']} | {r['rate']:.3f} | {r['se']:.3f} | {'yes' if r['calibrated'] else '**no**'} |")
    return "\n".join(lines)


def power_markdown(rows: list[dict], trials: int) -> str:
    lines = [f"Windows for 80% power ({trials} simulated trials per evaluation, searched up to 128 windows); "
             "'alone': the criterion's own tests are the Holm family; 'grid': the same effect at every "
             "layer (H1, H2, H4-A: 3 layers; H4-A: x 3 targets) or BOS condition (H3: 2) of the default run. "
             "'power@16': pass rate at 16 windows in the grid.", "",
             "| criterion | model | case | effect | windows (alone) | windows (grid) | power@16 | source |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v: "never" if r["why"] else (">128" if v is None else str(v))
        p16 = "0" if r["why"] else f"{r['power16']:.2f}"
        lines.append(f"| {r['criterion']} | {r['model']} | {r['case']} | {r['effect']:.3g} | {fmt(r['own'])} | "
                     f"{fmt(r['grid_windows'])} | {p16} | {r['source']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """python -m sinkbench.calibration [--results R.jsonl ...] [--real J.json ...] [--docs docs/calibration.md]"""
    import argparse
    import json
    import time
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m sinkbench.calibration")
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--power-trials", type=int, default=300)
    ap.add_argument("--results", action="append", default=[], help="results.jsonl with real effect sizes (repeatable)")
    ap.add_argument("--real", action="append", default=[], help="JSON written by benchmarks/calibrate_zoo.py (repeatable)")
    ap.add_argument("--docs", help="write the tables between the markers of this markdown file")
    ap.add_argument("--skip-calibration", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    blocks = {}
    if not args.skip_calibration:
        rows = calibration_table(args.trials)
        blocks["sim"] = calibration_markdown(rows, args.trials)
        print(blocks["sim"], flush=True)
        print(f"[{time.perf_counter() - t0:.0f}s]", flush=True)
    if args.results or args.real:
        records, real = [], []
        for path in args.results:
            for line in Path(path).read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    r["_source"] = path
                    records.append(r)
        for path in args.real:
            for model, out in json.loads(Path(path).read_text()).items():
                out["_source"] = path
                real.append((model, out))
        rows = power_rows(effect_specs(records, real), args.power_trials)
        blocks["power"] = power_markdown(rows, args.power_trials)
        print(blocks["power"], flush=True)
        print(f"[{time.perf_counter() - t0:.0f}s]", flush=True)
    if args.docs:
        path = Path(args.docs)
        text = path.read_text() if path.exists() else ""
        if "sim" in blocks:
            text = replace_block(text, SIM_BEGIN, SIM_END, blocks["sim"])
        if "power" in blocks:
            text = replace_block(text, POW_BEGIN, POW_END, blocks["power"])
        path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
