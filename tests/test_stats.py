import numpy as np

from sinkbench.stats import bootstrap_ci, holm, wilcoxon_greater


def test_wilcoxon_detects_a_shift_and_not_a_null():
    rng = np.random.default_rng(0)
    assert wilcoxon_greater(rng.normal(0.5, 1, 40)) < 0.01
    assert wilcoxon_greater(rng.normal(-0.5, 1, 40)) > 0.5  # one-sided: wrong direction never passes
    nulls = [wilcoxon_greater(rng.normal(0, 1, 16)) for _ in range(400)]
    assert 0.02 < np.mean(np.array(nulls) < 0.05) < 0.09  # size close to alpha under H0
    assert wilcoxon_greater(np.zeros(10)) == 1.0


def test_holm_matches_hand_computation():
    # sorted p: 0.01*4=0.04, 0.02*3=0.06, 0.03*2=0.06 (monotone), 0.04*1=0.04 -> 0.06
    assert np.allclose(holm([0.03, 0.01, 0.04, 0.02]), [0.06, 0.04, 0.06, 0.06])
    assert np.allclose(holm([0.5, 0.9]), [1.0, 1.0])


def test_bootstrap_ci_covers_the_mean_and_is_reproducible():
    x = np.random.default_rng(1).normal(2.0, 1.0, 64)
    lo, hi = bootstrap_ci(x, 2000, seed=0)
    assert lo < x.mean() < hi and hi - lo < 1.0
    assert bootstrap_ci(x, 2000, seed=0) == (lo, hi)
