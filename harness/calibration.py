"""Calibration of the criteria by simulation: false-pass rates under nulls with realistic
within-window structure, and power (windows needed) at given effects.

This module is the engine (Criterion, the window-level noise, simulate / false_pass_rate /
power, the tables); each hypothesis unit declares its own criteria and simulators beside its
verdicts (`NULLS` in sinkbench.hypotheses.h1_dark_tail ... h5_sink_writer, read through the
registry). Every simulated trial builds the per-window arrays one real run would hand to
the unit's verdict functions (H1Inputs, H2Inputs/H2bInputs, a PositionTable, WriteResults,
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


def split_profile(effect, params, profile):
    p = dict(params)
    p.update(profile)
    return effect, p


D = DEFAULTS


def criteria() -> dict[str, Criterion]:
    """Every criterion with simulated nulls, by name: the `nulls` of the registered
    hypothesis units (sinkbench.registry), each declared beside its verdict."""
    from .registry import units

    return {c.name: c for u in units().values() for c in u.nulls}


def __getattr__(name: str):
    if name == "CRITERIA":  # the registry loads the units, which import this module: read it late
        return criteria()
    raise AttributeError(name)


def parse(criterion: str) -> tuple[Criterion, str | None]:
    """'H1a' (its first null) or 'H1a:random-like' -> (Criterion, null name)."""
    name, _, null = criterion.partition(":")
    known = criteria()
    if name not in known:
        raise KeyError(f"unknown criterion {name!r}; known: {sorted(known)}")
    c = known[name]
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
    for name, c in criteria().items():
        for null in c.nulls:
            rate, se = false_pass_rate(f"{name}:{null}", trials, n_windows, seed)
            rows.append(dict(criterion=name, null=null, rate=rate, se=se, bound=bound, calibrated=rate <= bound))
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


def main(argv=None) -> int:
    """python -m sinkbench.calibration [--results R.jsonl ...] [--real J.json ...] [--docs docs/calibration.md]"""
    from .calibration_power import effect_specs, power_markdown, power_rows

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
