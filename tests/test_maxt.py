"""The max-T step-down over a family of mean tests (sinkbench.stats.maxt; issue 30, item 7)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sinkbench.errors import SinkbenchError
from sinkbench.stats.inference import MAX_NAN_SHARE, holm, mean_greater, skew_margin
from sinkbench.stats.maxt import maxt_stepdown

ALPHA = 0.05


def _raw(x, seed=0):
    return [mean_greater(x[:, j], seed=seed + j) for j in range(x.shape[1])]


def test_one_column_is_the_mean_test():
    """A family of one: the step-down is mean_greater (its bootstrap-t and a simulated Student t,
    times the margin), so the adjusted p is the raw p up to the Gaussian draws' noise."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16) + 0.6
    raw = mean_greater(x, seed=5)
    p = maxt_stepdown(x, seed=5)[0]
    assert raw <= p <= raw * 1.25 + 2e-3


def test_identical_columns_cost_nothing_holm_pays_m():
    """Three copies of one contrast are one test: max-T gives the single test's p, Holm 3 x it."""
    rng = np.random.default_rng(1)
    col = rng.standard_normal(16) + 0.7
    x = np.column_stack([col, col, col])
    raw = _raw(x, seed=3)
    p = maxt_stepdown(x, seed=3, raw=raw)
    h = holm(raw)
    assert np.all(p <= max(raw) * 1.25 + 2e-3)
    assert np.all(h >= 2.5 * min(raw))
    assert np.all(p < h)


def test_adjusted_at_least_raw_and_monotone():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 8)) + np.linspace(0, 1.2, 8)
    raw = _raw(x, seed=9)
    p = maxt_stepdown(x, seed=9, raw=raw)
    assert np.all(p >= np.asarray(raw) - 1e-12) and np.all(p <= 1)
    t = x.mean(0) / x.std(0, ddof=1)
    order = np.argsort(-t)
    assert np.all(np.diff(p[order]) >= -1e-12)  # larger t, never a larger adjusted p


def test_seeded():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 5)) + 0.5
    assert np.array_equal(maxt_stepdown(x, seed=4), maxt_stepdown(x, seed=4))


def test_nan_zero_and_constant_columns():
    """Per column as mean_greater: too many NaN windows or fewer than 2 informative ones fail
    (p = 1); zeros are left out; a constant positive column gets at least the sign test's
    2^-n times the margin; a constant column at or below 0, or an all-zero one, never passes."""
    rng = np.random.default_rng(4)
    n = 16
    x = rng.standard_normal((n, 7)) + 1.5
    x[: int(MAX_NAN_SHARE * n) + 1, 0] = np.nan  # too many NaN
    x[:, 1] = 0.0
    x[0, 1] = 2.0  # one informative window
    x[:, 2] = 1.0  # constant positive
    x[:, 3] = -1.0  # constant negative
    x[:, 4] = 0.0  # all zeros
    x[:3, 5] = np.nan  # a few NaN: tested on the rest
    x[3:9, 6] = 0.0  # zeros: tested on the rest
    p = maxt_stepdown(x, seed=1)
    assert p[0] == 1 and p[1] == 1 and p[3] == 1 and p[4] == 1
    assert p[2] >= 0.5 ** n * skew_margin(n)
    assert p[2] < ALPHA and p[5] < ALPHA and p[6] < ALPHA
    assert np.all(np.isfinite(p))


def test_rejects_the_true_tests_only():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((32, 6))
    x[:, :2] += 1.5
    p = maxt_stepdown(x, seed=2)
    assert np.all(p[:2] <= ALPHA)
    assert np.all(p[2:] > ALPHA)


def _fwer(procedure, trials: int, m: int = 6, rho: float = 0.5, n: int = 16, seed: int = 11) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):  # the resampling seed fixed, as a case's is: the rate is over data
        x = math.sqrt(rho) * rng.standard_normal((n, 1)) + math.sqrt(1 - rho) * rng.standard_normal((n, m))
        raw = _raw(x, seed=0)
        hits += bool((procedure(x, raw, 0) <= ALPHA).any())
    return hits / trials


def test_complete_null_family_wise_rate_and_the_check_can_fail():
    """Every test of a correlated family at its null: max-T passes something at most
    alpha + 3 SE of the time. The same check fails an uncorrected family (raw p's), so it
    can fail."""
    trials = 300
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / trials)
    assert _fwer(lambda x, raw, s: maxt_stepdown(x, seed=s, raw=raw), trials) <= bound
    assert _fwer(lambda x, raw, s: np.asarray(raw), trials) > bound


def test_bad_input_is_one_line():
    with pytest.raises(SinkbenchError, match="2-d matrix"):
        maxt_stepdown(np.zeros((4, 3, 2)))
    with pytest.raises(SinkbenchError, match="numbers"):
        maxt_stepdown([["a", "b"], ["c", "d"]])
    with pytest.raises(SinkbenchError, match="one per column"):
        maxt_stepdown(np.ones((8, 3)), raw=[0.1, 0.2])
    with pytest.raises(SinkbenchError, match="2-d matrix"):
        maxt_stepdown(np.ones((8, 0)))
