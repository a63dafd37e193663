"""The verdict functions on synthetic per-window data with known answers, including
null cases that fail through their tests (not only through a threshold)."""
import numpy as np
import pytest
from sinkbench.hypotheses.h1_dark_tail import H1Inputs, h1_verdicts
from sinkbench.hypotheses.h2_middle import H2bInputs, H2Inputs, compression_frontier, frontier_k, h2_verdicts
from sinkbench.hypotheses.h5_sink_writer import H5Inputs, h5_verdicts
from sinkbench.hypotheses.h4a_designated_write import h4a_raw, h4a_verdicts
from sinkbench.measure.designate import WriteResult
from sinkbench.stats.inference import min_windows, ratio_ci

KW = dict(alpha=0.05, min_delta=0.5, min_sink_drop=0.2, n_boot=200)


def h1_case(rng, n=16, dark=2.0, rand=0.1, sink_nll=0.3, mass_after=0.3, subspace_sd=0.05):
    base = rng.normal(3.0, 0.3, n)
    dark_sink = base + sink_nll + rng.normal(0, 0.05, n)
    dark_all = base + dark + rng.normal(0, 0.1, n)
    each = base + rand + rng.normal(0, subspace_sd, (3, 1)) + rng.normal(0, 0.1, (3, n))  # three random subspaces
    return H1Inputs(
        base=base, dark_all=dark_all, random=each.mean(0),
        middle=base + rand + rng.normal(0, 0.1, n), base_rest=base, dark_all_rest=dark_all,
        dark_sink=dark_sink, dark_sink_rest=dark_sink,
        sink_mass_base=np.full(n, 0.8) + rng.normal(0, 0.01, n), sink_mass_dark_sink=np.full(n, mass_after) + rng.normal(0, 0.01, n),
        random_each=each,
    )


def test_h1_passes_when_the_dark_tail_matters():
    rng = np.random.default_rng(0)
    out = h1_verdicts({3: h1_case(rng), 6: h1_case(rng)}, **KW)
    assert all(passed for passed, _ in out.values())
    m = out[3][1]
    assert m["sink_mass_drop_ci"][0] < m["sink_mass_drop"] < m["sink_mass_drop_ci"][1]
    assert 0.1 < m["sink_share_of_damage"] < 0.2  # 0.3 of 2.0 nats


def test_h1_null_fails_through_its_tests_not_its_threshold():
    """The dark tail costs as much as a random subspace: the effect clears min_delta, so only
    the paired tests (after Holm) can reject it."""
    rng = np.random.default_rng(1)
    base = rng.normal(3, 0.3, 16)
    r1, r2 = base + 2 + rng.normal(0, 0.1, 16), base + 2 + rng.normal(0, 0.1, 16)
    x = h1_case(rng)
    x.base, x.dark_all, x.random, x.middle, x.random_each = base, r1, r2, r2, np.stack([r2, r2 + 0.01, r2 - 0.01])
    passed, m = h1_verdicts({3: x}, **KW)[3]
    assert m["dark_all_delta"] >= KW["min_delta"]
    assert m["p_vs_random"] >= 0.05 and not m["claim_a"] and not passed


def test_h1_band_k_must_stand_out_from_random_subspaces_not_only_the_drawn_ones():
    """Random subspaces differ in cost (0.5, 1.0, 1.5 nats); band K costs 1.6: above their
    mean, significantly over windows, but well inside their spread."""
    rng = np.random.default_rng(9)
    x = h1_case(rng, dark=1.6)
    x.random_each = x.base + np.array([[0.5], [1.0], [1.5]]) + rng.normal(0, 0.05, (3, 16))
    x.random = x.random_each.mean(0)
    m = h1_verdicts({1: x}, **KW)[1][1]
    assert m["p_vs_random"] < 0.05 and m["p_vs_random_subspaces"] >= 0.05 and not m["claim_a"]
    x = h1_case(rng, dark=3.0)  # far beyond the spread of the same three
    x.random_each = x.base + np.array([[0.5], [1.0], [1.5]]) + rng.normal(0, 0.05, (3, 16))
    x.random = x.random_each.mean(0)
    assert h1_verdicts({1: x}, **KW)[1][1]["claim_a"]


def test_h1_minimums_are_tested_not_read_off_the_point_estimate():
    rng = np.random.default_rng(10)
    near = h1_verdicts({1: h1_case(rng, dark=0.52)}, **KW)[1][1]  # mean just above min_delta, not significantly
    assert near["dark_all_delta"] >= 0.5 and near["p_above_min_delta"] >= 0.05 and not near["claim_a"]
    drop = h1_verdicts({1: h1_case(rng, mass_after=0.635)}, **KW)[1][1]  # drop ~ 0.206, just above 0.2
    assert drop["sink_mass_drop"] >= 0.2 and not drop["claim_b"]


def test_h1_holm_counts_the_whole_grid():
    """Every difference far above its minimum: the raw p-values are near the test's floor,
    stats.smallest_p(n). Over 4 windows one layer's 6 tests cannot pass (6 x smallest_p(4) >
    alpha); over 5 they can; and the same 5 windows pass at fewer layers than at twelve (72
    tests), where Holm multiplies by more."""
    from sinkbench.stats.inference import smallest_p

    four = h1_verdicts({1: h1_case(np.random.default_rng(5), n=4)}, **KW)[1][1]
    assert not four["claim_a"] and four["p_vs_random_raw"] >= smallest_p(4) and 6 * smallest_p(4) > 0.05
    one = h1_verdicts({1: h1_case(np.random.default_rng(5), n=5)}, **KW)[1][1]
    assert one["claim_a"] and smallest_p(5) <= one["p_vs_random_raw"] < 0.05 / 6
    twelve = h1_verdicts({l: h1_case(np.random.default_rng(5), n=5) for l in range(12)}, **KW)
    assert max(m["p_vs_random"] for _, m in twelve.values()) > 5 * one["p_vs_random"]
    assert min_windows(0.05, 6) == 5 and min_windows(0.05, 72) == 6


def test_h1_fails_on_each_criterion_alone():
    rng = np.random.default_rng(2)
    small = h1_verdicts({1: h1_case(rng, dark=0.3)}, **KW)[1][1]
    assert not small["claim_a"] and small["claim_b"]  # effect below delta
    nodrop = h1_verdicts({1: h1_case(rng, mass_after=0.7)}, **KW)[1][1]
    assert nodrop["claim_a"] and not nodrop["claim_b"]  # sink mass drops by 12.5% < 20%
    nonll = h1_verdicts({1: h1_case(rng, sink_nll=0.0)}, **KW)[1][1]
    assert not nonll["claim_b"]  # the sink edit does not hurt the other predictions


def test_h2a_passes_when_omega_beats_head_and_not_on_a_null():
    rng = np.random.default_rng(3)
    base = rng.normal(3, 0.3, 16)
    good = H2Inputs(base, base + 0.2, base + 1.5 + rng.normal(0, 0.1, 16), 30, 30)
    null = H2Inputs(base, base + 1 + rng.normal(0, 0.1, 16), base + 1 + rng.normal(0, 0.1, 16), 30, 30)
    out = h2_verdicts({(1, 5): good, (1, 10): null}, alpha=0.05, n_boot=200)
    assert out[1, 5][0] and not out[1, 10][0]


def test_h2b_absolute_needs_the_upper_bound_within_tolerance():
    rng = np.random.default_rng(4)
    base = rng.normal(3, 0.3, 16)
    low = H2bInputs(base, base + 0.05 + rng.normal(0, 0.02, 16), 14, 0.25)
    near = H2bInputs(base, base + np.tile([0.0, 0.44], 8), 14, 0.25)  # mean 0.22 below 0.25, its interval not
    high = H2bInputs(base, base + 0.6 + rng.normal(0, 0.05, 16), 14, 0.25)
    none = H2bInputs(base, base, None, 0.0)
    out = h2_verdicts({}, {1: low, 2: near, 3: high, 4: none}, alpha=0.05, n_boot=500, tolerance=0.25)
    assert out[1, "b"][0]
    assert not out[2, "b"][0] and out[2, "b"][1]["omega_delta"] < 0.25 < out[2, "b"][1]["omega_delta_ci"][1]
    assert not out[3, "b"][0] and not out[4, "b"][0]


def test_frontier_choices():
    deltas = {1: 2.0, 2: 0.2, 3: 0.1, 4: 0.0}
    shares = {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6}
    assert compression_frontier(deltas, shares, 0.25)["share_deleted"] == 0.8
    assert compression_frontier({1: 1.0}, {1: 0.9}, 0.25)["share_deleted"] == 0.0
    assert frontier_k(shares, 0.7) == 3 and frontier_k(shares, 0.95) is None


def write(att_t, att_0, nll):
    return WriteResult(np.asarray(att_t, float), np.asarray(att_0, float), np.asarray(nll, float))


def test_h4a3_tests_that_breaking_the_sink_did_damage():
    """No damage (broken = base up to noise) and a 'rescue' that is noise too: the share is
    meaningless, and the damage test itself fails, whatever the share's point estimate."""
    rng = np.random.default_rng(16)
    n = 16
    base = write(rng.uniform(0.01, 0.02, n), rng.uniform(0.6, 0.7, n), rng.normal(3, 0.1, n))
    edit = write(base.att_t * 5, base.att_0 * 0.8, base.nll_after)
    broken = write(base.att_t, base.att_0 * 0.5, base.nll_after + rng.normal(0, 0.05, n))
    transplant = write(base.att_t * 6, base.att_0 * 0.5, base.nll_after + rng.normal(0, 0.05, n))
    raws = {(1, "middle"): h4a_raw({"base": base, "add": edit, "transplant": transplant, "control": base,
                                    "broken": broken}, 3.0, 200, 0.5)}
    ok, m = h4a_verdicts(raws, alpha=0.05)[1, "middle", "A3", "transplant"]
    assert not ok and m["p_values"][0] >= 0.05


def test_h4a3_needs_a_minimum_recovered_share():
    rng = np.random.default_rng(6)
    n = 16
    base = write(rng.uniform(0.01, 0.02, n), rng.uniform(0.6, 0.7, n), rng.normal(3, 0.1, n))
    edit = write(base.att_t * 5, base.att_0 * 0.8, base.nll_after)

    def run(rescued_share):
        broken = write(base.att_t, base.att_0 * 0.5, base.nll_after + 1.0 + rng.normal(0, 0.05, n))
        transplant = write(base.att_t * 6, base.att_0 * 0.5, base.nll_after + (1 - rescued_share) + rng.normal(0, 0.05, n))
        raws = {(1, "middle"): h4a_raw({"base": base, "add": edit, "transplant": transplant, "control": base,
                                        "broken": broken}, 3.0, 200, 0.5)}
        return h4a_verdicts(raws, alpha=0.05)[1, "middle", "A3", "transplant"]

    ok, m = run(0.8)
    assert ok and 0.7 < m["recovered_share"] < 0.9
    weak, m = run(0.2)  # recovers a fifth: far from the minimum of a half
    assert not weak and m["p_values"][1] >= 0.05 and m["recovered_share"] < 0.5


def h5_case(rng, n=16, share=0.8, mass_drop=0.3, nll_rise=0.5, ctrl_mass_drop=0.0, ctrl_nll=0.0):
    base_nll, base_mass = rng.normal(3, 0.2, n), rng.uniform(0.5, 0.6, n)
    return H5Inputs(share=share + rng.normal(0, 0.02, n), base_nll=base_nll, base_mass=base_mass,
                    removed_nll=base_nll + nll_rise + rng.normal(0, 0.02, n),
                    removed_mass=base_mass * (1 - mass_drop) + rng.normal(0, 0.005, n),
                    control_nll=base_nll + ctrl_nll + rng.normal(0, 0.02, n),
                    control_mass=base_mass * (1 - ctrl_mass_drop) + rng.normal(0, 0.005, n))


H5KW = dict(alpha=0.05, min_share=0.5, min_sink_drop=0.1, min_nll_rise=0.05, n_boot=200)


def test_h5_verdicts_pass_and_fail():
    rng = np.random.default_rng(7)
    out = h5_verdicts(h5_case(rng), **H5KW)
    assert out["1"][0] and out["2"][0]
    assert out["2"][1]["sink_drop_beyond_control"] == pytest.approx(0.3, abs=0.02)
    low = h5_verdicts(h5_case(rng, share=0.3), **H5KW)
    assert not low["1"][0] and low["2"][0]
    # the controls do as much: the tests against the base run still pass, the claim does not
    same = h5_verdicts(h5_case(rng, ctrl_mass_drop=0.3, ctrl_nll=0.5), **H5KW)
    assert not same["2"][0] and same["2"][1]["p_values"]["mass_vs_base"] < 0.05
    # significant but below the minimum effect beyond the controls
    small = h5_verdicts(h5_case(rng, mass_drop=0.35, ctrl_mass_drop=0.3, nll_rise=0.52, ctrl_nll=0.5), **H5KW)
    assert not small["2"][0]


def test_ratio_ci_covers_the_ratio_of_means_and_is_nan_when_empty():
    rng = np.random.default_rng(8)
    num, den = rng.normal(1, 0.1, 40), rng.normal(2, 0.1, 40)
    lo, hi = ratio_ci(num, den, 2000)
    assert lo < num.mean() / den.mean() < hi and hi - lo < 0.1
    assert all(np.isnan(ratio_ci([], [], 100)))
