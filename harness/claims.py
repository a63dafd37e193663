"""H1 and H2 verdicts from per-sequence measurements (pure functions of arrays).

Each hypothesis's p-values are Holm-corrected across its whole parameter grid
(all layers, and all k for H2) of one model, then compared with alpha."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stats import bootstrap_ci, holm, wilcoxon_greater


@dataclass
class H1Inputs:
    """Per-sequence arrays [N] for one layer."""

    base: np.ndarray
    dark_all: np.ndarray
    random: np.ndarray  # averaged over seeds
    middle: np.ndarray
    dark_sink: np.ndarray
    sink_mass_base: np.ndarray  # post-filter layers of the unfiltered run
    sink_mass_dark_sink: np.ndarray  # post-filter layers, dark tail removed at the sink


def h1_verdicts(grid: dict, *, alpha: float, min_delta: float, min_sink_drop: float, n_boot: int) -> dict:
    """grid: layer -> H1Inputs. Returns layer -> (passed, metrics)."""
    raw = {}
    for layer, x in grid.items():
        raw[layer] = [
            wilcoxon_greater(x.dark_all - x.random),
            wilcoxon_greater(x.dark_all - x.middle),
            wilcoxon_greater(x.dark_sink - x.base),
        ]
    adjusted = dict(zip(raw, holm(np.concatenate(list(raw.values()))).reshape(len(raw), 3))) if raw else {}
    out = {}
    for layer, x in grid.items():
        p_rand, p_mid, p_sink = adjusted[layer]
        delta = x.dark_all - x.base
        mass_base, mass_dark = float(np.mean(x.sink_mass_base)), float(np.mean(x.sink_mass_dark_sink))
        sink_drop = 1.0 - mass_dark / mass_base if mass_base > 0 else float("nan")
        a = bool(delta.mean() >= min_delta and p_rand < alpha and p_mid < alpha)
        b = bool(sink_drop >= min_sink_drop and p_sink < alpha)
        out[layer] = (a and b, {
            "base_nll": float(x.base.mean()),
            "dark_all_nll": float(x.dark_all.mean()),
            "dark_all_delta": float(delta.mean()),
            "dark_all_delta_ci": bootstrap_ci(delta, n_boot),
            "random_delta": float((x.random - x.base).mean()),
            "random_delta_ci": bootstrap_ci(x.random - x.base, n_boot),
            "middle_delta": float((x.middle - x.base).mean()),
            "middle_delta_ci": bootstrap_ci(x.middle - x.base, n_boot),
            "p_vs_random": float(p_rand),
            "p_vs_middle": float(p_mid),
            "p_vs_random_raw": raw[layer][0],
            "p_vs_middle_raw": raw[layer][1],
            "dark_sink_delta": float((x.dark_sink - x.base).mean()),
            "dark_sink_delta_ci": bootstrap_ci(x.dark_sink - x.base, n_boot),
            "p_dark_sink": float(p_sink),
            "p_dark_sink_raw": raw[layer][2],
            "sink_mass_base": mass_base,
            "sink_mass_dark_sink": mass_dark,
            "sink_mass_drop": sink_drop,
            "claim_a": a,
            "claim_b": b,
        })
    return out


@dataclass
class H2Inputs:
    """Per-sequence arrays [N] for one (layer, k)."""

    base: np.ndarray
    omega: np.ndarray  # Omega_k: bands 1..k + K
    head: np.ndarray  # head_{k+1}: bands 1..k+1 (same number of kept dimensions)
    omega_dim: int
    head_dim: int


def h2_verdicts(grid: dict, *, alpha: float, n_boot: int) -> dict:
    """grid: (layer, k) -> H2Inputs. Returns (layer, k) -> (passed, metrics)."""
    keys = list(grid)
    raw = [wilcoxon_greater(grid[key].head - grid[key].omega) for key in keys]
    adjusted = holm(raw) if keys else []
    out = {}
    for key, p_raw, p in zip(keys, raw, adjusted):
        x = grid[key]
        gap = x.head - x.omega
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
            "p_value": float(p),
            "p_value_raw": float(p_raw),
            "omega_kept_dims": x.omega_dim,
            "head_kept_dims": x.head_dim,
        })
    return out


def compression_frontier(deltas: dict, deleted_share: dict, tolerance: float) -> dict:
    """Largest share of dimensions an Omega_k deletes while mean NLL rises by at most
    `tolerance` nats. deltas, deleted_share: k -> value."""
    ok = [k for k, d in deltas.items() if d <= tolerance]
    if not ok:
        return {"share_deleted": 0.0, "k": None, "tolerance": tolerance}
    best = max(ok, key=lambda k: deleted_share[k])
    return {"share_deleted": float(deleted_share[best]), "k": best, "tolerance": tolerance,
            "delta_at_k": float(deltas[best])}


# --------------------------------------------------------------------------- H3
def h3_raw(table) -> dict:
    """Raw p-values and effect sizes of H3's four claims on one PositionTable."""
    from scipy import stats

    sink, freq = table.sink_like.ravel(), table.frequent.ravel()
    n_sink = int(sink.sum())
    # 1. sinks go to frequent tokens (one-sided Fisher exact)
    a, b = int((sink & freq).sum()), int((sink & ~freq).sum())
    c, d = int((~sink & freq).sum()), int((~sink & ~freq).sum())
    p1 = float(stats.fisher_exact([[a, b], [c, d]], alternative="greater")[1]) if n_sink else 1.0
    # 2. sinks are dark: attention received vs dark ratio (Spearman, one-sided)
    rho, p2 = stats.spearmanr(table.bar_ratio.ravel(), table.dark_ratio.ravel(), alternative="greater")
    # 3. same profile as position 0: cosine of band profiles, sink-like vs ordinary
    cos = table.profile_cos.ravel()
    if n_sink and (~sink).any():
        p3 = float(stats.mannwhitneyu(cos[sink], cos[~sink], alternative="greater").pvalue)
    else:
        p3 = 1.0
    # 4. more than one sink: sink-like positions per window beyond position 0
    per_seq = table.sink_like.sum(1)
    p4 = wilcoxon_greater(per_seq.astype(float))
    return {
        "1": (p1, {"sink_frequent": a, "sink_other": b, "ordinary_frequent": c, "ordinary_other": d,
                   "frequent_share_sinks": a / n_sink if n_sink else None,
                   "frequent_share_all": (a + c) / max(1, a + b + c + d)}),
        "2": (float(p2) if np.isfinite(p2) else 1.0, {"spearman_rho": float(rho)}),
        "3": (p3, {"cos_sink_like": float(cos[sink].mean()) if n_sink else None,
                   "cos_ordinary": float(cos[~sink].mean())}),
        "4": (p4, {"per_seq_counts": per_seq.tolist(), "mean_count": float(per_seq.mean())}),
    }


def h3_verdicts(raws: dict, *, alpha: float, n_boot: int) -> dict:
    """raws: condition -> h3_raw(...). Holm over conditions x claims.
    Returns (condition, claim) -> (passed, metrics)."""
    keys = [(cond, claim) for cond, r in raws.items() for claim in r]
    adjusted = dict(zip(keys, holm([raws[c][k][0] for c, k in keys]))) if keys else {}
    out = {}
    for cond, claim in keys:
        p_raw, metrics = raws[cond][claim]
        m = dict(metrics, p_value=float(adjusted[cond, claim]), p_value_raw=float(p_raw))
        passed = m["p_value"] < alpha
        if claim == "2":
            passed = passed and m["spearman_rho"] > 0
        if claim == "3":
            passed = passed and m["cos_sink_like"] is not None and m["cos_sink_like"] > m["cos_ordinary"]
        if claim == "4":
            m["mean_count_ci"] = bootstrap_ci(np.asarray(m["per_seq_counts"], float), n_boot)
            passed = passed and m["mean_count_ci"][0] > 0
        out[cond, claim] = (bool(passed), m)
    return out


# --------------------------------------------------------------------------- H4
def ratio_ci(num, den, n_boot: int, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of mean(num) / mean(den), resampling windows jointly."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), (n_boot, len(num)))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num[idx].mean(1) / den[idx].mean(1)
    r = r[np.isfinite(r)]
    return (float(np.quantile(r, 0.025)), float(np.quantile(r, 0.975))) if r.size else (float("nan"), float("nan"))


def h4a_raw(w: dict, rho: float, n_boot: int) -> dict:
    """w: write mode -> WriteResult for one (layer, target). Raw p-values per claim case."""
    base = w["base"]
    out = {}
    for variant in ("add", "transplant"):
        x = w[variant]
        ratio = float(x.att_t.mean() / max(base.att_t.mean(), 1e-12))
        out["A1", variant] = ([wilcoxon_greater(x.att_t - base.att_t), wilcoxon_greater(base.att_0 - x.att_0)], {
            "att_t_base": float(base.att_t.mean()), "att_t_edit": float(x.att_t.mean()), "capture_ratio": ratio,
            "capture_ratio_ci": ratio_ci(x.att_t, base.att_t, n_boot),
            "att_0_base": float(base.att_0.mean()), "att_0_edit": float(x.att_0.mean()), "rho": rho,
        })
    ctrl, add = w["control"], w["add"]
    ctrl_ratio = float(ctrl.att_t.mean() / max(base.att_t.mean(), 1e-12))
    out["A2", "add"] = ([wilcoxon_greater(add.att_t - ctrl.att_t)], {
        "att_t_dark": float(add.att_t.mean()), "att_t_control": float(ctrl.att_t.mean()),
        "control_capture_ratio": ctrl_ratio, "dark_capture_ratio": float(add.att_t.mean() / max(base.att_t.mean(), 1e-12)),
        "rho": rho,
    })
    broken, rescued = w["broken"].nll_after - base.nll_after, w["transplant"].nll_after - base.nll_after
    # below 1e-3 nats there is nothing to recover and the share is meaningless
    share = float((broken.mean() - rescued.mean()) / broken.mean()) if broken.mean() > 1e-3 else float("nan")
    out["A3", "transplant"] = ([wilcoxon_greater(broken - rescued)], {
        "delta_broken": float(broken.mean()), "delta_rescued": float(rescued.mean()),
        "recovered_share": share, "recovered_share_ci": ratio_ci(broken - rescued, broken, n_boot),
        "nll_after_base": float(base.nll_after.mean()),
    })
    return out


def h4a_verdicts(raws: dict, *, alpha: float) -> dict:
    """raws: (layer, target) -> h4a_raw(...). Holm over every p-value of the model's grid.
    Returns (layer, target, claim, variant) -> (passed, metrics)."""
    keys = [(lt, case) for lt, r in raws.items() for case in r]
    flat = [p for lt, case in keys for p in raws[lt][case][0]]
    adj = iter(holm(flat)) if flat else iter(())
    out = {}
    for lt, case in keys:
        ps, m = raws[lt][case]
        p_adj = [float(next(adj)) for _ in ps]
        m = dict(m, p_values=p_adj, p_values_raw=[float(p) for p in ps])
        claim = case[0]
        if claim == "A1":
            passed = all(p < alpha for p in p_adj) and m["capture_ratio"] >= m["rho"]
        elif claim == "A2":
            passed = p_adj[0] < alpha and m["control_capture_ratio"] < m["rho"] and m["dark_capture_ratio"] >= m["rho"]
        else:
            passed = p_adj[0] < alpha and m["delta_broken"] > 0
        out[lt + case] = (bool(passed), m)
    return out


def h4b_verdicts(grid: dict, *, alpha: float, n_boot: int) -> dict:
    """grid: layer -> dict of per-window arrays: att_k, att_0 (non-trigger queries after k),
    nll_dark_k, nll_dark_0, dark_ratio_k, dark_ratio_ordinary. Holm over layers x 3 tests.
    Returns (layer, 'B1'|'B2') -> (passed, metrics)."""
    raw = {l: [wilcoxon_greater(x["att_k"] - x["att_0"]), wilcoxon_greater(x["nll_dark_k"] - x["nll_dark_0"]),
               wilcoxon_greater(x["dark_ratio_k"] - x["dark_ratio_ordinary"])] for l, x in grid.items()}
    adj = dict(zip(raw, holm(np.concatenate(list(raw.values()))).reshape(len(raw), 3))) if raw else {}
    out = {}
    for l, x in grid.items():
        p_att, p_nll, p_dark = (float(p) for p in adj[l])
        out[l, "B1"] = (bool(p_att < alpha and p_nll < alpha), {
            "att_k": float(x["att_k"].mean()), "att_0": float(x["att_0"].mean()),
            "nll_base": float(x["nll_base"].mean()),
            "nll_dark_k": float(x["nll_dark_k"].mean()), "nll_dark_0": float(x["nll_dark_0"].mean()),
            "nll_dark_k_minus_0_ci": bootstrap_ci(x["nll_dark_k"] - x["nll_dark_0"], n_boot),
            "p_attention": p_att, "p_nll": p_nll})
        out[l, "B2"] = (bool(p_dark < alpha), {
            "dark_ratio_k": float(x["dark_ratio_k"].mean()), "dark_ratio_ordinary": float(x["dark_ratio_ordinary"].mean()),
            "difference_ci": bootstrap_ci(x["dark_ratio_k"] - x["dark_ratio_ordinary"], n_boot), "p_value": p_dark})
    return out


# --------------------------------------------------------------------------- H5
def h5_verdicts(att, chosen: int, removal: dict, base_nll, base_mass, *, alpha: float, min_share: float, n_boot: int) -> dict:
    """Claim 1: component `chosen` (the largest dark writer in the first half) writes >= min_share
    of the dark norm present after it. Claim 2: removing its dark write at the sink lowers
    post-component sink mass and raises NLL, more than an equal-norm removal from another
    component. removal: {'dark': (nll, mass), 'control': (nll, mass)}. Holm over all p-values."""
    share = att.dark_write[:, chosen] / np.maximum(att.dark_after[:, chosen], 1e-12)
    (nll_d, mass_d), (nll_c, mass_c) = removal["dark"], removal["control"]
    raw = [wilcoxon_greater(share - min_share), wilcoxon_greater(base_mass - mass_d), wilcoxon_greater(nll_d - base_nll),
           wilcoxon_greater(mass_c - mass_d), wilcoxon_greater(nll_d - nll_c)]
    p = holm(raw)
    c1 = {"component": att.names[chosen], "dark_share": float(share.mean()), "dark_share_ci": bootstrap_ci(share, n_boot),
          "dark_write_norm": float(att.dark_write[:, chosen].mean()), "dark_norm_final": float(att.dark_final.mean()),
          "min_share": min_share, "p_value": float(p[0]), "p_value_raw": raw[0], "attribution_sum_error": att.sum_error,
          "mean_dark_write_per_component": dict(zip(att.names, att.dark_write.mean(0).round(4).tolist()))}
    c2 = {"component": att.names[chosen], "sink_mass_base": float(np.mean(base_mass)), "sink_mass_removed": float(mass_d.mean()),
          "sink_mass_control": float(mass_c.mean()), "nll_base": float(np.mean(base_nll)), "nll_removed": float(nll_d.mean()),
          "nll_control": float(nll_c.mean()), "nll_delta_ci": bootstrap_ci(nll_d - base_nll, n_boot),
          "p_values": {"mass_vs_base": float(p[1]), "nll_vs_base": float(p[2]), "mass_vs_control": float(p[3]), "nll_vs_control": float(p[4])}}
    return {"1": (bool(share.mean() >= min_share and p[0] < alpha), c1),
            "2": (bool(all(x < alpha for x in p[1:])), c2)}
