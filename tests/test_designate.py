"""H4 edits and claims: exact positions and subspaces, norm-matched controls, and
constructed cases where each claim must fail."""
from functools import partial

import numpy as np
import torch
from sinkbench.hypotheses.h4a_designated_write import h4a_raw, h4a_verdicts
from sinkbench.hypotheses.h4b_designated_training import h4b_verdicts
from sinkbench.measure.designate import WriteResult, choose_targets, target_readout, write_dark
from tests.test_spectrum import random_spectrum


def setup():
    sp = random_spectrum(d=40, k=5)
    h = torch.randn(3, 10, 40) * 3
    h[:, 0] += 50 * sp.band_vectors([5])[:, 0]  # a dark-heavy sink
    return sp, h, torch.tensor([4, 5, 6])


def test_transplant_and_add_touch_exactly_the_intended_positions_and_subspace():
    sp, h, t = setup()
    pk = sp.keep([5])
    v = h[:, 0] @ pk
    b = torch.arange(3)
    for mode in ("add", "transplant", "broken"):
        out = write_dark(h, slice(None), targets=t, dark=pk, mode=mode)
        diff = out - h
        touched = torch.zeros(3, 10, dtype=torch.bool)
        if mode in ("add", "transplant"):
            touched[b, t] = True
            assert torch.allclose(diff[b, t], v, atol=1e-4)
        if mode in ("transplant", "broken"):
            touched[:, 0] = True
            assert torch.allclose(diff[:, 0], -v, atol=1e-4)
            assert torch.allclose(out[:, 0] @ pk, torch.zeros(3, 40), atol=1e-3)  # no dark tail left at the sink
        assert torch.count_nonzero(diff[~touched]) == 0
        assert torch.allclose(diff @ pk, diff, atol=1e-3)  # every change lies in band K


def test_control_matches_norm_and_avoids_the_dark_band():
    sp, h, t = setup()
    pk = sp.keep([5])
    light = sp.band_vectors([1, 2, 3, 4])
    u = torch.randn(3, light.shape[1]) @ light.T
    u = u / u.norm(dim=-1, keepdim=True)
    out = write_dark(h, slice(None), targets=t, dark=pk, mode="control", control_dirs=u)
    diff = (out - h)[torch.arange(3), t]
    assert torch.allclose(diff.norm(dim=-1), (h[:, 0] @ pk).norm(dim=-1), rtol=1e-4)
    assert torch.allclose(diff @ pk, torch.zeros(3, 40), atol=1e-3)
    assert torch.equal(out[:, 0], h[:, 0])


def test_target_readout_and_choice():
    t = 6
    p = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]
    r = target_readout(p[None, None].expand(2, 1, t, t), slice(None), targets=torch.tensor([2, 3]))
    assert torch.allclose(r[0], torch.tensor([(1 / 4 + 1 / 5 + 1 / 6) / 3, (1 / 4 + 1 / 5 + 1 / 6) / 3]))
    assert torch.allclose(r[1], torch.tensor([(1 / 5 + 1 / 6) / 2, (1 / 5 + 1 / 6) / 2]))
    windows = torch.zeros(2, 32, dtype=torch.long)
    freq = np.zeros((2, 32), bool)
    freq[0, 10] = freq[1, 20] = True
    assert choose_targets(windows, "middle", freq).tolist() == [16, 16]
    assert choose_targets(windows, "frequent", freq).tolist() == [10, 20]
    assert choose_targets(windows, "ordinary", freq).tolist() == [16, 16]


def wr(att_t, att_0, nll, rng, n=16):
    return WriteResult(att_t + rng.normal(0, 0.002, n), att_0 + rng.normal(0, 0.002, n), nll + rng.normal(0, 0.01, n))


def test_h4a_claims_pass_and_fail_where_they_should():
    rng = np.random.default_rng(0)
    good = {"base": wr(0.01, 0.5, 3.0, rng), "add": wr(0.2, 0.3, 3.0, rng), "transplant": wr(0.3, 0.1, 3.2, rng),
            "control": wr(0.012, 0.5, 3.0, rng), "broken": wr(0.01, 0.1, 4.0, rng)}
    out = h4a_verdicts({(3, "middle"): h4a_raw(good, 3.0, 200)}, alpha=0.05)
    assert all(passed for passed, _ in out.values())
    assert 0.7 < out[3, "middle", "A3", "transplant"][1]["recovered_share"] < 0.9
    bad = {"base": wr(0.01, 0.5, 3.0, rng), "add": wr(0.02, 0.5, 3.0, rng), "transplant": wr(0.02, 0.5, 4.0, rng),
           "control": wr(0.2, 0.5, 3.0, rng), "broken": wr(0.01, 0.1, 4.0, rng)}
    out = h4a_verdicts({(3, "middle"): h4a_raw(bad, 3.0, 200)}, alpha=0.05)
    assert not any(passed for passed, _ in out.values())  # no capture, control captures, no rescue


def test_h4b_fails_when_the_sink_stays_at_zero():
    rng = np.random.default_rng(1)
    n = 16
    x = {"att_k": rng.normal(0.05, 0.01, n), "att_0": rng.normal(0.6, 0.01, n), "nll_base": np.full(n, 1.0),
         "nll_dark_k": rng.normal(1.1, 0.01, n), "nll_dark_0": rng.normal(2.0, 0.01, n),
         "dark_ratio_k": rng.normal(0.5, 0.01, n), "dark_ratio_ordinary": rng.normal(0.5, 0.01, n)}
    out = h4b_verdicts({1: x}, alpha=0.05, n_boot=100)
    assert not out[1, "B1"][0] and not out[1, "B2"][0]
    y = dict(x, att_k=x["att_0"], att_0=x["att_k"], nll_dark_k=x["nll_dark_0"], nll_dark_0=x["nll_dark_k"],
             dark_ratio_k=x["dark_ratio_k"] + 1)
    out = h4b_verdicts({1: y}, alpha=0.05, n_boot=100)
    assert out[1, "B1"][0] and out[1, "B2"][0]


def test_h4_records_the_value_key_profile_of_each_designated_target(llama_subject, windows):
    """H4-A's records carry the designated target's value/key profile beside the natural
    sink's: the natural sink's numbers are sink_profile's at position 0, and the dark write
    changes the target's own profile (its residual gains position 0's band-K component)."""
    import pytest

    from sinkbench.measure.config import make_settings
    from sinkbench.hypotheses.h4a_designated_write import target_profiles
    from sinkbench.measure.designate import dark_write, run_write
    from sinkbench.measure.sink_profile import profiled_pass, sink_profile, supported
    from sinkbench.measure.spectrum import spectrum_for
    from sinkbench.measure.sweep import FilterSweep

    assert supported(llama_subject)
    sweep = FilterSweep(llama_subject, windows, spectrum_for(llama_subject, 8), batch_size=6, random_seeds=1)
    s = make_settings(batch_size="6")
    t = torch.full((6,), 12)
    w = run_write(llama_subject, windows, sweep.spectrum, 0, t, "add", 6, profile=(0, t))
    plain = run_write(llama_subject, windows, sweep.spectrum, 0, t, "add", 6)
    # the profile rides on the write's own pass: none of the write's numbers moves ...
    for field in ("att_t", "att_0"):
        assert np.array_equal(getattr(w, field), getattr(plain, field)), field
    assert np.isnan(w.nll_after).all()  # an attention-only write (A1, A2) skips the NLL step
    # ... and it equals the profile of a pass of its own (the old way, one pass more)
    _, own = profiled_pass(llama_subject, windows, 6, positions=(0, t), from_query=1,
                           edit=dark_write(sweep.spectrum, 0, t, "add"), layers=range(1, llama_subject.n_layers))
    assert sorted(own) == sorted(w.profile)
    for i in own:
        torch.testing.assert_close(w.profile[i], own[i], rtol=1e-5, atol=1e-6, equal_nan=True)
    prof = target_profiles(sweep, [0], {"middle": t}, s, {(0, "middle"): w.profile})[0, "middle"]
    assert set(prof) == {"layers", "write", "natural_sink", "target", "natural_sink_under_write", "designated_target"}
    direct = sink_profile(llama_subject, windows, 6, 0, first_layer=1)
    for measure in ("query_key_cos", "attention"):
        assert prof["natural_sink"][measure] == pytest.approx(direct[measure], rel=1e-4, abs=1e-6)
    for measure in ("value_ratio", "residual_ratio"):  # the median leaves out the target too: one position of 23
        assert prof["natural_sink"][measure] == pytest.approx(direct[measure], rel=0.05)
    assert prof["designated_target"]["residual_ratio"] != pytest.approx(prof["target"]["residual_ratio"], rel=1e-3)
    assert prof["target"] != prof["natural_sink"]


def test_an_attention_only_write_reads_the_same_attention_without_its_nll(llama_subject, windows):
    """nll=False (H4-A's add and control writes, whose claims read attention only) skips the
    NLL step and changes no attention number."""
    from sinkbench.measure.designate import dark_write
    from sinkbench.measure.interventions import run_batched
    from sinkbench.measure.spectrum import spectrum_for

    t = torch.full((6,), 12)
    kw = dict(edit=dark_write(spectrum_for(llama_subject, 8), 0, t, "add"), attn_layers=range(1, llama_subject.n_layers),
              attn_readout=partial(target_readout, targets=t))
    without, with_nll = run_batched(llama_subject, windows, 6, nll=False, **kw), run_batched(llama_subject, windows, 6, **kw)
    for i in with_nll.attention:
        assert torch.equal(without.attention[i], with_nll.attention[i])
    assert torch.equal(without.sink_mass.nan_to_num(), with_nll.sink_mass.nan_to_num())
    assert without.token_nll.isnan().all() and not with_nll.token_nll.isnan().any()
