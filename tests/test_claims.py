"""The verdict functions on synthetic data with known answers, including null cases."""
import numpy as np

from harness.claims import H1Inputs, H2Inputs, compression_frontier, h1_verdicts, h2_verdicts

KW = dict(alpha=0.05, min_delta=0.5, min_sink_drop=0.2, n_boot=200)


def h1_case(rng, n=16, dark=2.0, rand=0.1, sink_nll=0.3, mass_after=0.3):
    base = rng.normal(3.0, 0.3, n)
    return H1Inputs(
        base=base, dark_all=base + dark + rng.normal(0, 0.1, n), random=base + rand + rng.normal(0, 0.1, n),
        middle=base + rand + rng.normal(0, 0.1, n), dark_sink=base + sink_nll + rng.normal(0, 0.05, n),
        sink_mass_base=np.full(n, 0.8), sink_mass_dark_sink=np.full(n, mass_after),
    )


def test_h1_passes_when_the_dark_tail_matters():
    rng = np.random.default_rng(0)
    out = h1_verdicts({3: h1_case(rng), 6: h1_case(rng)}, **KW)
    assert all(passed for passed, _ in out.values())


def test_h1_null_random_vs_random_does_not_pass():
    """A random subspace compared with another random subspace of the same size."""
    rng = np.random.default_rng(1)
    base = rng.normal(3, 0.3, 16)
    r1, r2 = base + rng.normal(0.1, 0.1, 16), base + rng.normal(0.1, 0.1, 16)
    x = H1Inputs(base, r1, r2, r2, base + rng.normal(0, 0.05, 16), np.full(16, 0.8), np.full(16, 0.8))
    passed, m = h1_verdicts({3: x}, **KW)[3]
    assert not passed and not m["claim_a"] and not m["claim_b"]


def test_h1_fails_on_each_criterion_alone():
    rng = np.random.default_rng(2)
    small = h1_verdicts({1: h1_case(rng, dark=0.3)}, **KW)[1][1]
    assert not small["claim_a"] and small["claim_b"]  # effect below delta
    nodrop = h1_verdicts({1: h1_case(rng, mass_after=0.7)}, **KW)[1][1]
    assert nodrop["claim_a"] and not nodrop["claim_b"]  # sink mass drops by 12.5% < 20%
    few = h1_verdicts({1: h1_case(rng, n=4)}, **KW)[1][1]
    assert not few["claim_a"]  # 4 windows cannot reach significance after Holm


def test_h2_passes_when_omega_beats_head_and_not_on_a_null():
    rng = np.random.default_rng(3)
    base = rng.normal(3, 0.3, 16)
    good = H2Inputs(base, base + 0.2, base + 1.5 + rng.normal(0, 0.1, 16), 30, 30)
    null = H2Inputs(base, base + 1 + rng.normal(0, 0.1, 16), base + 1 + rng.normal(0, 0.1, 16), 30, 30)
    out = h2_verdicts({(1, 5): good, (1, 10): null}, alpha=0.05, n_boot=200)
    assert out[1, 5][0] and not out[1, 10][0]


def test_compression_frontier():
    deltas = {1: 2.0, 2: 0.2, 3: 0.1, 4: 0.0}
    shares = {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6}
    assert compression_frontier(deltas, shares, 0.25)["share_deleted"] == 0.8
    assert compression_frontier({1: 1.0}, {1: 0.9}, 0.25)["share_deleted"] == 0.0
