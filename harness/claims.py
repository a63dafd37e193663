"""H1-H5 verdicts from per-window measurements (pure functions of arrays).

The window is the unit of replication: every test below runs over one number per
window. Each claim is an effect size with a bootstrap (or exact) 95% interval plus a
one-sided test; p-values are Holm-corrected over the hypothesis's whole grid on one
model (all layers, k, conditions, claims), then compared with alpha. docs/methods.md
states every criterion and why."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stats import binomial_greater, bootstrap_ci, holm, prediction_greater, proportion_ci, ratio_ci, wilcoxon_greater


def holm_by_key(raw: dict) -> dict:
    """raw: key -> list of raw p-values. Holm over all of them; same shape back."""
    flat = [p for ps in raw.values() for p in ps]
    adjusted = iter(holm(flat)) if flat else iter(())
    return {key: [float(next(adjusted)) for _ in ps] for key, ps in raw.items()}


def mean_or_nan(x) -> float:
    x = np.asarray(x, float)
    return float(x.mean()) if x.size else float("nan")


# --------------------------------------------------------------------------- H1
@dataclass
class H1Inputs:
    """Per-window arrays [N] for one layer. NLLs of every prediction, except the *_rest
    ones: predictions made at positions >= 1 (an edit at the sink changes the prediction
    made at position 0 directly, not through attention)."""

    base: np.ndarray
    dark_all: np.ndarray
    random: np.ndarray  # averaged over seeds
    middle: np.ndarray
    base_rest: np.ndarray
    dark_all_rest: np.ndarray
    dark_sink: np.ndarray
    dark_sink_rest: np.ndarray
    sink_mass_base: np.ndarray  # post-filter layers of the unfiltered run
    sink_mass_dark_sink: np.ndarray  # post-filter layers, dark tail removed at the sink
    random_each: np.ndarray | None = None  # [S, N]: each random subspace's NLL (S >= 2 for the subspace test)


def h1_verdicts(grid: dict, *, alpha: float, min_delta: float, min_sink_drop: float, n_boot: int) -> dict:
    """grid: layer -> H1Inputs. Holm over layers x 6 tests. Returns layer -> (passed, metrics).
    (a) dark-tail removal at all positions raises NLL by more than min_delta (Wilcoxon of
        rise - min_delta), more than the middle band (paired Wilcoxon), and more than random
        subspaces of its dimension do: paired over windows against their mean (Wilcoxon),
        and as a subspace, against the spread of the random subspaces' mean costs
        (one-sided prediction-interval t-test, S - 1 degrees of freedom), so that band K
        must stand out from random subspaces, not only from the few that were drawn;
    (b) dark-tail removal at the sink only drops post-filter sink mass by more than
        min_sink_drop of it (Wilcoxon of (1 - min_sink_drop) * base - edited, which is the
        ratio-of-means drop tested against its minimum), and the NLL of the other
        predictions rises (Wilcoxon)."""
    raw = {}
    for layer, x in grid.items():
        delta = x.dark_all - x.base
        each = None if x.random_each is None else np.asarray(x.random_each, float) - x.base
        raw[layer] = [wilcoxon_greater(x.dark_all - x.random), wilcoxon_greater(x.dark_all - x.middle),
                      wilcoxon_greater(delta - min_delta),
                      prediction_greater(float(delta.mean()), each.mean(1)) if each is not None else 1.0,
                      wilcoxon_greater((1 - min_sink_drop) * x.sink_mass_base - x.sink_mass_dark_sink),
                      wilcoxon_greater(x.dark_sink_rest - x.base_rest)]
    adjusted = holm_by_key(raw)
    out = {}
    for layer, x in grid.items():
        p_rand, p_mid, p_min, p_subspaces, p_mass, p_sink = adjusted[layer]
        delta = x.dark_all - x.base
        sink_delta, all_rest_delta = x.dark_sink_rest - x.base_rest, x.dark_all_rest - x.base_rest
        mass_base, mass_dark = float(np.mean(x.sink_mass_base)), float(np.mean(x.sink_mass_dark_sink))
        mass_lost = x.sink_mass_base - x.sink_mass_dark_sink
        sink_drop = float(mass_lost.mean() / mass_base) if mass_base > 0 else float("nan")
        a = bool(delta.mean() >= min_delta and max(p_rand, p_mid, p_min, p_subspaces) < alpha)
        b = bool(sink_drop >= min_sink_drop and p_mass < alpha and p_sink < alpha)
        random_costs = [] if x.random_each is None else (np.asarray(x.random_each, float) - x.base).mean(1)
        out[layer] = (a and b, {
            "base_nll": float(x.base.mean()),
            "dark_all_nll": float(x.dark_all.mean()),
            "dark_all_delta": float(delta.mean()),
            "dark_all_delta_ci": bootstrap_ci(delta, n_boot),
            "random_delta": float((x.random - x.base).mean()),
            "random_delta_ci": bootstrap_ci(x.random - x.base, n_boot),
            "random_delta_per_subspace": [round(float(c), 6) for c in random_costs],
            "middle_delta": float((x.middle - x.base).mean()),
            "middle_delta_ci": bootstrap_ci(x.middle - x.base, n_boot),
            "p_vs_random": p_rand, "p_vs_middle": p_mid, "p_above_min_delta": p_min,
            "p_vs_random_subspaces": p_subspaces,
            "p_vs_random_raw": raw[layer][0], "p_vs_middle_raw": raw[layer][1], "p_above_min_delta_raw": raw[layer][2],
            "p_vs_random_subspaces_raw": raw[layer][3],
            # (b): NLL of the predictions made at positions >= 1; the all-prediction mean beside it
            "dark_sink_delta": float(sink_delta.mean()),
            "dark_sink_delta_ci": bootstrap_ci(sink_delta, n_boot),
            "dark_sink_delta_all_predictions": float((x.dark_sink - x.base).mean()),
            "p_dark_sink": p_sink, "p_dark_sink_raw": raw[layer][5],
            "sink_mass_base": mass_base,
            "sink_mass_dark_sink": mass_dark,
            "sink_mass_drop": sink_drop,
            "sink_mass_drop_ci": ratio_ci(mass_lost, x.sink_mass_base, n_boot),
            "p_sink_mass_drop": p_mass, "p_sink_mass_drop_raw": raw[layer][4],
            # how much of the all-position damage removing the tail at the sink alone reproduces
            "sink_share_of_damage": float(sink_delta.mean() / all_rest_delta.mean()) if all_rest_delta.mean() > 0 else float("nan"),
            "sink_share_of_damage_ci": ratio_ci(sink_delta, all_rest_delta, n_boot),
            "claim_a": a,
            "claim_b": b,
        })
    return out


# --------------------------------------------------------------------------- H2
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
    significantly below it (Wilcoxon of tolerance - rise).
    Returns (layer, k) -> (passed, metrics) for H2a and (layer, 'b') -> ... for H2b."""
    grid_b = grid_b or {}
    raw = {key: [wilcoxon_greater(x.head - x.omega)] for key, x in grid.items()}
    raw.update({(layer, "b"): [wilcoxon_greater(tolerance - (x.omega - x.base)) if x.k is not None else 1.0]
                for layer, x in grid_b.items()})
    adjusted = holm_by_key(raw)
    out = {}
    for key, x in grid.items():
        gap = x.head - x.omega
        p = adjusted[key][0]
        out[key] = (bool(p < alpha and gap.mean() > 0), {
            "base_nll": float(x.base.mean()),
            "omega_nll": float(x.omega.mean()),
            "head_nll": float(x.head.mean()),
            "omega_delta": float((x.omega - x.base).mean()),
            "omega_delta_ci": bootstrap_ci(x.omega - x.base, n_boot),
            "head_delta": float((x.head - x.base).mean()),
            "head_delta_ci": bootstrap_ci(x.head - x.base, n_boot),
            "head_minus_omega": float(gap.mean()),
            "head_minus_omega_ci": bootstrap_ci(gap, n_boot),
            "p_value": p,
            "p_value_raw": raw[key][0],
            "omega_kept_dims": x.omega_dim,
            "head_kept_dims": x.head_dim,
        })
    for layer, x in grid_b.items():
        rise = x.omega - x.base
        ci = bootstrap_ci(rise, n_boot)
        p = adjusted[layer, "b"][0]
        passed = x.k is not None and ci[1] <= tolerance and p < alpha
        out[layer, "b"] = (bool(passed), {
            "k": x.k, "deleted_share": x.deleted_share, "min_frontier": min_frontier, "tolerance": tolerance,
            "base_nll": float(x.base.mean()), "omega_nll": float(x.omega.mean()),
            "omega_delta": float(rise.mean()), "omega_delta_ci": ci,
            "p_value": p, "p_value_raw": raw[layer, "b"][0],
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


# --------------------------------------------------------------------------- H3
def h3_raw(table, min_sinks: int = 2, position_bins: int = 10, permutations: int = 2000, seed: int = 0) -> dict:
    """Per-window statistics of H3's four claims on one PositionTable, each tested over the
    windows where it is defined (how many is recorded as n_windows), by tests conditional
    on each window (sinkbench.h3_stats). Column c of the table is position c + 1.
    Returns claim -> (raw p, metrics)."""
    from .h3_stats import frequent_enrichment, label_permutation_greater, stratified_correlation

    sink, cos = table.sink_like, table.profile_cos
    n = sink.shape[0]
    # 1. sink-like positions fall on frequent tokens more than the window's base rate: the number
    #    of them on frequent tokens, summed over windows, against its exact hypergeometric null
    p1, d1, m1 = frequent_enrichment(sink, table.frequent)
    # 2. attention received and dark ratio correlate within position bins (both may drift
    #    with position; within a bin, position no longer explains either)
    p2, rhos = stratified_correlation(table.bar_ratio, table.dark_ratio, position_bins, permutations, seed)
    # 3. band profile closer to position 0's: sink-like minus ordinary positions, labels
    #    permuted within position bins
    p3, d3 = label_permutation_greater(cos, sink, position_bins, permutations, seed)
    has = sink.sum(1) > 0
    # 4. a typical window has at least min_sinks sink-like positions (position 0 counts when
    #    it meets the same rule); windows with none count too
    counts = sink.sum(1) + table.position0_sink_like.astype(int)
    many = int((counts >= min_sinks).sum())
    return {
        "1": (p1, {"effect": mean_or_nan(d1), "values": d1, "n_windows": int(d1.size),
                   "test": "exact: summed hypergeometric counts (within-window permutation)", **m1}),
        "2": (p2, {"effect": mean_or_nan(rhos), "values": rhos, "n_windows": int(rhos.size),
                   "test": f"within-bin permutation ({position_bins} position bins, {permutations} permutations)"}),
        "3": (p3, {"effect": mean_or_nan(d3), "values": d3, "n_windows": int(d3.size),
                   "test": f"label permutation within {position_bins} position bins ({permutations} permutations)",
                   "cos_sink_like": mean_or_nan([cos[i][sink[i]].mean() for i in np.flatnonzero(has)]),
                   "cos_ordinary": float(cos[~sink].mean()) if (~sink).any() else float("nan")}),
        "4": (binomial_greater(many, n, 0.5), {"effect": many / n if n else float("nan"), "n_windows": int(n),
                                               "windows_with_min_sinks": many, "min_sinks": min_sinks,
                                               "per_window_counts": counts.tolist(),
                                               "mean_count": float(counts.mean()) if n else float("nan")}),
    }


H3_EFFECTS = {"1": "frequent_share_minus_base_rate", "2": "within_window_spearman",
              "3": "cos_sink_like_minus_ordinary", "4": "share_windows_with_min_sinks"}


def h3_verdicts(raws: dict, *, alpha: float, n_boot: int) -> dict:
    """raws: condition -> h3_raw(...). Holm over conditions x claims. A claim passes when its
    Holm-adjusted p < alpha and its effect points the claimed way (> 0; claim 4: more than
    half of the windows). Returns (condition, claim) -> (passed, metrics)."""
    raw = {(cond, claim): [r[claim][0]] for cond, r in raws.items() for claim in r}
    adjusted = holm_by_key(raw)
    out = {}
    for (cond, claim), (p,) in adjusted.items():
        p_raw, m = raws[cond][claim]
        m = dict(m)
        name = H3_EFFECTS[claim]
        m[name] = m.pop("effect")
        if claim == "4":
            m[name + "_ci"] = proportion_ci(m["windows_with_min_sinks"], m["n_windows"])
            passed = m[name] > 0.5
        else:
            values = m.pop("values")
            m[name + "_ci"] = bootstrap_ci(values, n_boot)
            m["per_window"] = np.round(values, 4).tolist()
            passed = m[name] > 0
        m.update(p_value=p, p_value_raw=float(p_raw))
        out[cond, claim] = (bool(passed and p < alpha), m)
    return out


# --------------------------------------------------------------------------- H4
def h4a_raw(w: dict, rho: float, n_boot: int, min_recovered: float = 0.5) -> dict:
    """w: write mode -> WriteResult for one (layer, target). Raw p-values per claim case."""
    base = w["base"]
    out = {}
    for variant in ("add", "transplant"):
        x = w[variant]
        ratio = float(x.att_t.mean() / max(base.att_t.mean(), 1e-12))
        # capture >= rho as a ratio of means, tested per window: att_t(edit) - rho * att_t(base) > 0
        out["A1", variant] = ([wilcoxon_greater(x.att_t - rho * base.att_t), wilcoxon_greater(base.att_0 - x.att_0)], {
            "att_t_base": float(base.att_t.mean()), "att_t_edit": float(x.att_t.mean()), "capture_ratio": ratio,
            "capture_ratio_ci": ratio_ci(x.att_t, base.att_t, n_boot),
            "att_0_base": float(base.att_0.mean()), "att_0_edit": float(x.att_0.mean()), "rho": rho,
        })
    ctrl, add = w["control"], w["add"]
    ctrl_ratio = float(ctrl.att_t.mean() / max(base.att_t.mean(), 1e-12))
    # the dark write beats the control, the dark write captures >= rho, the control stays below rho
    out["A2", "add"] = ([wilcoxon_greater(add.att_t - ctrl.att_t), wilcoxon_greater(add.att_t - rho * base.att_t),
                         wilcoxon_greater(rho * base.att_t - ctrl.att_t)], {
        "att_t_dark": float(add.att_t.mean()), "att_t_control": float(ctrl.att_t.mean()),
        "control_capture_ratio": ctrl_ratio, "dark_capture_ratio": float(add.att_t.mean() / max(base.att_t.mean(), 1e-12)),
        "dark_minus_control_ci": bootstrap_ci(add.att_t - ctrl.att_t, n_boot), "rho": rho,
    })
    broken, rescued = w["broken"].nll_after - base.nll_after, w["transplant"].nll_after - base.nll_after
    # below 1e-3 nats there is nothing to recover and the share is meaningless
    share = float((broken.mean() - rescued.mean()) / broken.mean()) if broken.mean() > 1e-3 else float("nan")
    # recovered share >= min_recovered as a ratio of means, tested per window
    out["A3", "transplant"] = ([wilcoxon_greater((broken - rescued) - min_recovered * broken)], {
        "delta_broken": float(broken.mean()), "delta_broken_ci": bootstrap_ci(broken, n_boot),
        "delta_rescued": float(rescued.mean()),
        "recovered_share": share, "recovered_share_ci": ratio_ci(broken - rescued, broken, n_boot),
        "nll_after_base": float(base.nll_after.mean()), "min_recovered": min_recovered,
    })
    return out


def h4a_verdicts(raws: dict, *, alpha: float) -> dict:
    """raws: (layer, target) -> h4a_raw(...). Holm over every p-value of the model's grid.
    Every minimum is tested, not only compared with a point estimate:
    A1: capture ratio >= rho (tested) and attention to 0 falls; A2: the dark write beats the
    control, captures >= rho, and the control stays below rho (each tested); A3: the
    transplant recovers >= min_recovered of the broken sink's NLL damage (tested).
    Returns (layer, target, claim, variant) -> (passed, metrics)."""
    raw = {(lt, case): ps for lt, r in raws.items() for case, (ps, _) in r.items()}
    adjusted = holm_by_key(raw)
    out = {}
    for (lt, case), p_adj in adjusted.items():
        ps, m = raws[lt][case]
        m = dict(m, p_values=p_adj, p_values_raw=[float(p) for p in ps])
        claim = case[0]
        if claim == "A1":
            passed = all(p < alpha for p in p_adj) and m["capture_ratio"] >= m["rho"]
        elif claim == "A2":
            passed = all(p < alpha for p in p_adj) and m["control_capture_ratio"] < m["rho"] <= m["dark_capture_ratio"]
        else:
            passed = p_adj[0] < alpha and m["delta_broken"] > 0 and m["recovered_share"] >= m["min_recovered"]
        out[lt + case] = (bool(passed), m)
    return out


def h4b_verdicts(grid: dict, *, alpha: float, n_boot: int) -> dict:
    """grid: layer -> dict of per-window arrays: att_k, att_0 (non-trigger queries after k),
    nll_base, nll_dark_k, nll_dark_0 (predictions made at positions other than 0, k-1 and k:
    those are edited directly or predict the <sink> token itself), dark_ratio_k,
    dark_ratio_ordinary. Holm over layers x 3 tests. Returns (layer, 'B1'|'B2') -> (passed, metrics)."""
    raw = {l: [wilcoxon_greater(x["att_k"] - x["att_0"]), wilcoxon_greater(x["nll_dark_k"] - x["nll_dark_0"]),
               wilcoxon_greater(x["dark_ratio_k"] - x["dark_ratio_ordinary"])] for l, x in grid.items()}
    adj = holm_by_key(raw)
    out = {}
    for l, x in grid.items():
        p_att, p_nll, p_dark = adj[l]
        att_gap, nll_gap = x["att_k"] - x["att_0"], x["nll_dark_k"] - x["nll_dark_0"]
        out[l, "B1"] = (bool(p_att < alpha and p_nll < alpha and att_gap.mean() > 0 and nll_gap.mean() > 0), {
            "att_k": float(x["att_k"].mean()), "att_0": float(x["att_0"].mean()),
            "att_k_minus_0_ci": bootstrap_ci(att_gap, n_boot),
            "nll_base": float(x["nll_base"].mean()),
            "nll_dark_k": float(x["nll_dark_k"].mean()), "nll_dark_0": float(x["nll_dark_0"].mean()),
            "nll_dark_k_minus_0_ci": bootstrap_ci(nll_gap, n_boot),
            "p_attention": p_att, "p_nll": p_nll})
        gap = x["dark_ratio_k"] - x["dark_ratio_ordinary"]
        out[l, "B2"] = (bool(p_dark < alpha and gap.mean() > 0), {
            "dark_ratio_k": float(x["dark_ratio_k"].mean()), "dark_ratio_ordinary": float(x["dark_ratio_ordinary"].mean()),
            "difference_ci": bootstrap_ci(gap, n_boot), "p_value": p_dark})
    return out


# --------------------------------------------------------------------------- H5
@dataclass
class H5Inputs:
    """Per-window arrays [N] on the test windows, for a writer chosen on selection windows.
    NLLs are of the predictions made at positions >= 1 (the edit is at the sink)."""

    share: np.ndarray  # the writer's dark write / dark norm present after it
    base_nll: np.ndarray
    base_mass: np.ndarray  # sink mass of the layers after the writer
    removed_nll: np.ndarray  # the writer's band-K write removed at the sink
    removed_mass: np.ndarray
    control_nll: np.ndarray  # equal-norm removals of other components, averaged per window
    control_mass: np.ndarray


def h5_verdicts(x: H5Inputs, *, alpha: float, min_share: float, min_sink_drop: float, min_nll_rise: float,
                n_boot: int) -> dict:
    """Claim 1: the writer wrote >= min_share of the dark norm present after it (mean share
    at or above it, and the share significantly above it). Claim 2: removing its dark write
    at the sink lowers the later sink mass and raises NLL, significantly against the base run,
    and beyond the controls by more than min_sink_drop (relative to the base sink mass) and
    min_nll_rise nats (both tested against these minimums). Holm over the five p-values."""
    mass_vs_ctrl = x.control_mass - x.removed_mass
    nll_vs_ctrl = x.removed_nll - x.control_nll
    # the minimums beyond the controls are tested: (control - removed) - min_sink_drop * base
    # mass > 0 is the relative drop against its minimum, per window
    raw = [wilcoxon_greater(x.share - min_share), wilcoxon_greater(x.base_mass - x.removed_mass),
           wilcoxon_greater(x.removed_nll - x.base_nll), wilcoxon_greater(mass_vs_ctrl - min_sink_drop * x.base_mass),
           wilcoxon_greater(nll_vs_ctrl - min_nll_rise)]
    p = holm(raw)
    mass_base = float(np.mean(x.base_mass))
    drop = float(mass_vs_ctrl.mean() / mass_base) if mass_base > 0 else float("nan")
    c1 = {"dark_share": float(x.share.mean()), "dark_share_ci": bootstrap_ci(x.share, n_boot), "min_share": min_share,
          "p_value": float(p[0]), "p_value_raw": raw[0]}
    c2 = {"sink_mass_base": mass_base, "sink_mass_removed": float(x.removed_mass.mean()),
          "sink_mass_control": float(x.control_mass.mean()),
          "sink_drop_beyond_control": drop, "sink_drop_beyond_control_ci": ratio_ci(mass_vs_ctrl, x.base_mass, n_boot),
          "nll_base": float(x.base_nll.mean()), "nll_removed": float(x.removed_nll.mean()),
          "nll_control": float(x.control_nll.mean()), "nll_delta_ci": bootstrap_ci(x.removed_nll - x.base_nll, n_boot),
          "nll_rise_beyond_control": float(nll_vs_ctrl.mean()), "nll_rise_beyond_control_ci": bootstrap_ci(nll_vs_ctrl, n_boot),
          "min_sink_drop": min_sink_drop, "min_nll_rise": min_nll_rise,
          "p_values": {"mass_vs_base": float(p[1]), "nll_vs_base": float(p[2]), "mass_vs_control": float(p[3]),
                       "nll_vs_control": float(p[4])}}
    ok2 = all(q < alpha for q in p[1:]) and drop >= min_sink_drop and c2["nll_rise_beyond_control"] >= min_nll_rise
    return {"1": (bool(x.share.mean() >= min_share and p[0] < alpha), c1), "2": (bool(ok2), c2)}
