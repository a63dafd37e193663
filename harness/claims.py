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
