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
layers x (k + 1). Also recorded: the descriptive compression frontier.

This module is the hypothesis unit (sinkbench.registry): its grid, verdicts, simulated
calibration nulls, checks and figures; hypotheses/test_*.py only names its tests."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sinkbench.stats import stability
from sinkbench.stats.nulls import (ALPHA, BOUNDARY, Criterion, DEFAULTS, N_BOOT, N_BOOT_CHEAP, N_BOOT_FULL, hardness,
                                   nll_like, small, split_profile, window_noise)
from sinkbench.stats.claims import ci_mean, holm_by_key, mean_or_nan, test_mean, window_counts, windows_note
from sinkbench.measure.config import Settings
from sinkbench.measure.experiments import as_units
from sinkbench.registry import LAYER, Axis, Hypothesis, Test
from sinkbench.measure.sweep import FilterSweep


@dataclass
class H2Inputs:
    """Per-window arrays [N] for one (layer, k)."""

    base: np.ndarray
    omega: np.ndarray  # Omega_k: bands 1..k + K
    head: np.ndarray  # head_{k+1}: bands 1..k+1 (same number of kept dimensions)
    omega_dim: int
    head_dim: int


@dataclass
class H2bInputs:
    """Per-window arrays [N] for one layer: the sink-preserving filter Omega_k that keeps the
    most bands while deleting at least h2_min_frontier of the dimensions (fixed in advance)."""

    base: np.ndarray
    omega: np.ndarray
    k: int | None  # None: no Omega_k deletes that much
    deleted_share: float


def h2_verdicts(grid: dict, grid_b: dict | None = None, *, alpha: float, n_boot: int, tolerance: float = 0.25,
                min_frontier: float = 0.25) -> dict:
    """grid: (layer, k) -> H2Inputs (H2a); grid_b: layer -> H2bInputs (H2b). Holm over both.
    H2a, relative: Omega_k has lower NLL than head_{k+1} (same kept dimensions).
    H2b, absolute: Omega_k deleting >= min_frontier of the dimensions raises NLL by at most
    `tolerance` nats: the upper end of the rise's 95% interval is within it, and the rise is
    significantly below it (mean test of tolerance - rise).
    Returns (layer, k) -> (passed, metrics) for H2a and (layer, 'b') -> ... for H2b."""
    grid_b = grid_b or {}
    raw = {key: [test_mean(x.head - x.omega, "H2", key)] for key, x in grid.items()}
    raw.update({(layer, "b"): [test_mean(tolerance - (x.omega - x.base), "H2", layer, "b") if x.k is not None else 1.0]
                for layer, x in grid_b.items()})
    adjusted = holm_by_key(raw)
    out = {}
    for key, x in grid.items():
        gap = x.head - x.omega
        p = adjusted[key][0]
        out[key] = (bool(p < alpha and mean_or_nan(gap) > 0), {
            "base_nll": mean_or_nan(x.base),
            "omega_nll": mean_or_nan(x.omega),
            "head_nll": mean_or_nan(x.head),
            "omega_delta": mean_or_nan(x.omega - x.base),
            "omega_delta_ci": ci_mean(x.omega - x.base, n_boot, "H2", key, "omega_delta"),
            "head_delta": mean_or_nan(x.head - x.base),
            "head_delta_ci": ci_mean(x.head - x.base, n_boot, "H2", key, "head_delta"),
            "head_minus_omega": mean_or_nan(gap),
            "head_minus_omega_ci": ci_mean(gap, n_boot, "H2", key, "gap"),
            "p_value": p,
            "p_value_raw": raw[key][0],
            "omega_kept_dims": x.omega_dim,
            "head_kept_dims": x.head_dim,
            **window_counts(gap),
        })
    for layer, x in grid_b.items():
        rise = x.omega - x.base
        ci = ci_mean(rise, n_boot, "H2", layer, "b")
        p = adjusted[layer, "b"][0]
        passed = x.k is not None and ci[1] <= tolerance and p < alpha
        out[layer, "b"] = (bool(passed), {
            "k": x.k, "deleted_share": x.deleted_share, "min_frontier": min_frontier, "tolerance": tolerance,
            "base_nll": mean_or_nan(x.base), "omega_nll": mean_or_nan(x.omega),
            "omega_delta": mean_or_nan(rise), "omega_delta_ci": ci,
            "p_value": p, "p_value_raw": raw[layer, "b"][0],
            **window_counts(tolerance - rise),
        })
    return out


def compression_frontier(deltas: dict, deleted_share: dict, tolerance: float) -> dict:
    """Descriptive: the largest share of dimensions an Omega_k deletes while mean NLL rises by
    at most `tolerance` nats (scanned over k, so not a test; H2b is the test).
    deltas, deleted_share: k -> value."""
    ok = [k for k, d in deltas.items() if d <= tolerance]
    if not ok:
        return {"share_deleted": 0.0, "k": None, "tolerance": tolerance}
    best = max(ok, key=lambda k: deleted_share[k])
    return {"share_deleted": float(deleted_share[best]), "k": best, "tolerance": tolerance,
            "delta_at_k": float(deltas[best])}


def frontier_k(deleted_share: dict, min_frontier: float) -> int | None:
    """H2b's filter, fixed before looking at any NLL: the Omega_k that keeps the most bands
    while deleting at least min_frontier of the dimensions. deleted_share: k -> share."""
    ok = [k for k, share in deleted_share.items() if share >= min_frontier - 1e-12]
    return max(ok) if ok else None


def omega_deleted_share(sp, k: int) -> float:
    """Share of the residual dimensions Omega_k (bands 1..k + K) deletes."""
    return 1.0 - sp.band_dim(list(range(1, k + 1)) + [sp.n_bands]) / sp.d


def wants_frontier(s: Settings) -> bool:
    """Whether H2 scans the descriptive compression frontier: Omega_1..Omega_{K-2} at every
    layer, two thirds of H2's passes, and no verdict reads them. The plugin sets it from
    `--frontier` (off by default: the hypothesis run scans it only on request); Settings made
    elsewhere (library use, the unit tests) scan it, as before."""
    return bool(s.extra.get("frontier", True))


def h2_filters(sweep: FilterSweep, ks: list[int], s: Settings, frontier: bool | None = None) -> list[str]:
    """The filters H2 reads at a layer: H2a's Omega_k and head_{k+1}, H2b's Omega_k*, and with
    the frontier (default: wants_frontier) Omega_1..Omega_{K-2} (which already hold Omega_k*)."""
    frontier = wants_frontier(s) if frontier is None else frontier
    k_b = frontier_k({k: omega_deleted_share(sweep.spectrum, k) for k in range(1, s.n_bands - 1)}, s.h2_min_frontier)
    return list(dict.fromkeys(sweep.filters_for("h2", ks, frontier) + ([f"omega{k_b}"] if k_b else [])))


def h2_grid(sweep: FilterSweep, layers: list[int], ks: list[int], s: Settings, frontier: bool | None = None) -> dict:
    """H2a per (layer, k), H2b per layer (Omega_k fixed by h2_min_frontier), one Holm family.
    Keys: (layer, k) and (layer, 'b'). The descriptive frontier (metrics 'frontier') is
    measured and recorded only with frontier (default: wants_frontier, `--frontier`)."""
    frontier = wants_frontier(s) if frontier is None else frontier
    base = sweep.base()
    sp, K = sweep.spectrum, s.n_bands
    shares = {k: omega_deleted_share(sp, k) for k in range(1, K - 1)}
    k_b = frontier_k(shares, s.h2_min_frontier)
    grid, grid_b = {}, {}
    for layer in layers:
        sweep.prefetch(layer, h2_filters(sweep, ks, s, frontier))
        for k in ks:
            grid[layer, k] = H2Inputs(
                base=base.nll,
                omega=sweep.get(layer, f"omega{k}").nll,
                head=sweep.get(layer, f"head{k + 1}").nll,
                omega_dim=sp.band_dim(list(range(1, k + 1)) + [K]),
                head_dim=sp.band_dim(list(range(1, k + 2))),
            )
        grid_b[layer] = H2bInputs(base=base.nll, omega=sweep.get(layer, f"omega{k_b}").nll if k_b else base.nll,
                                  k=k_b, deleted_share=shares.get(k_b, 0.0))
    verdicts = lambda g: h2_verdicts(g[0], g[1], alpha=s.alpha, n_boot=s.bootstrap,  # noqa: E731
                                     tolerance=s.frontier_tolerance, min_frontier=s.h2_min_frontier)
    (grid, grid_b), n_units = as_units((grid, grid_b), sweep.subject, s, len(base.nll))
    results = stability.attach(verdicts((grid, grid_b)), verdicts, (grid, grid_b), n_units, "H2",
                               reads_intervals=True, model=sweep.subject.name)  # H2b's verdict reads its interval's upper end
    if frontier:
        for layer in layers:
            deltas = {k: float((sweep.get(layer, f"omega{k}").nll - base.nll).mean()) for k in range(1, K - 1)}
            front = compression_frontier(deltas, shares, s.frontier_tolerance)
            front["omega_deltas"] = deltas
            for k in ks + ["b"]:
                results[layer, k][1]["frontier"] = front
    return results


H2_PROFILE = dict(omega_rise=0.4, gap_sd=0.08, cv=0.3, other_gap=0.5, b_rise=0.05, b_sd=0.08, ks=1)


def _h2_sim(which):
    """H2a at (layer, first k): family = the ks H2a tests of each layer (the others at
    other_gap), no H2b. H2b: family = the H2b test of each layer alone. Either way the
    criterion's own tests are the whole family, which is the hardest case for it."""

    def simulate(rng, trials, n, layers, effect, **profile):
        _, p = split_profile(effect, H2_PROFILE, profile)
        s = DEFAULTS
        shape = (trials, layers, n)
        base = 3.1 + 0.35 * rng.standard_normal((trials, 1, n)) * np.ones(shape)
        ks = p["ks"] if which == "a" else 0
        hk = hardness(rng, (trials, layers, ks, n), p["cv"])
        noise = lambda: p["gap_sd"] * window_noise(rng, (trials, layers, ks, n))
        omega = base[:, :, None] + p["omega_rise"] * hk + noise()
        gaps = np.full(ks, p["other_gap"])
        if which == "a":
            gaps[0] = effect  # the case under test: the first k of the grid
        head = base[:, :, None] + (p["omega_rise"] + gaps[None, None, :, None]) * hk + noise()
        if which == "b":
            hb = hardness(rng, shape, p["cv"])
            omega_b = base + (s["frontier_tolerance"] - effect) * hb + p["b_sd"] * window_noise(rng, shape)
        out = np.zeros((trials, layers), bool)
        for t in range(trials):
            grid = {(l, k): H2Inputs(base[t, l], omega[t, l, k], head[t, l, k], 30, 30)
                    for l in range(layers) for k in range(ks)}
            grid_b = {l: H2bInputs(base[t, l], omega_b[t, l], 14, 0.3) for l in range(layers)} if which == "b" else None
            res = h2_verdicts(grid, grid_b, alpha=s["alpha"], n_boot=N_BOOT_FULL if which == "b" else N_BOOT_CHEAP,
                              tolerance=s["frontier_tolerance"], min_frontier=s["h2_min_frontier"])
            out[t] = [res[(l, 0) if which == "a" else (l, "b")][0] for l in range(layers)]
        return out

    return simulate


NULLS = (
    Criterion("H2a", "head_{k+1} NLL minus Omega_k NLL (nats)", _h2_sim("a"),
              nulls={"omega like head": dict(effect=0.0)}, clear=dict(effect=0.15), profile=H2_PROFILE,
              description="H2a: Omega_k has lower NLL than head_{k+1}"),
    Criterion("H2b", "tolerance minus the true NLL rise of Omega_k (nats)", _h2_sim("b"),
              nulls={"rise at tolerance": dict(effect=0.0),
                     "rise at tolerance, skewed windows": dict(effect=0.0, cv=0.8, b_sd=0.04)},
              clear=dict(effect=0.2), profile=H2_PROFILE, reads_intervals=True,
              description="H2b: Omega_k deleting >= min_frontier of the dimensions raises NLL by at most the tolerance"),
)


# --------------------------------------------------------------------------- hostile nulls
# Each test at its boundary, one function of the null noise e (sinkbench.run.hostile runs them
# under heavy tails, skew both ways, AR(1) dependence, zeros and NaN windows).
def _h2a(e, rng):
    n = e.size
    base = nll_like(rng, n)
    omega = base + 0.3 + small(rng, n, 0.1)
    return h2_verdicts({(1, 5): H2Inputs(base, omega, omega + 0.2 * e, 30, 30)}, alpha=ALPHA, n_boot=N_BOOT)[1, 5][0]


def _h2b(e, rng):
    n = e.size
    base = nll_like(rng, n)
    x = H2bInputs(base, base + BOUNDARY["tolerance"] - 0.1 * e, 5, 0.5)
    return h2_verdicts({}, {1: x}, alpha=ALPHA, n_boot=2000, tolerance=BOUNDARY["tolerance"])[1, "b"][0]


HOSTILE = {"H2a": _h2a, "H2b": _h2b}


# --------------------------------------------------------------------------- the unit
def ks_of(s) -> list[int]:
    """H2's k values: --bands if given, else the configured fractions of K (each <= K-2)."""
    from sinkbench.errors import SinkbenchError
    from sinkbench.measure.spectrum import parse_bands
    from sinkbench.measure.sweep import resolve_ks

    ks = parse_bands(s.bands, s.n_bands) if s.bands else resolve_ks(s.h2_ks, s.n_bands)
    bad = [k for k in ks if k > s.n_bands - 2]
    if bad:
        raise SinkbenchError(f"--bands {s.bands!r}: H2 needs k <= K-2 = {s.n_bands - 2}, got {bad}; pass bands up to {s.n_bands - 2}")
    return ks


K = Axis("k", lambda s, model_name: ks_of(s), "k{}")


def measure(bench, model_name: str) -> dict:
    return h2_grid(bench.sweep(model_name), bench.layers(model_name), ks_of(bench.settings), bench.settings)


def check_relative(bench, model_name: str, layer: int, k: int) -> None:
    bench.resume("H2", model_name, layer, k=k)
    s = bench.settings
    passed, m = bench.results(HYPOTHESIS, model_name)[layer, k]

    params = bench.params(model_name, k=k, omega_bands=list(range(1, k + 1)) + [s.n_bands],
                          head_bands=list(range(1, k + 2)), positions="all")
    bench.record("H2", model_name, layer, params, passed, m, claim="a")

    assert passed, (
        f"H2a fails on {model_name} after layer {layer}, k={k}: Omega_{k} NLL {m['omega_nll']:.3f} vs "
        f"head_{k + 1} {m['head_nll']:.3f} (difference {m['head_minus_omega']:.3f}, Holm p={m['p_value']:.3g})" + windows_note(m)
    )


def check_absolute(bench, model_name: str, layer: int) -> None:
    bench.resume("H2", model_name, layer, claim="b")
    s = bench.settings
    passed, m = bench.results(HYPOTHESIS, model_name)[layer, "b"]
    k = m["k"]
    params = bench.params(model_name, omega_bands=list(range(1, k + 1)) + [s.n_bands] if k else None,
                          positions="all", frontier_tolerance=s.frontier_tolerance, min_frontier=s.h2_min_frontier)
    bench.record("H2", model_name, layer, params, passed, m, claim="b")

    lo, hi = m["omega_delta_ci"]
    assert passed, (
        f"H2b fails on {model_name} after layer {layer}: Omega_{k} deletes {m['deleted_share']:.0%} of the dimensions "
        f"(need >= {s.h2_min_frontier:.0%}) and raises NLL by {m['omega_delta']:.3f} nats (95% CI {lo:.3f}..{hi:.3f}; "
        f"upper end must be <= {s.frontier_tolerance}, Holm p={m['p_value']:.3g})" + windows_note(m)
    )


def figures(plt, model: str, recs: list[dict]) -> list:
    """The descriptive compression frontier (with --frontier): NLL increase per layer x kept bands."""
    h2 = [r for r in recs if r["hypothesis"] == "H2" and r["metrics"].get("frontier", {}).get("omega_deltas")]
    if not h2:
        return []
    by_layer = {r["layer"]: r["metrics"]["frontier"]["omega_deltas"] for r in h2}
    layers = sorted(by_layer)
    ks = sorted({int(k) for d in by_layer.values() for k in d})
    grid = np.array([[by_layer[l].get(str(k), np.nan) for k in ks] for l in layers], float)
    fig, ax = plt.subplots(figsize=(6, max(2.8, 0.8 + 0.35 * len(layers))))
    im = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0)
    ax.set_xticks(range(len(ks)), [str(k) for k in ks], fontsize=7)
    ax.set_yticks(range(len(layers)), [str(l) for l in layers], fontsize=7)
    ax.set_xlabel("Ω_k: head bands 1..k kept, plus the dark tail")
    ax.set_ylabel("layer filtered")
    fig.colorbar(im, ax=ax, label="NLL increase (nats)")
    return [(fig, f"{model}: NLL increase under sink-preserving filters (layer x kept bands)")]


HYPOTHESIS = Hypothesis(
    name="H2", title="the middle of the spectrum is dispensable",
    tests=(Test("test_middle_dispensable", (LAYER, K), check_relative),
           Test("test_middle_dispensable_absolute", (LAYER,), check_absolute)),
    measure=measure,
    passes=lambda bench, name: bench.filter_passes(name, h2_filters(bench.sweep(name), ks_of(bench.settings), bench.of(name))),
    nulls=NULLS, hostile=HOSTILE, key_effects={"H2/a": ("head_minus_omega", "head−Ω"), "H2/b": ("omega_delta", "ΔNLL Ω")},
    question="Is the middle of the spectrum dispensable?",
    claims={"H2/a": "keeping head + dark tail beats keeping the same number of head bands",
            "H2/b": "deleting the middle raises NLL by less than the tolerance"},
    figures=figures, methods="docs/methods.md §5 (H2), §6", built_in=True)
