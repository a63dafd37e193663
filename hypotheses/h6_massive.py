"""H6, massive activations are dark (Sun et al., COLM 2024, against Cancedda 2024;
docs/methods.md §9).

Massive-activation coordinates (|h| > 100 and > 1000x the layer's median |h|, or
h6_min_ratio x the median for small models) are found on selection windows.
 a. their directions' band-K share is >= h6_min_fold x chance and above random coordinate
    sets of the same size (rank p-value over h6_random_sets sets: the set is the unit);
 b-mean. setting the sink's massive coordinates to their mean (at the first layer they sit
    at the sink) keeps the NLL of the other predictions within h6_tolerance (equivalence);
 b-zero. zeroing them raises that NLL and lowers the later layers' sink mass.
Holm over the model's four p-values. A model without massive activations fails every
case with one line saying they are not present (recorded, so the matrix shows it).

This module is the hypothesis unit (sinkbench.registry): its grid, verdicts, simulated
calibration nulls, checks and figures; hypotheses/test_*.py only names its tests."""
from __future__ import annotations
from sinkbench.claims import windows_note
from sinkbench.registry import Axis, Hypothesis, Test, constant
from sinkbench.claims_h6 import CLAIMS
from sinkbench.massive import h6_grid


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
    the sink on test windows (sinkbench.massive; verdicts: sinkbench.claims_h6)."""
    return h6_grid(bench.sweep(model_name), bench.of(model_name))


def check(bench, model_name: str, h6_claim: str) -> None:
    bench.resume("H6", model_name, None, claim=h6_claim)
    s = bench.settings
    passed, m = bench.results(HYPOTHESIS, model_name)[h6_claim]
    params = bench.params(model_name, bands=[s.n_bands], positions="sink", min_ratio=s.h6_min_ratio,
                          min_fold=s.h6_min_fold, tolerance=s.h6_tolerance, random_sets=s.h6_random_sets)
    bench.record("H6", model_name, None, params, passed, m, claim=h6_claim)
    if not m.get("present", True) or not m.get("at_sink", True):
        largest = m.get("detection", {}).get("largest_ratio_to_median")
        seen = f" (largest |h| / layer median seen: {largest:.0f}x)" if largest is not None else ""
        assert passed, f"H6 {h6_claim} on {model_name}: not present: {m['reason']}{seen}"
    shown = {k: v for k, v in m.items() if k not in ("detection", "sink_profile")}
    assert passed, f"H6 claim {h6_claim} fails on {model_name}: {shown}" + windows_note(m)


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
    key_effects={"H6/a": ("fold_over_chance", "band-K share / chance"), "H6/b-mean": ("nll_rise_mean_set", "ΔNLL mean-set"),
                 "H6/b-zero": ("sink_drop_zeroed", "sink drop zeroed")},
    question="Are massive activations dark?",
    claims={"H6/a": "the massive coordinates lie in the dark band", "H6/b-mean": "setting them to their mean at the sink costs NLL less than the tolerance",
            "H6/b-zero": "zeroing them at the sink raises NLL and lowers sink mass"},
    figures=figures, methods="docs/methods.md §9", built_in=True)
