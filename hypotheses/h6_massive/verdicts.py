"""H6 verdicts (massive activations are dark) from arrays: pure functions, like
sinkbench.stats.claims. docs/methods.md §9 states the criteria and the units of replication.

(a) "dark": the band-K share of the massive coordinates' directions (the mean over the set
    of diag(P_K)) against coordinate sets of the same size drawn at random. The share is a
    property of the weights and the set, with no window noise; the question is whether the
    set is special among sets of its size, so the unit of replication is the coordinate
    set: p = (1 + #random sets with share >= observed) / (1 + h6_random_sets), exact under
    "the massive set is a uniformly random set of its size". "Far above" is the point
    minimum share >= h6_min_fold x the chance share (dim band K / d), exact too (the share
    has no sampling error given the set). How stable the set is (and so the verdict) is
    measured on resamples of the selection windows, on which the set was detected.
(b) Sun's intervention at the sink on test windows (the window is the unit): "b-mean",
    setting the sink's massive coordinates to their selection-window mean keeps the NLL of
    the other predictions within h6_tolerance (upper end of the rise's 95% interval <= it,
    and the mean test of tolerance - rise rejects; equivalence-style as H2b); "b-zero",
    zeroing them raises that NLL and lowers the post-edit sink mass (two mean tests).
Holm over the model's four p-values. A model without massive coordinates fails every case
with present = False and a one-line reason (never a crash)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from sinkbench.stats import claims, stability
from sinkbench.stats.claims import mean_or_nan, test_mean, window_counts
from .measurement import H6Test, Magnitudes, detect, random_set_shares, rank_pvalue, set_share
from sinkbench.stats.inference import case_seed, holm

CLAIMS = ("a", "b-mean", "b-zero")


_NULLS: dict = {}  # (diag digest, size, n_sets, seed) -> random shares: stability reuses them


def null_shares(diag: np.ndarray, size: int, n_sets: int, seed: int) -> np.ndarray:
    key = (hashlib.sha256(diag.tobytes()).hexdigest(), size, n_sets, seed)
    if key not in _NULLS:
        _NULLS[key] = random_set_shares(diag, size, n_sets, seed)
    return _NULLS[key]


def dark_share_test(diag: np.ndarray, coords: list[int], n_sets: int) -> dict:
    """Claim (a)'s numbers: the set's band-K share, the chance share, the random sets' share
    (mean and 95th percentile) and the rank p-value."""
    share = set_share(diag, coords)
    null = null_shares(diag, len(coords), n_sets, case_seed("H6", "a", len(coords)))
    chance = float(diag.mean())  # trace(P_K) / d = dim(band K) / d
    return {"dark_share": share, "chance_dark_share": chance, "fold_over_chance": share / chance if chance > 0 else float("nan"),
            "random_set_share_mean": float(null.mean()), "random_set_share_q95": float(np.quantile(null, 0.95)),
            "n_coordinates": len(coords), "random_sets": n_sets, "p_raw": rank_pvalue(share, null)}


def absent(reason: str) -> dict:
    return {c: (False, {"present": False, "reason": reason}) for c in CLAIMS}


def h6_verdicts(mag: Magnitudes, test: H6Test | None, diag: np.ndarray, *, alpha: float, min_ratio: float,
                min_fold: float, tolerance: float, n_sets: int, n_boot: int) -> dict:
    """claim -> (passed, metrics). mag: selection-window magnitudes (detection runs here, so
    stability can redo it on resampled selection windows); test: claim (b)'s arrays, None
    when no massive coordinate sits at the sink at an editable layer."""
    det = detect(mag, min_ratio)
    if not det.present:
        return absent("no massive activations: no coordinate reaches Sun's criterion (|h| > 100 and > 1000x the layer "
                      f"median) or {min_ratio:g}x the layer median on half the selection windows")
    a = dark_share_test(diag, det.coordinates, n_sets)
    raw = [a["p_raw"]]
    if test is not None:
        rise, zero_rise, mass_drop = test.mean_nll - test.base_nll, test.zero_nll - test.base_nll, test.base_mass - test.zero_mass
        contrasts = {"within_tolerance": tolerance - rise, "zero_nll": zero_rise, "zero_mass": mass_drop}
        raw += [test_mean(c, "H6", name) for name, c in contrasts.items()]
    p = holm(raw)
    a.update(p_value=float(p[0]), min_fold=min_fold, coordinates=det.coordinates, criterion=det.criterion, present=True)
    out = {"a": (bool(p[0] < alpha and a["dark_share"] >= min_fold * a["chance_dark_share"]), a)}
    if test is None:
        reason = "massive coordinates present but never at the sink (position 0) at a layer before the last"
        out.update({c: (False, {"present": True, "at_sink": False, "reason": reason}) for c in CLAIMS[1:]})
        return out
    out.update(intervention_verdicts(test, contrasts, p[1:], raw[1:], alpha=alpha, tolerance=tolerance, n_boot=n_boot))
    for c in CLAIMS[1:]:
        out[c][1].update(present=True, at_sink=True, edit_layer=det.edit_layer, sink_coordinates=det.sink_coordinates)
    return out


def intervention_verdicts(t: H6Test, c: dict, p: np.ndarray, raw: list, *, alpha: float, tolerance: float,
                          n_boot: int) -> dict:
    """Claim (b)'s two cases from its contrasts and Holm-adjusted p-values. Intervals go
    through claims.ci_mean / ci_ratio (module attributes: stability skips them where the
    verdict does not read them)."""
    rise = t.mean_nll - t.base_nll
    rise_ci = claims.ci_mean(rise, n_boot, "H6", "mean_rise")
    mean_case = {"nll_base": mean_or_nan(t.base_nll), "nll_mean_set": mean_or_nan(t.mean_nll),
                 "nll_rise_mean_set": mean_or_nan(rise), "nll_rise_mean_set_ci": rise_ci, "tolerance": tolerance,
                 "sink_mass_base": mean_or_nan(t.base_mass), "sink_mass_mean_set": mean_or_nan(t.mean_mass),
                 "p_value": float(p[0]), "p_value_raw": float(raw[0]), **window_counts(c["within_tolerance"])}
    zero_rise, drop = t.zero_nll - t.base_nll, t.base_mass - t.zero_mass
    dark_drop = t.base_mass - t.dark_sink_mass
    mass_base = mean_or_nan(t.base_mass)
    zero_case = {"nll_base": mean_or_nan(t.base_nll), "nll_zeroed": mean_or_nan(t.zero_nll),
                 "nll_rise_zeroed": mean_or_nan(zero_rise), "nll_rise_zeroed_ci": claims.ci_mean(zero_rise, n_boot, "H6", "zero_rise"),
                 "sink_mass_base": mass_base, "sink_mass_zeroed": mean_or_nan(t.zero_mass),
                 "sink_mass_dark_sink": mean_or_nan(t.dark_sink_mass),
                 "sink_drop_zeroed": mean_or_nan(drop) / mass_base if mass_base > 0 else float("nan"),
                 "sink_drop_zeroed_ci": claims.ci_ratio(drop, t.base_mass, n_boot, "H6", "zero_drop"),
                 "sink_drop_dark_sink": mean_or_nan(dark_drop) / mass_base if mass_base > 0 else float("nan"),
                 # how much of band K's role at the sink the massive coordinates carry
                 "zeroed_over_dark_sink_drop": (mean_or_nan(drop) / mean_or_nan(dark_drop)
                                                if mean_or_nan(dark_drop) != 0 else float("nan")),
                 "zeroed_over_dark_sink_drop_ci": claims.ci_ratio(drop, dark_drop, n_boot, "H6", "drop_ratio"),
                 "nll_rise_dark_sink": mean_or_nan(t.dark_sink_nll - t.base_nll),
                 "p_values": {"nll_rise": float(p[1]), "sink_mass_drop": float(p[2])},
                 "p_values_raw": {"nll_rise": float(raw[1]), "sink_mass_drop": float(raw[2])},
                 **window_counts(c["zero_nll"], c["zero_mass"])}
    ok_mean = bool(p[0] < alpha and rise_ci[1] <= tolerance)
    ok_zero = bool(p[1] < alpha and p[2] < alpha and zero_case["nll_rise_zeroed"] > 0 and mean_or_nan(drop) > 0)
    return {"b-mean": (ok_mean, mean_case), "b-zero": (ok_zero, zero_case)}


def verdicts_with_stability(mag: Magnitudes, test: H6Test | None, diag: np.ndarray, s, model: str = "",
                            n_units: int | None = None) -> dict:
    """h6_verdicts with verdict_stability: claim (a) on resamples of the selection windows
    (detection redone on each; the set is what they choose), claim (b) on resamples of the
    test windows (the set fixed, as in the run). n_units: test units (--units document)."""
    run = lambda m, t: h6_verdicts(m, t, diag, alpha=s.alpha, min_ratio=s.h6_min_ratio, min_fold=s.h6_min_fold,  # noqa: E731
                                   tolerance=s.h6_tolerance, n_sets=s.h6_random_sets, n_boot=s.bootstrap)
    out = run(mag, test)
    stability.dump_inputs("H6", model, (mag, test))
    shares = stability.verdict_stability(lambda m: run(m, test), mag, mag.max_abs.shape[0],
                                         seed=case_seed("stability", "H6", "select"))
    if test is not None:  # b-mean reads its interval's upper end, as H2b does
        shares.update({k: v for k, v in stability.verdict_stability(
            lambda t: run(mag, t), test, n_units or len(test.base_nll), seed=case_seed("stability", "H6", "test"),
            reads_intervals=True).items() if k != "a"})
    for key, (_, m) in out.items():
        m.update(verdict_stability=shares[key], fragile=shares[key] < stability.FRAGILE_BELOW,
                 stability_resamples=stability.STABILITY_RESAMPLES,
                 stability_over="selection windows" if key == "a" or test is None else "test windows")
    return out
