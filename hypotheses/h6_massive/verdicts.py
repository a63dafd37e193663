"""H6 verdicts (massive activations are dark) from arrays: pure functions, like
sinkbench.stats.claims. docs/methods.md §9 states the criteria and the units of replication.

(a) "dark", per coordinate: each massive coordinate's band-K share diag(P_K)_i against the
    d coordinates of the basis (exact rank p = #{j: diag_j >= diag_i} / d under "i is a
    uniformly random coordinate") and against h6_min_fold x the chance share (dim band K /
    d). The claim is that every coordinate of the set is dark, so it is tested as an
    intersection-union test: the claim's p-value is its weakest member's (the largest p),
    valid at alpha without a multiplicity correction, and every member must reach the fold.
    The set mean (the old criterion, which one dark coordinate could carry for the rest)
    and its rank against random sets of the same size are recorded beside it, with the
    magnitude-weighted share (how dark the massive part of the state is) and the
    coordinates within NEAR_THRESHOLD of the detection threshold (whose membership a
    change of window layout can flip).
(b) Sun's intervention on test windows (the window is the unit), at every position that
    carries the massive coordinates: "b-mean", setting them to their selection-window
    mean keeps the NLL of the other predictions within h6_tolerance (upper end of the
    rise's 95% interval <= it, and the mean test of tolerance - rise rejects); not testable
    (never a pass) when the contrast is constant over windows (a BOS sink is the same
    state in every window, so the edit changes nothing); "b-zero", zeroing them raises that
    NLL by more than h6_min_zero_rise (mean test of rise - minimum) and lowers the
    post-edit sink mass (two mean tests).
Holm over the model's four p-values. A model without massive coordinates fails every case
with present = False and a one-line reason (never a crash)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from sinkbench.stats import claims, stability
from sinkbench.stats.claims import mean_or_nan, test_mean, window_counts
from .measurement import (H6Test, Magnitudes, Detection, detect, random_set_shares, rank_pvalue, set_share,
                          sink_value_spread, threshold)
from sinkbench.measure.config import Settings
from sinkbench.stats.inference import case_seed, holm

CLAIMS = ("a", "b-mean", "b-zero")
NEAR_THRESHOLD = 0.1  # a coordinate whose |h| is within 10% of the detection threshold is flagged:
# its membership of the set can flip with the window layout (SmolLM2's coordinate 247 at 1.04x)
CONSTANT_SPREAD = 1e-4  # the sink's massive values vary by less than this (relative sd over the
# selection windows): the same state in every window (fp32 reductions differ by ~1e-7), so
# setting it to its mean changes nothing and b-mean has nothing to test


_NULLS: dict = {}  # (diag digest, size, n_sets, seed) -> random shares: stability reuses them


def null_shares(diag: np.ndarray, size: int, n_sets: int, seed: int) -> np.ndarray:
    key = (hashlib.sha256(diag.tobytes()).hexdigest(), size, n_sets, seed)
    if key not in _NULLS:
        _NULLS[key] = random_set_shares(diag, size, n_sets, seed)
    return _NULLS[key]


def dark_share_test(diag: np.ndarray, coords: list[int], n_sets: int) -> dict:
    """The set's numbers, recorded beside the per-coordinate test: the set's mean band-K
    share, the chance share, the random sets' share (mean and 95th percentile) and the set
    mean's rank p-value (the criterion before issue 30, which one dark coordinate can carry)."""
    share = set_share(diag, coords)
    null = null_shares(diag, len(coords), n_sets, case_seed("H6", "a", len(coords)))
    chance = float(diag.mean())  # trace(P_K) / d = dim(band K) / d
    return {"dark_share": share, "chance_dark_share": chance, "fold_over_chance": share / chance if chance > 0 else float("nan"),
            "random_set_share_mean": float(null.mean()), "random_set_share_q95": float(np.quantile(null, 0.95)),
            "n_coordinates": len(coords), "random_sets": n_sets, "p_raw_set_mean": rank_pvalue(share, null)}


def coordinate_pvalue(diag: np.ndarray, i: int) -> float:
    """#{j: diag_j >= diag_i} / d: exact under "coordinate i is a uniformly random one of the d"
    (P(p <= k/d) = k/d), never below 1/d."""
    return float(np.count_nonzero(diag >= diag[i]) / diag.size)


def per_coordinate_test(diag: np.ndarray, coords: list[int], min_fold: float) -> dict:
    """Claim (a) per coordinate: each one's share, fold over chance and exact rank p-value; the
    claim's p is the weakest member's (intersection-union: "every coordinate is dark" holds
    only if each does, so the largest p is a level-alpha test without adjustment), and its
    fold the smallest. A share is a property of the weights given the coordinate: it has no
    sampling error (its interval is the point), so the window noise enters only through
    which coordinates are detected (verdict stability, over selection windows)."""
    chance = float(diag.mean())
    rows = {int(i): {"share": round(float(diag[i]), 6), "fold_over_chance": float(diag[i] / chance) if chance > 0 else float("nan"),
                     "p_raw": coordinate_pvalue(diag, i)} for i in coords}
    weakest = max(rows, key=lambda i: (rows[i]["p_raw"], -rows[i]["share"]))
    return {"per_coordinate": rows, "weakest_coordinate": weakest, "p_raw": rows[weakest]["p_raw"],
            "min_fold_over_chance": min(r["fold_over_chance"] for r in rows.values()),
            "coordinates_below_fold": sorted(i for i, r in rows.items() if not r["fold_over_chance"] >= min_fold)}


def magnitude_weighted_share(mag: Magnitudes, det: Detection, diag: np.ndarray) -> float:
    """Band-K share of the massive part of the state: the coordinates' shares weighted by their
    squared peak |h| (over positions and the layers where they are massive), summed over the
    selection windows. How dark the massive activation is, whatever the set's membership."""
    coords = det.coordinates
    layers = sorted(det.by_layer)
    w = (mag.max_abs[:, layers][..., coords].max(1).astype(np.float64)) ** 2  # [W, m]
    return float((w * diag[coords]).sum() / w.sum())


def near_threshold(mag: Magnitudes, det: Detection, min_ratio: float) -> dict:
    """Coordinates (in the set or not) whose peak |h| over the detection threshold, at their
    best layer, is within NEAR_THRESHOLD of 1: coordinate -> that ratio. The ratio is the
    median over selection windows, as detection asks for half of them."""
    ratio = mag.max_abs / threshold(mag.median, det.criterion, min_ratio)[..., None]  # [W, L, d]
    best = np.median(ratio, 0).max(0)  # [d]
    near = np.flatnonzero(np.abs(best - 1) <= NEAR_THRESHOLD)
    return {int(i): round(float(best[i]), 4) for i in near}


def absent(reason: str) -> dict:
    return {c: (False, {"present": False, "reason": reason}) for c in CLAIMS}


def h6_verdicts(mag: Magnitudes, test: H6Test | None, diag: np.ndarray, *, alpha: float, min_ratio: float,
                min_fold: float, tolerance: float, n_sets: int, n_boot: int,
                min_zero_rise: float = Settings.h6_min_zero_rise, carriers_beyond_sink: int = 0) -> dict:
    """claim -> (passed, metrics). mag: selection-window magnitudes (detection runs here, so
    stability can redo it on resampled selection windows); test: claim (b)'s arrays, None
    when no massive coordinate sits at the sink at an editable layer; carriers_beyond_sink:
    test windows whose edit also reached a carrier beyond position 0 (then a constant sink
    does not make the edit vacuous)."""
    det = detect(mag, min_ratio)
    if not det.present:
        return absent("no massive activations: no coordinate reaches Sun's criterion (|h| > 100 and > 1000x the layer "
                      f"median) or {min_ratio:g}x the layer median on half the selection windows")
    a = dark_share_test(diag, det.coordinates, n_sets)
    a.update(per_coordinate_test(diag, det.coordinates, min_fold))
    raw = [a["p_raw"]]
    untestable = None
    if test is not None:
        rise, zero_rise, mass_drop = test.mean_nll - test.base_nll, test.zero_nll - test.base_nll, test.base_mass - test.zero_mass
        contrasts = {"within_tolerance": tolerance - rise, "zero_nll": zero_rise - min_zero_rise, "zero_mass": mass_drop}
        untestable = b_mean_untestable(contrasts["within_tolerance"], sink_value_spread(mag, det), carriers_beyond_sink)
        # an untestable b-mean enters Holm at p = 1: a vacuous p of 2^-n must not relax the others' steps
        raw += [1.0 if untestable and name == "within_tolerance" else test_mean(c, "H6", name) for name, c in contrasts.items()]
    p = holm(raw)
    a.update(p_value=float(p[0]), min_fold=min_fold, coordinates=det.coordinates, criterion=det.criterion, present=True,
             magnitude_weighted_share=magnitude_weighted_share(mag, det, diag),
             near_threshold=near_threshold(mag, det, min_ratio), near_threshold_within=NEAR_THRESHOLD)
    out = {"a": (bool(p[0] < alpha and a["min_fold_over_chance"] >= min_fold), a)}
    if test is None:
        reason = "massive coordinates present but never at the sink (position 0) at a layer before the last"
        out.update({c: (False, {"present": True, "at_sink": False, "reason": reason}) for c in CLAIMS[1:]})
        return out
    out.update(intervention_verdicts(test, contrasts, p[1:], raw[1:], alpha=alpha, tolerance=tolerance, n_boot=n_boot,
                                     min_zero_rise=min_zero_rise, untestable=untestable))
    for c in CLAIMS[1:]:
        out[c][1].update(present=True, at_sink=True, edit_layer=det.edit_layer, sink_coordinates=det.sink_coordinates)
    return out


def b_mean_untestable(contrast: np.ndarray, sink_spread: float, carriers_beyond_sink: int = 0) -> str | None:
    """Why b-mean cannot be tested, or None. Its mean test rejects on any constant positive
    contrast (p = 2^-n), so a sink whose state is the same in every window (BOS) would pass
    vacuously: the edit changes nothing there (unless it also reached other carriers)."""
    if sink_spread < CONSTANT_SPREAD and not carriers_beyond_sink:
        return (f"the sink's massive values are the same in every window (relative sd {sink_spread:.2g} < {CONSTANT_SPREAD:g}: "
                "a BOS sink), so setting them to their mean changes nothing")
    if np.ptp(contrast) == 0:
        return "the contrast tolerance - rise is the same in every window (zero spread): the mean test would pass vacuously"
    return None


def intervention_verdicts(t: H6Test, c: dict, p: np.ndarray, raw: list, *, alpha: float, tolerance: float,
                          n_boot: int, min_zero_rise: float = Settings.h6_min_zero_rise, untestable: str | None = None) -> dict:
    """Claim (b)'s two cases from its contrasts and Holm-adjusted p-values. Intervals go
    through claims.ci_mean / ci_ratio (module attributes: stability skips them where the
    verdict does not read them)."""
    rise = t.mean_nll - t.base_nll
    rise_ci = claims.ci_mean(rise, n_boot, "H6", "mean_rise")
    mean_case = {"nll_base": mean_or_nan(t.base_nll), "nll_mean_set": mean_or_nan(t.mean_nll),
                 "nll_rise_mean_set": mean_or_nan(rise), "nll_rise_mean_set_ci": rise_ci, "tolerance": tolerance,
                 "sink_mass_base": mean_or_nan(t.base_mass), "sink_mass_mean_set": mean_or_nan(t.mean_mass),
                 "p_value": float(p[0]), "p_value_raw": float(raw[0]), **window_counts(c["within_tolerance"])}
    if untestable:
        mean_case.update(not_testable=untestable, reason=f"not testable: {untestable}")
    zero_rise, drop = t.zero_nll - t.base_nll, t.base_mass - t.zero_mass
    dark_drop = t.base_mass - t.dark_sink_mass
    mass_base = mean_or_nan(t.base_mass)
    zero_case = {"nll_base": mean_or_nan(t.base_nll), "nll_zeroed": mean_or_nan(t.zero_nll),
                 "nll_rise_zeroed": mean_or_nan(zero_rise), "nll_rise_zeroed_ci": claims.ci_mean(zero_rise, n_boot, "H6", "zero_rise"),
                 "min_zero_rise": min_zero_rise,
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
                 "p_values": {"nll_rise_over_minimum": float(p[1]), "sink_mass_drop": float(p[2])},
                 "p_values_raw": {"nll_rise_over_minimum": float(raw[1]), "sink_mass_drop": float(raw[2])},
                 **window_counts(c["zero_nll"], c["zero_mass"])}
    ok_mean = bool(not untestable and p[0] < alpha and rise_ci[1] <= tolerance)
    ok_zero = bool(p[1] < alpha and p[2] < alpha and zero_case["nll_rise_zeroed"] > min_zero_rise and mean_or_nan(drop) > 0)
    return {"b-mean": (ok_mean, mean_case), "b-zero": (ok_zero, zero_case)}


def verdicts_with_stability(mag: Magnitudes, test: H6Test | None, diag: np.ndarray, s, model: str = "",
                            n_units: int | None = None, carriers_beyond_sink: int = 0) -> dict:
    """h6_verdicts with verdict_stability: claim (a) on resamples of the selection windows
    (detection redone on each; the set is what they choose), claim (b) on resamples of the
    test windows (the set fixed, as in the run). n_units: test units (--units document)."""
    run = lambda m, t: h6_verdicts(m, t, diag, alpha=s.alpha, min_ratio=s.h6_min_ratio, min_fold=s.h6_min_fold,  # noqa: E731
                                   tolerance=s.h6_tolerance, n_sets=s.h6_random_sets, n_boot=s.bootstrap,
                                   min_zero_rise=s.h6_min_zero_rise, carriers_beyond_sink=carriers_beyond_sink)
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
