"""H1(a)'s random control fair to massive activations (issue 30 item 5): random subspaces of band
K's dimension orthogonal to the massive coordinates that the selection windows flag. The verdict
reads it; the plain control is recorded beside it (docs/methods.md §5, H1)."""
import numpy as np
import pytest
import torch

from sinkbench.hypotheses.h1_dark_tail import H1_PROFILE, H1Inputs, _h1_arrays, h1_grid, h1_verdicts
from sinkbench.measure.massive import massive_coordinates as massive_in
from sinkbench.measure import experiments
from sinkbench.measure.config import Settings
from sinkbench.measure.spectrum import spectrum_for
from sinkbench.measure.sweep import FilterSweep
from sinkbench.errors import SinkbenchError
from sinkbench.stats.nulls import DEFAULTS, N_BOOT_CHEAP

from .conftest import as_subject, tiny_llama
from .test_spectrum import random_spectrum

KW = dict(alpha=0.05, min_delta=0.5, min_sink_drop=0.2, n_boot=200)


def test_fair_subspace_avoids_the_excluded_coordinates_and_is_plain_without_them():
    sp = random_spectrum(d=40, k=5)
    dim = sp.band_dim([sp.n_bands])
    plain, fair = sp.random_removal(dim, 7), sp.random_removal(dim, 7, exclude=[3, 11])
    assert torch.equal(sp.random_removal(dim, 7, exclude=[]), plain)  # no exclusion: the plain subspace of the seed
    eye = torch.eye(40)
    # a projector removing dim directions, none of them touching coordinates 3 and 11
    assert torch.allclose(fair @ fair, fair, atol=1e-5) and round(float(torch.trace(eye - fair))) == dim
    for c in (3, 11):
        assert torch.allclose(fair[c], eye[c], atol=1e-6) and torch.allclose(fair[:, c], eye[:, c], atol=1e-6)
    assert not torch.allclose(plain[3], eye[3], atol=1e-3)  # the plain one mixes coordinate 3 into others
    with pytest.raises(SinkbenchError, match="--n-bands"):
        sp.random_removal(38, 7, exclude=[1, 2, 3])


def test_massive_in_reads_the_ratio_to_the_window_median_on_half_the_windows():
    h = torch.randn(4, 10, 32) * 0.1
    h[:, 0, 7] = 50.0  # every window: 500x the median-ish |h|
    h[:2, 3, 9] = 50.0  # half of them
    h[0, 2, 20] = 50.0  # one window only: not a model's feature
    assert massive_in(h, 100.0) == [7, 9]
    assert massive_in(h, 1e6) == []


def massive_model(value: float):
    """A tiny Llama whose coordinate 5 is massive at every position (value x ~0.02 typical), with
    a sharper unembedding so that an edit moves the NLL."""
    model = tiny_llama(seed=3)
    with torch.no_grad():
        model.lm_head.weight.mul_(30.0)
        if value:
            model.model.embed_tokens.weight[:, 5] = value
    return as_subject(model, f"tiny-massive-{value:g}")


@pytest.fixture
def h1_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    test = torch.randint(3, 259, (16, 24), generator=g)
    select = torch.randint(3, 259, (8, 24), generator=g)
    test[:, 0] = select[:, 0] = 1
    monkeypatch.setattr(experiments, "selection_windows", lambda subj, s: select)
    return test, Settings(n_bands=8, n_seqs=16, bootstrap=200)


def test_fair_control_differs_from_the_plain_one_on_a_model_with_a_massive_coordinate(h1_setup):
    test, s = h1_setup
    subject = massive_model(300.0)
    sweep = FilterSweep(subject, test, spectrum_for(subject, 8), 16, 3, layers=[1])
    m = h1_grid(sweep, [1], s)[1][1]
    plain = m["plain_random"]
    assert m["massive_coordinates"] == [5] and m["random_control"] == "orthogonal to massive coordinates"
    # the plain subspaces move ~sqrt(dim K / d) of the massive value into other directions: a
    # large cost the fair ones (which leave coordinate 5 alone) do not have
    assert plain["random_delta"] > 1.0 and abs(m["random_delta"]) < 0.2
    assert plain["random_delta_ci"][0] > m["random_delta_ci"][1]
    assert m["p_vs_random"] < 0.05 <= plain["p_vs_random"]
    assert len(m["random_delta_per_subspace"]) == len(plain["random_delta_per_subspace"]) == 3
    # the sweep's passes (16 windows each): the base, H1's 6 plain filters and 3 fair ones (the
    # selection-window pass is not the sweep's)
    assert sweep.passes == 1 + 6 + 3 and {n for (*_, n) in sweep._memo if "x" in str(n)} == {
        f"random{q}x5" for q in sweep.seeds}


def test_fair_subspace_as_dark_tail_fails_against_the_other_fair_subspaces(h1_setup):
    """The null on the real forward passes: band K replaced by one fair random subspace, the
    control by three others; the verdict must not pass, whatever the plain control says."""
    test, s = h1_setup
    subject = massive_model(300.0)
    sweep = FilterSweep(subject, test, spectrum_for(subject, 8), 16, 4, layers=[1])
    names = sweep.fair_random_names([5])
    base, fake = sweep.base(), sweep.get(1, names[0])
    fair = np.stack([sweep.get(1, n).nll for n in names[1:]])
    plain = np.stack([sweep.get(1, f"random{q}").nll for q in sweep.seeds[1:]])
    x = H1Inputs(base.nll, fake.nll, plain.mean(0), base.nll, base.nll_rest, fake.nll_rest, fake.nll, fake.nll_rest + 1,
                 base.post_filter_sink_mass(1), 0.1 * base.post_filter_sink_mass(1), random_each=plain,
                 random_fair=fair.mean(0), random_fair_each=fair)
    m = h1_verdicts({1: x}, alpha=0.05, min_delta=0.0, min_sink_drop=0.0, n_boot=100)[1][1]
    assert not m["claim_a"] and min(m["p_vs_random"], m["p_vs_random_subspaces"]) >= 0.05


def null_rates(trials: int, effect: float, plain_extra: float, seed: int) -> tuple[float, float]:
    """Pass rates of claim (a) reading the fair control, and of the plain one, when band K costs
    `effect` more than a fair subspace (the H1 simulation profile, its random subspaces as the
    fair ones) and a plain subspace costs plain_extra more than a fair one."""
    rng = np.random.default_rng(seed)
    arr = _h1_arrays(rng, trials, 16, 1, effect, dict(H1_PROFILE))
    fair_hits = plain_hits = 0
    for t in range(trials):
        a = {k: v[t, 0] for k, v in arr.items()}
        fair_each = a.pop("random_each")
        plain_each = fair_each + plain_extra * (1 + 0.1 * rng.standard_normal((fair_each.shape[0], 1)))
        a.pop("random")
        x = H1Inputs(**a, random=plain_each.mean(0), random_each=plain_each, random_fair=fair_each.mean(0),
                     random_fair_each=fair_each)
        m = h1_verdicts({0: x}, alpha=DEFAULTS["alpha"], min_delta=DEFAULTS["h1_min_delta"],
                        min_sink_drop=DEFAULTS["h1_min_sink_drop"], n_boot=N_BOOT_CHEAP)[0][1]
        fair_hits += m["claim_a"]
        plain_hits += m["plain_random"]["claim_a"]
    return fair_hits / trials, plain_hits / trials


def test_fair_verdict_fails_on_its_null_and_passes_a_clear_effect():
    """Band K costs what a fair random subspace costs (the plain ones cost far more): claim (a)
    passes at no more than alpha's rate (bound: 0.05 + 3 binomial sds at 300 trials); with band
    K 1 nat beyond the fair subspaces but below the plain ones, it passes, the plain reading not."""
    fair, plain = null_rates(300, 0.0, 8.0, seed=11)
    assert fair <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 300) and plain == 0.0
    fair, plain = null_rates(40, 1.5, 8.0, seed=12)
    assert fair >= 0.8 and plain == 0.0


def test_without_massive_coordinates_the_record_is_the_plain_one(h1_setup):
    """No coordinate flagged: the fair control is the plain subspaces (no extra filter pass), and
    every number the verdict reads is the plain control's."""
    test, s = h1_setup
    subject = massive_model(0.0)
    sweep = FilterSweep(subject, test, spectrum_for(subject, 8), 16, 3, layers=[1])
    passed, m = h1_grid(sweep, [1, 2], s)[2]
    assert m["massive_coordinates"] == [] and m["random_control"] == "plain"
    plain = m["plain_random"]
    for key in ("random_delta", "random_delta_ci", "random_delta_per_subspace", "p_vs_random", "p_vs_random_raw",
                "p_vs_random_subspaces", "p_vs_random_subspaces_raw", "p_vs_random_subspaces_log_raw"):
        assert m[key] == plain[key], key
    assert plain["claim_a"] == m["claim_a"]
    assert not any("x" in str(n) for (*_, n) in sweep._memo)
    # the verdicts equal those of inputs without a fair control (the code path of older records)
    x = H1Inputs(np.ones(4), np.ones(4) + 1, np.ones(4) + 0.1, np.ones(4), np.ones(4), np.ones(4) + 1,
                 np.ones(4) + 0.5, np.ones(4) + 0.5, np.full(4, 0.5), np.full(4, 0.2),
                 random_each=np.ones((3, 4)) + np.array([[0.05], [0.1], [0.15]]))
    old = h1_verdicts({1: x}, **KW)[1][1]
    assert old["random_control"] == "plain" and old["p_vs_random"] == old["plain_random"]["p_vs_random"]


def test_the_failure_message_names_the_control_read_and_the_plain_one_beside_it():
    from types import SimpleNamespace

    from sinkbench.hypotheses import h1_dark_tail

    rng = np.random.default_rng(3)
    base = 3 + 0.1 * rng.standard_normal(16)
    fair = np.stack([base + 2.0 + 0.05 * rng.standard_normal(16) for _ in range(3)])  # as costly as band K
    plain = fair + 10
    x = H1Inputs(base, base + 2, plain.mean(0), base + 0.1, base, base + 2, base + 0.5, base + 0.5, np.full(16, 0.5),
                 np.full(16, 0.2), random_each=plain, random_fair=fair.mean(0), random_fair_each=fair)
    out = h1_verdicts({4: x}, **KW)
    out[4][1]["massive_coordinates"] = [163]
    recorded = []
    bench = SimpleNamespace(settings=Settings(), resume=lambda *a: None, results=lambda *a: out,
                            dark_alignment=lambda name: {}, sink_rate=lambda name: {}, params=lambda *a, **k: {},
                            record=lambda *a: recorded.append(a))
    with pytest.raises(AssertionError) as exc:
        h1_dark_tail.check(bench, "m", 4)
    text = str(exc.value)
    assert "random orthogonal to massive coordinates [163]" in text and "plain random 12." in text
    assert "recorded, not read" in text and recorded and not recorded[0][4]
