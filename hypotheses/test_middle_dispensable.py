"""H2, the middle of the spectrum is dispensable (Cancedda 2024; docs/methods.md).

After decoder layer l:
 H2a (relative, per k): the sink-preserving filter Omega_k (bands 1..k plus the dark
     tail K) gives significantly lower NLL than head_{k+1} (bands 1..k+1), which keeps
     the same number of dimensions;
 H2b (absolute, per layer): the Omega_k that keeps the most bands while deleting at
     least h2_min_frontier of the dimensions (fixed before any NLL is seen) raises NLL
     by at most frontier_tolerance nats: the upper end of the rise's 95% interval is
     within it, and the rise is significantly below it.
One-sided paired tests of means over windows (skew-guarded), Holm-corrected over the model's
layers x (k + 1). Also recorded: the descriptive compression frontier."""
from sinkbench.claims import windows_note
from sinkbench.experiments import h2_grid


def h2(sinkbench, model_name):
    s = sinkbench.settings
    sweep = sinkbench.sweep(model_name)
    return sinkbench.grid("H2", model_name, lambda: h2_grid(sweep, sinkbench.layers(model_name), sinkbench.h2_ks(), s))


def test_middle_dispensable(sinkbench, model_name, layer, k):
    sinkbench.resume("H2", model_name, layer, k=k)
    s = sinkbench.settings
    passed, m = h2(sinkbench, model_name)[layer, k]

    params = sinkbench.params(model_name, k=k, omega_bands=list(range(1, k + 1)) + [s.n_bands],
                              head_bands=list(range(1, k + 2)), positions="all")
    sinkbench.record("H2", model_name, layer, params, passed, m, claim="a")

    assert passed, (
        f"H2a fails on {model_name} after layer {layer}, k={k}: Omega_{k} NLL {m['omega_nll']:.3f} vs "
        f"head_{k + 1} {m['head_nll']:.3f} (difference {m['head_minus_omega']:.3f}, Holm p={m['p_value']:.3g})" + windows_note(m)
    )


def test_middle_dispensable_absolute(sinkbench, model_name, layer):
    sinkbench.resume("H2", model_name, layer, claim="b")
    s = sinkbench.settings
    passed, m = h2(sinkbench, model_name)[layer, "b"]
    k = m["k"]
    params = sinkbench.params(model_name, omega_bands=list(range(1, k + 1)) + [s.n_bands] if k else None,
                              positions="all", frontier_tolerance=s.frontier_tolerance, min_frontier=s.h2_min_frontier)
    sinkbench.record("H2", model_name, layer, params, passed, m, claim="b")

    lo, hi = m["omega_delta_ci"]
    assert passed, (
        f"H2b fails on {model_name} after layer {layer}: Omega_{k} deletes {m['deleted_share']:.0%} of the dimensions "
        f"(need >= {s.h2_min_frontier:.0%}) and raises NLL by {m['omega_delta']:.3f} nats (95% CI {lo:.3f}..{hi:.3f}; "
        f"upper end must be <= {s.frontier_tolerance}, Holm p={m['p_value']:.3g})" + windows_note(m)
    )
