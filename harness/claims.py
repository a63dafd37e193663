"""H1-H5 verdicts from per-window measurements (pure functions of arrays).

The window is the unit of replication: every test below runs over one number per
window. Each claim is an effect size with a 95% interval (studentized bootstrap for a
mean and for a ratio of means, Clopper-Pearson for a proportion) plus a one-sided test
whose estimand is the claim's: a mean, or a ratio of means through the linear contrast
a - c * b (stats.mean_greater, skew-guarded). p-values are Holm-corrected over the
hypothesis's whole grid on one model (all layers, k, conditions, claims), then compared
with alpha. Every resampling is seeded from the case's identity (stats.case_seed).
docs/methods.md states every criterion and why; docs/calibration.md measures them."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from .stats import (binomial_greater, case_seed, holm, informative, lag1_autocorrelation, mean_ci, mean_greater,
                    prediction_greater, proportion_ci, ratio_ci)


def holm_by_key(raw: dict) -> dict:
    """raw: key -> list of raw p-values. Holm over all of them; same shape back."""
    flat = [p for ps in raw.values() for p in ps]
    adjusted = iter(holm(flat)) if flat else iter(())
    return {key: [float(next(adjusted)) for _ in ps] for key, ps in raw.items()}


def mean_or_nan(x) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def test_mean(values, *key) -> float:
    """mean_greater with the seed of this case and test (key: hypothesis, case, test name)."""
    return mean_greater(values, seed=case_seed(*key))


def ci_mean(values, n_boot: int, *key) -> tuple[float, float]:
    return mean_ci(values, n_boot, seed=case_seed("ci", *key))


def ci_ratio(num, den, n_boot: int, *key) -> tuple[float, float]:
    return ratio_ci(num, den, n_boot, seed=case_seed("ci", *key))


@contextlib.contextmanager
def without_intervals():
    """Inside the block ci_mean and ci_ratio return NaN. Intervals are not verdicts (except
    H2b's upper end, whose callers keep them): verdict stability and calibration skip them,
    which makes a resampled verdict several times cheaper and changes no pass/fail."""
    global ci_mean, ci_ratio
    saved = ci_mean, ci_ratio
    ci_mean = ci_ratio = _no_interval
    try:
        yield
    finally:
        ci_mean, ci_ratio = saved


def _no_interval(*args, **kwargs) -> tuple[float, float]:
    return (float("nan"), float("nan"))


def window_counts(*contrasts) -> dict:
    """How many windows the tests of a case actually used: all of them, the fewest
    informative (finite, non-zero) ones over its contrasts, the most NaN ones, and the lag-1
    autocorrelation of its first contrast in corpus order (window dependence)."""
    used = [informative(c) for c in contrasts]
    return {"n_windows": used[0].n_total if used else 0,
            "n_informative": min((u.informative for u in used), default=0),
            "n_nan": max((u.n_nan for u in used), default=0),
            "lag1_autocorrelation": lag1_autocorrelation(contrasts[0]) if contrasts else float("nan")}


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
    # [S, N]: each random subspace's NLL (S >= 2 for the subspace test); windows on axis 1
    random_each: np.ndarray | None = field(default=None, metadata={"window_axis": 1})


def h1_verdicts(grid: dict, *, alpha: float, min_delta: float, min_sink_drop: float, n_boot: int) -> dict:
    """grid: layer -> H1Inputs. Holm over layers x 6 tests. Returns layer -> (passed, metrics).
    Every test is of a mean over windows (stats.mean_greater), a ratio of means through its
    linear contrast.
    (a) dark-tail removal at all positions raises mean NLL by more than min_delta (test of
        rise - min_delta), more than the middle band (paired), and more than random
        subspaces of its dimension do: paired over windows against their mean, and as a
        subspace, against the spread of the random subspaces' mean costs (one-sided
        prediction-interval t-test, S - 1 degrees of freedom), so that band K must stand out
        from random subspaces, not only from the few that were drawn;
    (b) dark-tail removal at the sink only drops mean post-filter sink mass by more than
        min_sink_drop of it (test of (1 - min_sink_drop) * base - edited: the ratio-of-means
        drop against its minimum), and the mean NLL of the other predictions rises."""
    raw, contrasts = {}, {}
    for layer, x in grid.items():
        delta = x.dark_all - x.base
        each = None if x.random_each is None else np.asarray(x.random_each, float) - x.base
        c = {"vs_random": x.dark_all - x.random, "vs_middle": x.dark_all - x.middle, "above_min_delta": delta - min_delta,
             "sink_mass_drop": (1 - min_sink_drop) * x.sink_mass_base - x.sink_mass_dark_sink,
             "dark_sink": x.dark_sink_rest - x.base_rest}
        contrasts[layer] = c
        raw[layer] = [test_mean(c["vs_random"], "H1", layer, "vs_random"), test_mean(c["vs_middle"], "H1", layer, "vs_middle"),
                      test_mean(c["above_min_delta"], "H1", layer, "above_min_delta"),
                      prediction_greater(mean_or_nan(delta), np.nanmean(each, 1)) if each is not None else 1.0,
                      test_mean(c["sink_mass_drop"], "H1", layer, "sink_mass_drop"),
                      test_mean(c["dark_sink"], "H1", layer, "dark_sink")]
    adjusted = holm_by_key(raw)
    out = {}
    for layer, x in grid.items():
        p_rand, p_mid, p_min, p_subspaces, p_mass, p_sink = adjusted[layer]
        ci = lambda v, name: ci_mean(v, n_boot, "H1", layer, name)
        delta = x.dark_all - x.base
        sink_delta, all_rest_delta = x.dark_sink_rest - x.base_rest, x.dark_all_rest - x.base_rest
        mass_base, mass_dark = mean_or_nan(x.sink_mass_base), mean_or_nan(x.sink_mass_dark_sink)
        mass_lost = x.sink_mass_base - x.sink_mass_dark_sink
        sink_drop = mean_or_nan(mass_lost) / mass_base if mass_base > 0 else float("nan")
        a = bool(mean_or_nan(delta) >= min_delta and max(p_rand, p_mid, p_min, p_subspaces) < alpha)
        b = bool(sink_drop >= min_sink_drop and p_mass < alpha and p_sink < alpha)
        random_costs = [] if x.random_each is None else np.nanmean(np.asarray(x.random_each, float) - x.base, 1)
        share_rest = mean_or_nan(all_rest_delta)
        out[layer] = (a and b, {
            "base_nll": mean_or_nan(x.base),
            "dark_all_nll": mean_or_nan(x.dark_all),
            "dark_all_delta": mean_or_nan(delta),
            "dark_all_delta_ci": ci(delta, "dark_all_delta"),
            "random_delta": mean_or_nan(x.random - x.base),
            "random_delta_ci": ci(x.random - x.base, "random_delta"),
            "random_delta_per_subspace": [round(float(c), 6) for c in random_costs],
            "middle_delta": mean_or_nan(x.middle - x.base),
            "middle_delta_ci": ci(x.middle - x.base, "middle_delta"),
            "p_vs_random": p_rand, "p_vs_middle": p_mid, "p_above_min_delta": p_min,
            "p_vs_random_subspaces": p_subspaces,
            "p_vs_random_raw": raw[layer][0], "p_vs_middle_raw": raw[layer][1], "p_above_min_delta_raw": raw[layer][2],
            "p_vs_random_subspaces_raw": raw[layer][3],
            # (b): NLL of the predictions made at positions >= 1; the all-prediction mean beside it
            "dark_sink_delta": mean_or_nan(sink_delta),
            "dark_sink_delta_ci": ci(sink_delta, "dark_sink_delta"),
            "dark_sink_delta_all_predictions": mean_or_nan(x.dark_sink - x.base),
            "p_dark_sink": p_sink, "p_dark_sink_raw": raw[layer][5],
            "sink_mass_base": mass_base,
            "sink_mass_dark_sink": mass_dark,
            "sink_mass_drop": sink_drop,
            "sink_mass_drop_ci": ci_ratio(mass_lost, x.sink_mass_base, n_boot, "H1", layer, "sink_mass_drop"),
            "p_sink_mass_drop": p_mass, "p_sink_mass_drop_raw": raw[layer][4],
            # how much of the all-position damage removing the tail at the sink alone reproduces
            "sink_share_of_damage": mean_or_nan(sink_delta) / share_rest if share_rest > 0 else float("nan"),
            "sink_share_of_damage_ci": ci_ratio(sink_delta, all_rest_delta, n_boot, "H1", layer, "share"),
            "claim_a": a,
            "claim_b": b,
            **window_counts(*contrasts[layer].values()),
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
            m[name + "_ci"] = ci_mean(values, n_boot, "H3", cond, claim)
            m["per_window"] = np.round(values, 4).tolist()
            passed = m[name] > 0
        m.update(p_value=p, p_value_raw=float(p_raw))
        out[cond, claim] = (bool(passed and p < alpha), m)
    return out


# --------------------------------------------------------------------------- H4
def h4a_raw(w: dict, rho: float, n_boot: int, min_recovered: float = 0.5, key: tuple = ()) -> dict:
    """w: write mode -> WriteResult for one (layer, target); key: that (layer, target), which
    seeds its resamples. Raw p-values per claim case, each a test of a mean over windows."""
    base = w["base"]
    out = {}
    for variant in ("add", "transplant"):
        x = w[variant]
        ratio = mean_or_nan(x.att_t) / max(mean_or_nan(base.att_t), 1e-12)
        capture, fall = x.att_t - rho * base.att_t, base.att_0 - x.att_0
        # capture >= rho as a ratio of means, tested per window: att_t(edit) - rho * att_t(base) > 0
        out["A1", variant] = ([test_mean(capture, "H4A", key, "A1", variant, "capture"),
                               test_mean(fall, "H4A", key, "A1", variant, "fall")], {
            "att_t_base": mean_or_nan(base.att_t), "att_t_edit": mean_or_nan(x.att_t), "capture_ratio": ratio,
            "capture_ratio_ci": ci_ratio(x.att_t, base.att_t, n_boot, "H4A", key, "A1", variant),
            "att_0_base": mean_or_nan(base.att_0), "att_0_edit": mean_or_nan(x.att_0), "rho": rho,
            **window_counts(capture, fall),
        })
    ctrl, add = w["control"], w["add"]
    ctrl_ratio = mean_or_nan(ctrl.att_t) / max(mean_or_nan(base.att_t), 1e-12)
    # the dark write beats the control and the control stays below rho; that the dark write
    # captures >= rho is A1-add's capture test, which A2's verdict reads (not counted twice)
    beats, below = add.att_t - ctrl.att_t, rho * base.att_t - ctrl.att_t
    out["A2", "add"] = ([test_mean(beats, "H4A", key, "A2", "beats"), test_mean(below, "H4A", key, "A2", "below")], {
        "att_t_dark": mean_or_nan(add.att_t), "att_t_control": mean_or_nan(ctrl.att_t),
        "control_capture_ratio": ctrl_ratio, "dark_capture_ratio": mean_or_nan(add.att_t) / max(mean_or_nan(base.att_t), 1e-12),
        "dark_minus_control_ci": ci_mean(beats, n_boot, "H4A", key, "A2"), "rho": rho,
        **window_counts(beats, below),
    })
    broken, rescued = w["broken"].nll_after - base.nll_after, w["transplant"].nll_after - base.nll_after
    damage = mean_or_nan(broken)
    # below 1e-3 nats there is nothing to recover and the share is meaningless
    share = (damage - mean_or_nan(rescued)) / damage if damage > 1e-3 else float("nan")
    # the damage itself is tested (breaking the sink must hurt), and the recovered share >=
    # min_recovered as a ratio of means, per window
    recovered = (broken - rescued) - min_recovered * broken
    out["A3", "transplant"] = ([test_mean(broken, "H4A", key, "A3", "damage"),
                                test_mean(recovered, "H4A", key, "A3", "recovered")], {
        "delta_broken": damage, "delta_broken_ci": ci_mean(broken, n_boot, "H4A", key, "A3", "damage"),
        "delta_rescued": mean_or_nan(rescued),
        "recovered_share": share, "recovered_share_ci": ci_ratio(broken - rescued, broken, n_boot, "H4A", key, "A3"),
        "nll_after_base": mean_or_nan(base.nll_after), "min_recovered": min_recovered,
        **window_counts(recovered, broken),
    })
    return out


def h4a_verdicts(raws: dict, *, alpha: float) -> dict:
    """raws: (layer, target) -> h4a_raw(...). Holm over every p-value of the model's grid
    (8 per (layer, target)). Every minimum is tested, not only compared with a point estimate:
    A1: capture ratio >= rho (tested) and attention to 0 falls; A2: the dark write beats the
    control, captures >= rho (A1-add's test), and the control stays below rho; A3: breaking
    the sink does damage, and the transplant recovers >= min_recovered of it (both tested).
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
            p_capture = adjusted[lt, ("A1", "add")][0]
            m["p_dark_capture"] = p_capture
            passed = (all(p < alpha for p in p_adj) and p_capture < alpha
                      and m["control_capture_ratio"] < m["rho"] <= m["dark_capture_ratio"])
        else:
            passed = all(p < alpha for p in p_adj) and m["delta_broken"] > 0 and m["recovered_share"] >= m["min_recovered"]
        out[lt + case] = (bool(passed), m)
    return out


def h4b_verdicts(grid: dict, *, alpha: float, n_boot: int) -> dict:
    """grid: layer -> dict of per-window arrays: att_k, att_0 (non-trigger queries after k),
    nll_base, nll_dark_k, nll_dark_0 (predictions made at positions other than 0, k-1 and k:
    those are edited directly or predict the <sink> token itself), dark_ratio_k,
    dark_ratio_ordinary. Holm over layers x 3 tests of means. Returns (layer, 'B1'|'B2') -> (passed, metrics)."""
    raw = {l: [test_mean(x["att_k"] - x["att_0"], "H4B", l, "att"), test_mean(x["nll_dark_k"] - x["nll_dark_0"], "H4B", l, "nll"),
               test_mean(x["dark_ratio_k"] - x["dark_ratio_ordinary"], "H4B", l, "dark")] for l, x in grid.items()}
    adj = holm_by_key(raw)
    out = {}
    for l, x in grid.items():
        p_att, p_nll, p_dark = adj[l]
        att_gap, nll_gap = x["att_k"] - x["att_0"], x["nll_dark_k"] - x["nll_dark_0"]
        out[l, "B1"] = (bool(p_att < alpha and p_nll < alpha and mean_or_nan(att_gap) > 0 and mean_or_nan(nll_gap) > 0), {
            "att_k": mean_or_nan(x["att_k"]), "att_0": mean_or_nan(x["att_0"]),
            "att_k_minus_0_ci": ci_mean(att_gap, n_boot, "H4B", l, "att"),
            "nll_base": mean_or_nan(x["nll_base"]),
            "nll_dark_k": mean_or_nan(x["nll_dark_k"]), "nll_dark_0": mean_or_nan(x["nll_dark_0"]),
            "nll_dark_k_minus_0_ci": ci_mean(nll_gap, n_boot, "H4B", l, "nll"),
            "p_attention": p_att, "p_nll": p_nll, **window_counts(att_gap, nll_gap)})
        gap = x["dark_ratio_k"] - x["dark_ratio_ordinary"]
        out[l, "B2"] = (bool(p_dark < alpha and mean_or_nan(gap) > 0), {
            "dark_ratio_k": mean_or_nan(x["dark_ratio_k"]), "dark_ratio_ordinary": mean_or_nan(x["dark_ratio_ordinary"]),
            "difference_ci": ci_mean(gap, n_boot, "H4B", l, "dark"), "p_value": p_dark, **window_counts(gap)})
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
    contrasts = [x.share - min_share, x.base_mass - x.removed_mass, x.removed_nll - x.base_nll,
                 mass_vs_ctrl - min_sink_drop * x.base_mass, nll_vs_ctrl - min_nll_rise]
    names = ["share", "mass_vs_base", "nll_vs_base", "mass_vs_control", "nll_vs_control"]
    raw = [test_mean(c, "H5", name) for c, name in zip(contrasts, names)]
    p = holm(raw)
    ci = lambda v, name: ci_mean(v, n_boot, "H5", name)
    mass_base = mean_or_nan(x.base_mass)
    drop = mean_or_nan(mass_vs_ctrl) / mass_base if mass_base > 0 else float("nan")
    c1 = {"dark_share": mean_or_nan(x.share), "dark_share_ci": ci(x.share, "share"), "min_share": min_share,
          "p_value": float(p[0]), "p_value_raw": raw[0], **window_counts(contrasts[0])}
    c2 = {"sink_mass_base": mass_base, "sink_mass_removed": mean_or_nan(x.removed_mass),
          "sink_mass_control": mean_or_nan(x.control_mass),
          "sink_drop_beyond_control": drop,
          "sink_drop_beyond_control_ci": ci_ratio(mass_vs_ctrl, x.base_mass, n_boot, "H5", "drop"),
          "nll_base": mean_or_nan(x.base_nll), "nll_removed": mean_or_nan(x.removed_nll),
          "nll_control": mean_or_nan(x.control_nll), "nll_delta_ci": ci(x.removed_nll - x.base_nll, "nll_delta"),
          "nll_rise_beyond_control": mean_or_nan(nll_vs_ctrl), "nll_rise_beyond_control_ci": ci(nll_vs_ctrl, "nll_vs_control"),
          "min_sink_drop": min_sink_drop, "min_nll_rise": min_nll_rise,
          "p_values": {"mass_vs_base": float(p[1]), "nll_vs_base": float(p[2]), "mass_vs_control": float(p[3]),
                       "nll_vs_control": float(p[4])}, **window_counts(*contrasts[3:], *contrasts[1:3])}
    ok2 = all(q < alpha for q in p[1:]) and drop >= min_sink_drop and c2["nll_rise_beyond_control"] >= min_nll_rise
    return {"1": (bool(c1["dark_share"] >= min_share and p[0] < alpha), c1), "2": (bool(ok2), c2)}


def windows_note(m: dict) -> str:
    """What an assertion message says of the estimand and the windows a case's tests used."""
    from .stats import MAX_NAN_SHARE

    n, used, nan = m.get("n_windows"), m.get("n_informative"), m.get("n_nan", 0)
    if n is None:
        return ""
    note = f" [estimand: mean over windows; {used} of {n} windows informative"
    if nan and nan > MAX_NAN_SHARE * n:
        note += f"; {nan} NaN windows, more than {MAX_NAN_SHARE:.0%}: the tests fail rather than test what is left"
    elif nan:
        note += f"; {nan} NaN windows dropped"
    if m.get("fragile"):
        note += f"; fragile verdict: same on {m['verdict_stability']:.0%} of window resamples"
    return note + "]"
