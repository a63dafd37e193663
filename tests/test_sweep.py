"""FilterSweep on a tiny model, and the null comparison run through real forward passes."""
import numpy as np
import torch
from sinkbench.hypotheses.h1_dark_tail import H1Inputs, h1_verdicts
from sinkbench.measure.spectrum import spectrum_for
from sinkbench.stats.inference import holm, mean_greater
from sinkbench.measure.sweep import FilterSweep, middle_band, resolve_ks


def test_random_subspace_vs_random_subspace_does_not_pass(llama_subject, tmp_path, monkeypatch):
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(5)
    windows = torch.randint(3, 259, (16, 24), generator=g)
    sweep = FilterSweep(llama_subject, windows, spectrum_for(llama_subject, 8), batch_size=8, random_seeds=6)
    base = sweep.base()
    # the "dark tail" replaced by one random subspace, the control by the others
    first, rest = sweep.seeds[0], sweep.seeds[1:]
    fake_dark = sweep.get(1, f"random{first}")
    control = np.mean([sweep.get(1, f"random{s}").nll for s in rest], 0)
    x = H1Inputs(base.nll, fake_dark.nll, control, control, base.nll_rest, fake_dark.nll_rest, fake_dark.nll,
                 fake_dark.nll_rest, base.post_filter_sink_mass(1), fake_dark.post_filter_sink_mass(1))
    passed, m = h1_verdicts({1: x}, alpha=0.05, min_delta=0.0, min_sink_drop=0.0, n_boot=100)[1]
    assert not passed and m["p_vs_random"] >= 0.05
    # the same comparison in the other direction is not significant either
    assert holm([mean_greater(control - fake_dark.nll)])[0] >= 0.05


def test_sweep_memoises_and_post_filter_mass_uses_later_layers(llama_subject, windows, tmp_path, monkeypatch):
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    sweep = FilterSweep(llama_subject, windows, spectrum_for(llama_subject, 8), batch_size=4, random_seeds=2)
    m = sweep.get(1, "dark_sink")
    assert sweep.get(1, "dark_sink") is m and sweep.passes == 2  # the base run and this one
    assert np.isnan(m.sink_mass[:, :2]).all() and not np.isnan(m.sink_mass[:, 2:]).any()
    assert np.allclose(m.post_filter_sink_mass(1), m.sink_mass[:, 2:].mean(1))
    assert len(m.nll) == len(windows) and m.nll_rest.shape == m.nll.shape and not np.allclose(m.nll_rest, m.nll)


def test_named_filters():
    assert middle_band(20) == 10 and resolve_ks("0.25,0.5,0.75", 20) == [5, 10, 15]
    assert resolve_ks("0.25,0.5,0.75", 8) == [2, 4, 6] and resolve_ks("1.0", 20) == [18]


def test_prefix_reuse_gives_the_numbers_of_a_full_pass(llama_subject, windows, tmp_path, monkeypatch):
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    sp = spectrum_for(llama_subject, 8)
    fast = FilterSweep(llama_subject, windows, sp, batch_size=4, random_seeds=1, layers=[1, 2])
    full = FilterSweep(llama_subject, windows, sp, batch_size=4, random_seeds=1, reuse_prefix=False)
    for layer in (1, 2):
        for name in ("dark_all", "dark_sink", "omega3", "random1000"):
            a, b = fast.get(layer, name), full.get(layer, name)
            assert np.allclose(a.nll, b.nll, atol=1e-6) and np.allclose(a.sink_mass, b.sink_mass, atol=1e-7, equal_nan=True)
    assert np.allclose(fast.base().nll, full.base().nll)


def test_filters_stacked_in_one_pass_give_the_numbers_of_separate_passes(llama_subject, windows):
    """Edit.stack: one pass of windows x filters equals one pass per filter, and
    stacked sink-mass filters still measure their sink mass."""
    from sinkbench.measure.spectrum import spectrum_for
    from sinkbench.measure.sweep import FilterSweep

    sp = spectrum_for(llama_subject, 4)
    names = ["dark_all", "middle", "random1000", "dark_sink", "omega1", "head2"]
    one = FilterSweep(llama_subject, windows, sp, batch_size=4, random_seeds=1, layers=[1])
    many = FilterSweep(llama_subject, windows, sp, batch_size=4, random_seeds=1, layers=[1], filters_per_pass=3)
    many.prefetch(1, names)
    assert many.passes == 1 + 1 + 2  # base, the two sink-mass filters, ceil(4 / 3) NLL-only passes
    for n in names:
        a, b = one.get(1, n), many.get(1, n)
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-5)
        if n.startswith("dark"):
            np.testing.assert_allclose(a.post_filter_sink_mass(1), b.post_filter_sink_mass(1), atol=1e-6)
    assert len({tuple(many.get(1, n).nll.round(4)) for n in names}) == len(names)  # really different filters


def test_h2_reads_no_filter_it_does_not_use(llama_subject, windows, tmp_path, monkeypatch):
    """H2a's Omega_k and head_{k+1}, H2b's Omega_k* and the frontier's Omega_k: nothing else
    (a head_{k*+1} for H2b would be a wasted pass per layer)."""
    from sinkbench.measure.config import make_settings
    from sinkbench.hypotheses.h2_middle import h2_filters

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    sweep = FilterSweep(llama_subject, windows, spectrum_for(llama_subject, 8), 4, 1)
    s = make_settings(n_bands=8)
    names = h2_filters(sweep, [2, 4], s)
    assert sorted(names) == sorted([f"omega{k}" for k in range(1, 7)] + ["head3", "head5"])
