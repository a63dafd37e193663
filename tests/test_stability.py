"""Verdict stability: the share of window resamples on which the whole verdict procedure
(tests, minimums, Holm) returns the same verdict."""
import numpy as np
from sinkbench.hypotheses.h1_dark_tail import H1Inputs, h1_verdicts
from sinkbench.hypotheses.h5_sink_writer import H5Inputs, h5_verdicts
from sinkbench.measure.designate import WriteResult
from sinkbench.stats.stability import FRAGILE_BELOW, attach, take_windows, verdict_stability


def h5_inputs(rng, n, share_mean):
    return H5Inputs(share=share_mean + 0.1 * rng.standard_normal(n), base_nll=np.full(n, 3.0),
                    base_mass=np.full(n, 0.5), removed_nll=3.6 + 0.05 * rng.standard_normal(n),
                    removed_mass=np.full(n, 0.2) + 0.01 * rng.standard_normal(n),
                    control_nll=np.full(n, 3.05) + 0.05 * rng.standard_normal(n),
                    control_mass=np.full(n, 0.48) + 0.01 * rng.standard_normal(n))


def verdicts(x):
    return h5_verdicts(x, alpha=0.05, min_share=0.5, min_sink_drop=0.1, min_nll_rise=0.05, n_boot=100)


def test_take_windows_resamples_every_window_axis_jointly():
    rng = np.random.default_rng(0)
    base = np.arange(5.0)
    x = H1Inputs(base=base, dark_all=base + 10, random=base, middle=base, base_rest=base, dark_all_rest=base,
                 dark_sink=base, dark_sink_rest=base, sink_mass_base=base, sink_mass_dark_sink=base,
                 random_each=np.stack([base, base + 100]))
    idx = np.array([4, 4, 0, 1, 2])
    y = take_windows({1: x}, idx)[1]
    assert np.array_equal(y.base, base[idx]) and np.array_equal(y.dark_all - y.base, np.full(5, 10.0))
    assert np.array_equal(y.random_each, np.stack([base, base + 100])[:, idx])  # windows on axis 1
    w = take_windows({("L", "t"): {"base": WriteResult(base, base, base)}}, idx)
    assert np.array_equal(w["L", "t"]["base"].att_t, base[idx])
    assert take_windows((x, {}), idx)[0].base.tolist() == base[idx].tolist()


def test_a_clear_verdict_is_stable_and_a_borderline_one_is_fragile():
    rng = np.random.default_rng(1)
    clear = h5_inputs(rng, 16, 0.9)
    assert verdict_stability(verdicts, clear, 16, resamples=60)["1"] == 1.0
    # a share whose mean sits just where the test starts to reject: resamples disagree often
    shares = []
    for seed in range(12):
        x = h5_inputs(np.random.default_rng(seed), 16, 0.57)
        shares.append(verdict_stability(verdicts, x, 16, resamples=60)["1"])
    assert min(shares) < FRAGILE_BELOW


def test_attach_marks_fragile_cases():
    x = h5_inputs(np.random.default_rng(3), 16, 0.9)
    out = attach(verdicts(x), verdicts, x, 16, "H5")
    m = out["1"][1]
    assert m["verdict_stability"] == 1.0 and m["fragile"] is False and m["stability_resamples"] > 0
