"""Calibration, measured: for every criterion of H1-H5, the rate at which the verdict
functions of sinkbench.stats.claims pass when the claim is false (a null with realistic
within-window structure, placed at the criterion's boundary, the rest of its Holm family
at clear effects), over 1000 simulated trials, must be at most alpha + 3 Monte-Carlo
standard errors (of a rate equal to alpha: 0.05 + 3 * 0.0069 = 0.0707). And each
criterion has power: at a clear effect it passes nearly always, so these tests do not pass
because everything fails. harness/run/calibration.py builds the trials; docs/calibration.md
has the tables, the real-model nulls and the power table.

Where a criterion is miscalibrated, its test states the correct expectation and is marked
xfail(strict=True) with the measured rate and the cause: it turns green when the verdict is
fixed in harness/stats/claims.py (and a strict xfail fails if the rate falls within the bound
without that fix being recorded here)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from sinkbench.run import calibration as cal
from sinkbench.stats import nulls
from sinkbench.stats import inference as hstats

TRIALS = 1000
ALPHA = cal.DEFAULTS["alpha"]
BOUND = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / TRIALS)

# Nulls whose false-pass rate exceeds the bound (rates at seed 0, 1000 trials; see
# docs/calibration.md). Minimum effects used to be read off point estimates (a true effect
# exactly at the minimum passed about half the time) and H1(a) compared band K with three
# fixed random subspaces only (0.38 with subspaces that differ in cost); both are tested now
# (effect - minimum per window, and band K against the random subspaces' spread), and those
# nulls are held to the bound below like every other.
MISCALIBRATED: dict = {}  # none since the skew-guarded mean test (docs/calibration.md has the history)


# H3's permutation tests make its simulated trials about 20 times dearer than the others':
# at 1000 trials they run nightly (-m slow); the fast set runs them at 200 trials.
SLOW_TRIALS = ("H3-",)
FAST_TRIALS = 200


def null_cases(fast: bool = False):
    for name, c in cal.CRITERIA.items():
        if fast and not name.startswith(SLOW_TRIALS):
            continue
        for null in c.nulls:
            case = f"{name}:{null}"
            marks = [pytest.mark.xfail(strict=True, reason=MISCALIBRATED[case])] if case in MISCALIBRATED else []
            if not fast and name.startswith(SLOW_TRIALS):
                marks.append(pytest.mark.slow)
            yield pytest.param(case, id=case.replace(" ", "_"), marks=marks)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(null_cases()))
def test_false_pass_rate_is_at_most_alpha(case):
    rate, se = cal.false_pass_rate(case, trials=TRIALS, seed=0)
    assert rate <= BOUND, f"{case}: false-pass rate {rate:.3f} (MC SE {se:.3f}) > alpha + 3 SE = {BOUND:.4f}"


@pytest.mark.parametrize("case", list(null_cases(fast=True)))
def test_false_pass_rate_of_permutation_criteria_at_200_trials(case):
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / FAST_TRIALS)
    rate, se = cal.false_pass_rate(case, trials=FAST_TRIALS, seed=0)
    assert rate <= bound, f"{case}: false-pass rate {rate:.3f} (MC SE {se:.3f}) > alpha + 3 SE = {bound:.4f}"


def test_every_criterion_has_a_null_and_the_list_of_miscalibrations_is_current():
    expected = {"H1a", "H1b", "H2a", "H2b", "H3-1", "H3-2", "H3-3", "H3-4", "H4-A1", "H4-A2", "H4-A3", "H4-B1", "H4-B2",
                "H5-1", "H5-2"}
    assert set(cal.CRITERIA) == expected
    known = {f"{n}:{null}" for n, c in cal.CRITERIA.items() for null in c.nulls}
    assert set(MISCALIBRATED) <= known
    # every criterion has at least one null its verdict handles: the calibration of its own test
    for name in cal.CRITERIA:
        assert any(f"{name}:{null}" not in MISCALIBRATED for null in cal.CRITERIA[name].nulls), name


def test_h1_family_wise_rate_on_a_three_layer_grid():
    """H1(a)'s null at every layer of a 3-layer grid (Holm over 12 tests, (b) clear): the
    share of trials where claim (a) passes at any layer stays within the bound."""
    rate, se = cal.false_pass_rate("H1a:random-like", trials=TRIALS, seed=2, layers=3, family=True)
    assert rate <= BOUND, f"H1(a) family-wise false-pass rate {rate:.3f} (SE {se:.3f}) > {BOUND:.4f}"


def test_h2a_family_wise_rate_on_a_three_layer_grid():
    """H2a's null at every (layer, k) of 3 layers x 3 k: any pass counts."""
    passed = cal.simulate("H2a", 0.0, trials=TRIALS, seed=3, layers=3, ks=3, other_gap=0.0)
    rate = float(passed.any(1).mean())
    assert rate <= BOUND, f"H2a family-wise false-pass rate {rate:.3f} > {BOUND:.4f}"


@pytest.mark.parametrize("name", list(cal.CRITERIA))
def test_each_criterion_has_power_at_a_clear_effect(name):
    c = cal.CRITERIA[name]
    trials = 50 if name.startswith(SLOW_TRIALS) else 150  # H3's permutation tests: dearer trials
    rate, _ = cal.pass_rate(name, trials=trials, seed=4, **c.clear)
    assert rate >= 0.9, f"{name}: passes only {rate:.2f} of trials at a clear effect {c.clear}"


def test_verdicts_do_not_depend_on_the_skipped_intervals():
    """The fast path skips bootstrap intervals where no verdict reads one: the pass/fail of
    every criterion is the same with the real 2000-resample intervals."""
    for name, c in cal.CRITERIA.items():
        if c.reads_intervals:
            continue
        for null, params in list(c.nulls.items())[:1] + [("clear", c.clear)]:
            params = dict(params)
            effect = params.pop("effect")
            fast = cal.simulate(name, effect, trials=12, seed=5, **params)
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(nulls, "N_BOOT_CHEAP", nulls.N_BOOT_FULL)
                full = cal.simulate(name, effect, trials=12, seed=5, intervals=True, **params)
            assert np.array_equal(fast, full), (name, null)


def test_fast_statistics_return_scipys_numbers():
    rng = np.random.default_rng(6)
    fast = nulls._make_fast_spearmanr(scipy.stats.spearmanr)
    for i in range(300):
        n = int(rng.integers(3, 150))
        a, b = rng.random(n), rng.random(n) + rng.random() * np.arange(n) / n
        if i % 5 == 0:
            b = np.round(b, 1)  # ties: scipy's own path
        assert fast(a, b)[0] == scipy.stats.spearmanr(a, b)[0]
    for k, n in [(0, 16), (8, 16), (12, 16), (16, 16), (3, 7)]:
        assert nulls.fast_binomial_greater(k, n) == hstats.binomial_greater(k, n)
        assert nulls.fast_proportion_ci(k, n) == hstats.proportion_ci(k, n)


def test_fast_statistics_are_restored_after_use():
    from sinkbench.stats import claims

    before = (claims.binomial_greater, claims.ci_mean, scipy.stats.spearmanr)
    with cal.exact_fast_stats(intervals=False):
        assert claims.binomial_greater is nulls.fast_binomial_greater
    assert (claims.binomial_greater, claims.ci_mean, scipy.stats.spearmanr) == before


def test_window_noise_has_unit_variance_and_token_skew():
    x = nulls.window_noise(np.random.default_rng(7), (20000,))
    assert abs(x.mean()) < 0.03 and abs(x.std() - 1) < 0.03
    assert 0.1 < scipy.stats.skew(x) < 0.6  # averaged over 127 correlated skewed tokens: mildly skewed


def test_power_and_windows_needed():
    """Power rises with windows, and windows_needed returns the first n reaching the target
    (at a moderate H2a effect, same seeds)."""
    kw = dict(trials=120, seed=8)
    n = cal.windows_needed("H2a", 0.05, target_power=0.8, **kw)
    assert n is not None and 8 <= n <= 64
    assert cal.power("H2a", 0.05, n, **kw) >= 0.8 > cal.power("H2a", 0.05, n - 1, **kw)
    assert cal.power("H2a", 0.05, 6, **kw) < cal.power("H2a", 0.05, 40, **kw)


def _stability_rates():
    """benchmarks/stability_rates.py, loaded by path (benchmarks/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "stability_rates.py"
    spec = importlib.util.spec_from_file_location("stability_rates", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_verdict_stability_is_observed_power():
    """Issue 30, item 6 (docs/calibration.md, "Verdict stability"): stability is a function of
    how far the p-value sits below alpha, so true passes at low power are mostly marked fragile
    and at high power mostly not, and false passes under the null are nearly all fragile (the
    benchmark's full numbers come from `python benchmarks/stability_rates.py`). Fails if
    stability stopped tracking the p-value (e.g. a resample that reused the original windows,
    which would make every verdict stable)."""
    from sinkbench.stats import claims

    sr = _stability_rates()
    rng = np.random.default_rng(11)
    with claims.without_intervals():
        weak = [sr.one_trial(rng, 0.45, 16, "gaussian", t) for t in range(60)]
        strong = [sr.one_trial(rng, 1.2, 16, "gaussian", t) for t in range(30)]
        null = [sr.one_trial(rng, 0.0, 16, "gaussian", t) for t in range(300)]
    w, s, z = sr.summarise(weak), sr.summarise(strong), sr.summarise(null)
    assert w["passes"] >= 8 and s["pass_rate"] > 0.9, (w, s)
    assert w["fragile_share_of_passes"] > s["fragile_share_of_passes"] + 0.3, (w, s)
    assert z["passes"] >= 3 and z["fragile_share_of_passes"] > 0.6, z
