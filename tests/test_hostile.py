"""Hostile nulls (sinkbench.run.hostile): every test of H1, H2, H4, H5 and H7 at its boundary under
Gaussian, t2, lognormal (tail on either side), AR(1), zero-heavy and NaN-bearing windows,
with the rest of its Holm family clear, and under the shapes beyond the calibrated range
(issue 30: lognormal sigma 1.0, outlier windows, a lognormal denominator, two-point windows)
with the heavy-tail guard's marks; H3's and H7's nulls of issue 30. The full grid at 1000
trials is the nightly job (`-m slow`; docs/calibration.md has its table); the fast set runs
every null on one test of each verdict function and every construction's power."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sinkbench.run import hostile

ALPHA = hostile.ALPHA
# dependence breaks every test that assumes independent windows: measured, documented and
# warned about (lag-1 autocorrelation in every record), not within the bound
DEPENDENT = "AR(1) rho 0.5"


def bound(trials: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / trials)


# Cells measured over the bound at seed 0 and 1000 trials, each documented in
# docs/calibration.md with its reruns (H4-B1 NLL under the null-side lognormal: 0.079 at seed
# 0, 0.064 and 0.055 at 4000 trials with seeds 1 and 2). They are held to a ceiling, so the
# test still fails if they get worse; no other cell gets one.
KNOWN_OVER = {("H4-B1 NLL", "lognormal, tail on the null side"): 0.09}


def check(criterion: str, null: str, trials: int) -> None:
    rate = hostile.false_pass_rate(criterion, null, trials=trials)
    if null == DEPENDENT:
        return  # measured in docs/calibration.md; see test_dependence_inflates_and_is_reported
    limit = ceiling(criterion, null, trials)
    assert rate <= limit, f"{criterion} under {null}: false-pass rate {rate:.3f} > {limit:.4f}"


# Beyond the calibrated range (hostile.BEYOND) no test of a mean holds alpha, and the guard cannot
# mark a sample that missed the tail (docs/calibration.md, "Heavy tails"): each null is held to
# the ceiling its worst cell was measured under at seed 0 and 1000 trials (plus 3 SE), so the
# grid still fails if a verdict gets worse there.
BEYOND_CEILING = {"lognormal sigma 1.0, tail on the null side": 0.15, "5% of windows at -10": 0.32,
                  "10% of windows at -5": 0.17, "ratio, lognormal denominator": 0.15, "two-point, 8 windows": 0.22}


def ceiling(criterion: str, null: str, trials: int) -> float:
    if null in hostile.BEYOND:
        return BEYOND_CEILING.get(null, bound(trials)) if trials >= 1000 else 1.0
    return KNOWN_OVER.get((criterion, null), bound(trials)) if trials >= 1000 else bound(trials)


FAST = ["H1b sink-mass drop", "H2b", "H4-A3 recovered share", "H4-B2 dark ratio", "H5-2 mass vs control", "H7b first token recovers"]


@pytest.mark.parametrize("null", [n for n in hostile.WITHIN if n != DEPENDENT])
def test_every_hostile_null_on_one_test_of_each_verdict_function(null):
    for criterion in FAST:
        check(criterion, null, trials=150)


@pytest.mark.parametrize("criterion", list(hostile.CONTRASTS))
def test_every_construction_has_power(criterion):
    """The constructions can pass: a contrast 3 noise-sds the claimed way passes nearly always.
    Except one: with the cut read on selection windows of their own, the layer's bound sits at
    the cut there whatever the test windows show, so the layer is tested on about half of the
    draws, and the rung passes on nearly all of those."""
    at_the_cut = criterion == "H7e rung at the cut, read on selection windows"
    assert hostile.clear_pass_rate(criterion, trials=15) >= (0.4 if at_the_cut else 0.9)


def test_dependence_inflates_and_is_reported():
    """AR(1) windows (rho 0.5) inflate the false-pass rate well above alpha: independence is an
    assumption, which is why records carry the lag-1 autocorrelation of their contrast."""
    assert hostile.false_pass_rate("H2a", DEPENDENT, trials=300) > bound(300)


@pytest.mark.slow
@pytest.mark.parametrize("null", list(hostile.NULLS))
@pytest.mark.parametrize("criterion", list(hostile.CONTRASTS))
def test_hostile_null_full_grid(criterion, null):
    check(criterion, null, trials=1000)


def test_the_nulls_beyond_the_calibrated_range_sit_at_the_boundary_with_the_tail_on_the_null_side():
    """Each shape of issue 30's finding 5 has mean 0 (the contrast exactly at its boundary) and
    its long tail pointing to the null side (negative skewness): a false pass, not a true one."""
    from scipy.stats import skew

    rng = np.random.default_rng(5)
    for name, noise in hostile.BEYOND.items():
        x = noise(rng, 400_000)
        assert abs(x.mean()) < 0.02 * x.std(), (name, x.mean())
        assert skew(x) < -1, (name, skew(x))


def test_the_guard_marks_the_heavy_tails_and_not_gaussian_windows():
    """The cell's guard column reads stats.tail_diagnostics on each trial's contrast: it marks
    outlier windows often and Gaussian windows rarely, and it does not change the rate."""
    out = hostile.cell("H2b", "5% of windows at -10", trials=150)
    gauss = hostile.cell("H2b", "gaussian", trials=150)
    assert out["flagged"] > 0.2 and gauss["flagged"] < 0.05, (out, gauss)
    assert out["unflagged"] <= out["rate"]
    assert hostile.false_pass_rate("H2b", "gaussian", trials=150) == gauss["rate"]
    assert hostile.cell("H2b", "two-point, 8 windows", trials=5)["n_windows"] == 8


@pytest.mark.parametrize("case", ["H3-2 random effects tau 0.15, gaussian", "H3-3 early drift 0.04 (positions 1-4)",
                                  "H7b negative gap (-0.05), nothing recovered", "H7d negative gap (-0.05), nothing recovered"])
def test_issue30_nulls_of_h3_and_h7(case):
    """H3 tested across windows and H7's sign gates hold issue 30's nulls (the full set at 1000
    trials: `python -m sinkbench.run.hostile --issue30`, docs/calibration.md)."""
    (row,) = hostile.issue30_table(trials=150, only=case)
    assert row["rate"] <= bound(150), row


@pytest.mark.slow
@pytest.mark.parametrize("case", list(hostile.issue30_cases()))
def test_issue30_nulls_full(case):
    (row,) = hostile.issue30_table(trials=1000, only=case)
    assert row["rate"] <= bound(1000), row
