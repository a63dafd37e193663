"""H6, massive activations are dark (Sun et al., COLM 2024, against Cancedda 2024;
docs/methods.md §9).

Massive-activation coordinates (|h| > 100 and > 1000x the layer's median |h|, or
h6_min_ratio x the median for small models) are found on selection windows.
 a. every massive coordinate is dark: each one's band-K share is >= h6_min_fold x chance and
    ranks among the darkest of the d coordinates (exact rank p); the weakest coordinate decides
    (an intersection-union test); the set mean against h6_random_sets random sets is recorded;
 b-mean. setting the massive coordinates to their mean at every position that carries them
    (Sun's edit, at the first layer they sit at the sink) keeps the NLL of the other
    predictions within h6_tolerance (equivalence); not testable on a constant contrast (a BOS sink);
 b-zero. zeroing them raises that NLL by more than h6_min_zero_rise and lowers the later
    layers' sink mass.
Holm over the model's four p-values. A model without massive activations fails every
case with one line saying they are not present (recorded, so the matrix shows it).

This module is the hypothesis unit (sinkbench.registry): its grid, verdicts, simulated
calibration nulls, checks and figures; hypotheses/test_*.py only names its tests."""
from __future__ import annotations
from sinkbench.stats.claims import windows_note
from sinkbench.registry import Axis, Hypothesis, Test, constant

from . import verdicts as claims_h6
from .verdicts import CLAIMS
from sinkbench.measure.massive import selection_hidden
from .measurement import (coordinate_dark_shares, detect, detection_record, intervention_inputs, magnitudes,
                      sink_profile, sink_value_spread)


def massive_figure(plt, m: dict) -> tuple:
    """H6: the sink's mean |h| per coordinate at the edit layer (log scale) above each
    coordinate's band-K share, the massive coordinates marked in red, chance share dashed."""
    import numpy as np

    prof, det = m["sink_profile"], m.get("detection", {})
    coords = det.get("coordinates", [])
    x = np.arange(len(prof["sink_abs"]))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 4.2), sharex=True)
    top.bar(x, prof["sink_abs"], width=1.0, color="#888")
    top.set_yscale("log")
    top.set_ylabel(f"|h| at the sink, layer {prof['layer']}", fontsize=8)
    bottom.bar(x, prof["dark_share"], width=1.0, color="#888")
    if det.get("chance_dark_share"):
        bottom.axhline(det["chance_dark_share"], ls="--", color="k", lw=0.8, label="chance (dim K / d)")
    for ax, values in ((top, prof["sink_abs"]), (bottom, prof["dark_share"])):
        ax.scatter(coords, [values[i] for i in coords], color="red", zorder=3, s=18, label="massive" if ax is top else None)
    top.legend(fontsize=7)
    bottom.legend(fontsize=7)
    bottom.set_ylabel("band-K share of e_i", fontsize=8)
    bottom.set_xlabel("residual coordinate i")
    return (fig,)


# --------------------------------------------------------------------------- the unit

def measure(bench, model_name: str) -> dict:
    """Massive coordinates on selection windows, their band-K share, Sun's intervention at
    the sink on test windows (sinkbench.hypotheses.h6_massive.measurement; verdicts: sinkbench.hypotheses.h6_massive.verdicts)."""
    return h6_grid(bench.sweep(model_name), bench.of(model_name))


def h6_grid(sweep, s) -> dict:
    """H6 on one model: detection on selection windows, claim (a) from the basis, claim (b) by
    Sun's intervention at the sink on test windows; the verdicts of sinkbench.hypotheses.h6_massive.verdicts with
    their stability (claim (a) over selection-window resamples, (b) over test-window ones)."""
    from sinkbench.measure.experiments import as_units, selection_windows

    subj = sweep.subject
    batch = s.windows_per_pass(subj)
    select = selection_windows(subj, s)
    hidden = selection_hidden(sweep, s)  # the model run's shared selection pass (sinkbench.measure.massive)
    mag = magnitudes(hidden)
    diag = coordinate_dark_shares(sweep.spectrum)
    det = detect(mag, s.h6_min_ratio)
    test, n_units, edit = None, None, {}
    if det.edit_layer is not None:
        arrays, edit = intervention_inputs(sweep, det, mag, batch, hidden[det.edit_layer], s.h6_min_ratio)
        test, n_units = as_units(arrays, subj, s, len(sweep.windows))
    out = claims_h6.verdicts_with_stability(mag, test, diag, s, model=subj.name, n_units=n_units,
                                            carriers_beyond_sink=edit.get("windows_with_carriers_beyond_sink", 0))
    info = detection_record(det, mag, hidden, select, diag, subj.tokenizer, s.h6_min_ratio)
    info["chosen_on"] = "selection windows"
    info["chance_dark_share"] = float(sweep.spectrum.band_dim([sweep.spectrum.n_bands]) / sweep.spectrum.d)
    layer = det.edit_layer if det.edit_layer is not None else (min(det.by_layer) if det.present else subj.n_layers // 2)
    for key, (_, m) in out.items():
        m["detection"] = info
    if det.edit_layer is not None:
        out["b-mean"][1]["sink_value_relative_sd"] = sink_value_spread(mag, det)
        for c in CLAIMS[1:]:  # which positions Sun's edit touched (the sink and any other carrier)
            out[c][1].update(edit)
    out["a"][1]["sink_profile"] = sink_profile(mag, layer, diag)
    return out


def check(bench, model_name: str, h6_claim: str) -> None:
    bench.resume("H6", model_name, None, claim=h6_claim)
    s = bench.settings
    passed, m = bench.results(HYPOTHESIS, model_name)[h6_claim]
    params = bench.params(model_name, bands=[s.n_bands], positions="carriers", min_ratio=s.h6_min_ratio,
                          min_fold=s.h6_min_fold, tolerance=s.h6_tolerance, random_sets=s.h6_random_sets,
                          min_zero_rise=s.h6_min_zero_rise)
    bench.record("H6", model_name, None, params, passed, m, claim=h6_claim)
    if not m.get("present", True) or not m.get("at_sink", True):
        largest = m.get("detection", {}).get("largest_ratio_to_median")
        seen = f" (largest |h| / layer median seen: {largest:.0f}x)" if largest is not None else ""
        assert passed, f"H6 {h6_claim} on {model_name}: not present: {m['reason']}{seen}"
    shown = {k: v for k, v in m.items() if k not in ("detection", "sink_profile", "not_testable")}
    why = f"not testable: {m['not_testable']}; " if m.get("not_testable") else ""
    assert passed, f"H6 claim {h6_claim} fails on {model_name}: {why}{shown}" + windows_note(m)


def passes(bench, model_name: str) -> int:  # selection windows, base, mean-set, zeroed, band K at the sink (upper bound)
    s = bench.of(model_name)
    return bench.runs(model_name, s.n_select) + 4 * bench.runs(model_name, s.n_seqs)


def figures(plt, model: str, recs: list[dict]) -> list:
    return [(massive_figure(plt, r["metrics"])[0], f"{model}: the sink's |h| per coordinate, massive ones marked (H6)")
            for r in recs if r["hypothesis"] == "H6" and r["metrics"].get("sink_profile")]


HYPOTHESIS = Hypothesis(
    name="H6", title="massive activations are dark",
    tests=(Test("test_massive_activations", (Axis("h6_claim", constant(*CLAIMS), record=lambda c: {"claim": c}),),
                check, p_values=4 / 3),),  # four p-values over the three claims
    measure=measure, passes=passes,
    key_effects={"H6/a": ("min_fold_over_chance", "weakest coordinate's band-K share / chance"), "H6/b-mean": ("nll_rise_mean_set", "ΔNLL mean-set"),
                 "H6/b-zero": ("sink_drop_zeroed", "sink drop zeroed")},
    question="Are massive activations dark?",
    claims={"H6/a": "the massive coordinates lie in the dark band",
            "H6/b-mean": "setting them to their mean at every position that carries them costs NLL less than the tolerance",
            "H6/b-zero": "zeroing them at every position that carries them raises NLL and lowers sink mass"},
    figures=figures, methods="docs/methods.md §9", built_in=True)
