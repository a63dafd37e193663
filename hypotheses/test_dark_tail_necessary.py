"""H1, the dark tail is necessary (Cancedda 2024; docs/methods.md).

After decoder layer l:
 (a) removing band K (the U-dark tail) at all positions raises NLL by at least
     h1_min_delta nats, significantly more than removing a random subspace of the
     same dimension and more than removing the median middle band;
 (b) removing band K at the sink position only lowers post-filter sink mass by at
     least h1_min_sink_drop (relative; significant) and raises the NLL of the other
     predictions (those made at positions >= 1) significantly.
Paired one-sided tests of means over windows (skew-guarded), Holm-corrected over the model's
layers x 6 tests. Also recorded: the share of (a)'s damage that (b) reproduces."""
from sinkbench.claims import windows_note
from sinkbench.experiments import h1_grid


def test_dark_tail_necessary(sinkbench, model_name, layer):
    sinkbench.resume("H1", model_name, layer)
    s = sinkbench.settings
    sweep = sinkbench.sweep(model_name)
    grid = sinkbench.grid("H1", model_name, lambda: h1_grid(sweep, sinkbench.layers(model_name), s))
    passed, m = grid[layer]
    m["dark_alignment_UE"] = sinkbench.dark_alignment(model_name)
    m["sink_rate"] = sinkbench.sink_rate(model_name)  # of the unedited model: context for the verdict

    params = sinkbench.params(model_name, bands=[s.n_bands], positions=["all", "sink"],
                              min_delta=s.h1_min_delta, min_sink_drop=s.h1_min_sink_drop)
    sinkbench.record("H1", model_name, layer, params, passed, m)

    assert m["claim_a"], (
        f"H1(a) fails on {model_name} after layer {layer}: removing the dark tail raises mean NLL by "
        f"{m['dark_all_delta']:.3f} nats (need >= {s.h1_min_delta}); random {m['random_delta']:.3f} "
        f"(Holm p={m['p_vs_random']:.3g}), middle {m['middle_delta']:.3f} (Holm p={m['p_vs_middle']:.3g})" + windows_note(m)
    )
    lo, hi = m["sink_mass_drop_ci"]
    assert m["claim_b"], (
        f"H1(b) fails on {model_name} after layer {layer}: dark tail removed at the sink only: sink mass "
        f"{m['sink_mass_base']:.3f} -> {m['sink_mass_dark_sink']:.3f} (drop {m['sink_mass_drop']:.1%}, 95% CI "
        f"{lo:.1%}..{hi:.1%}, need >= {s.h1_min_sink_drop:.0%}, Holm p={m['p_sink_mass_drop']:.3g}), NLL of the other "
        f"predictions +{m['dark_sink_delta']:.3f} (Holm p={m['p_dark_sink']:.3g})" + windows_note(m)
    )
