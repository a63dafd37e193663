"""H2, the middle of the spectrum is dispensable (Cancedda 2024).

After decoder layer l, the sink-preserving filter Omega_k (bands 1..k plus the
dark tail K) gives significantly lower NLL than head_{k+1} (bands 1..k+1), which
keeps the same number of dimensions. One-sided paired Wilcoxon, Holm-corrected
over the model's layers x k. Also recorded: the compression frontier, the largest
share of dimensions an Omega_k deletes with mean NLL rising <= frontier_tolerance."""
from harness.experiments import h2_grid


def test_middle_dispensable(sinkbench, model_name, layer, k):
    sinkbench.resume("H2", model_name, layer, k=k)
    s = sinkbench.settings
    sweep = sinkbench.sweep(model_name)
    grid = sinkbench.grid("H2", model_name, lambda: h2_grid(sweep, sinkbench.layers(model_name), sinkbench.h2_ks(), s))
    passed, m = grid[layer, k]

    params = sinkbench.params(model_name, k=k, omega_bands=list(range(1, k + 1)) + [s.n_bands],
                              head_bands=list(range(1, k + 2)), positions="all",
                              frontier_tolerance=s.frontier_tolerance)
    sinkbench.record("H2", model_name, layer, params, passed, m)

    assert passed, (
        f"H2 fails on {model_name} after layer {layer}, k={k}: Omega_{k} NLL {m['omega_nll']:.3f} vs "
        f"head_{k + 1} {m['head_nll']:.3f} (difference {m['head_minus_omega']:.3f}, Holm p={m['p_value']:.3g})"
    )
