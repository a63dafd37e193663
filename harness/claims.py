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
