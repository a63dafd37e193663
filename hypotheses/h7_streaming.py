"""H7, sinks that do work (StreamingLLM, Xiao et al. 2023, against Cancedda 2024;
docs/methods.md §11).

Attention regimes as masks on the test windows, positions unchanged (sinkbench.streaming):
full causal, a sliding window of W keys (h7_window, default seq_len // 4), the window plus
the first token, plus the first four, plus one control token (position 1), and plus that
control token given H4's dark write (position 0's band-K component) at each grid layer.
NLL on the predictions made at positions >= W.
 a. evicting the sink hurts: NLL(window) - NLL(full) > h7_min_gap;
 b. keeping the sink rescues: window + first token recovers >= h7_min_recovered of (a)'s gap;
 c. the control token alone does not: its recovered share is below h7_min_recovered;
 d. a designated sink rescues: at some grid layer, window + the written control token
    recovers >= h7_min_designated of what window + first token recovers.
Windows are the unit; Holm over the model's 3 + (grid layers) p-values. The records carry
the sink's value/key profile (natural, control, designated) and any learned sinks' mass.

This module is the hypothesis unit (sinkbench.registry); the masks and the grid are in
sinkbench.streaming, the verdicts in sinkbench.claims_h7, the figure in sinkbench.figures_h7."""
from __future__ import annotations

from sinkbench.claims import windows_note
from sinkbench.claims_h7 import CLAIMS
from sinkbench.hostile import ALPHA, N_BOOT, nll_like, small
from sinkbench.registry import Axis, Hypothesis, Test, constant


# --------------------------------------------------------------------------- hostile nulls
def _h7(which: str):
    def run(e, rng):
        from sinkbench.claims_h7 import h7_verdicts
        from sinkbench.streaming import H7Test

        n = e.size
        full = nll_like(rng, n)
        window = full + 1.0 + small(rng, n, 0.1)
        sink1 = full + 0.1 + small(rng, n, 0.05)
        control = window - 0.05 + small(rng, n, 0.05)
        designated = None
        if which == "gap":  # the gap at its minimum: sink1 and control scaled with it
            window = full + 0.1 + 0.05 * e
            sink1, control = full + small(rng, n, 0.005), window + 0.05
        elif which == "recovered":  # the first token recovers exactly the minimum share
            sink1 = window - 0.5 * (window - full) - 0.2 * e
        elif which == "control":  # the control recovers exactly the minimum share
            control = window - 0.5 * (window - full) + 0.2 * e
        elif which == "designated":  # the designated sink recovers exactly the minimum share of sink1's recovery
            designated = window - 0.5 * (window - sink1) - 0.2 * e
        if designated is None:  # a designated sink as good as the first token
            designated = sink1 + small(rng, n, 0.01)
        t = H7Test(full, window, sink1, sink1 + small(rng, n, 0.01), control, designated={0: designated})
        return h7_verdicts(t, alpha=ALPHA, min_gap=0.1, min_recovered=0.5, min_designated=0.5, n_boot=N_BOOT)[
            {"gap": "a", "recovered": "b", "control": "c", "designated": "d"}[which]][0]

    return run


HOSTILE = {"H7a eviction gap": _h7("gap"), "H7b first token recovers": _h7("recovered"),
           "H7c control does not": _h7("control"), "H7d designated sink recovers": _h7("designated")}


def measure(bench, model_name: str) -> dict:
    from sinkbench.streaming import h7_grid

    return h7_grid(bench.sweep(model_name), bench.of(model_name))


def check(bench, model_name: str, h7_claim: str) -> None:
    bench.resume("H7", model_name, None, claim=h7_claim)
    s = bench.of(model_name)
    passed, m = bench.results(HYPOTHESIS, model_name)[h7_claim]
    regimes = m["regimes"]
    params = bench.params(model_name, window=regimes["window"], control_position=regimes["control_position"],
                          min_gap=s.h7_min_gap, min_recovered=s.h7_min_recovered,
                          min_designated=s.h7_min_designated, designated_layers=regimes["designated_layers"])
    bench.record("H7", model_name, None, params, passed, m, claim=h7_claim)
    shown = {k: v for k, v in m.items() if k not in ("regimes", "profile_by_regime", "recovered_shares")}
    assert passed, f"H7 claim {h7_claim} fails on {model_name} (W = {regimes['window']}): {shown}" + windows_note(m)


def passes(bench, model_name: str) -> int:
    from sinkbench.streaming import passes_per_run

    return passes_per_run(len(bench.layers(model_name))) * bench.runs(model_name, bench.of(model_name).n_seqs)


def figures(plt, model: str, recs: list[dict]) -> list:
    """The StreamingLLM curve and the recovered shares, from one H7 record (each carries them)."""
    from sinkbench.figures_h7 import draw_h7

    rec = next((r for r in recs if r["hypothesis"] == "H7" and r["metrics"].get("regimes", {}).get("nll_by_position")), None)
    return [draw_h7(plt, rec["metrics"], model)] if rec else []


HYPOTHESIS = Hypothesis(
    name="H7", title="sinks that do work (a sliding window with and without the sink)",
    tests=(Test("test_streaming_sinks", (Axis("h7_claim", constant(*CLAIMS), record=lambda c: {"claim": c}),),
                check, p_values=lambda n_layers: (3 + n_layers) / len(CLAIMS)),),  # 3 + one per grid layer over the claims
    measure=measure, passes=passes, hostile=HOSTILE,
    key_effects={"H7/a": ("gap", "ΔNLL window−full"), "H7/b": ("recovered_share", "recovered"),
                 "H7/c": ("recovered_share", "recovered"), "H7/d": ("recovered_share", "of sink1's recovery")},
    figures=figures, methods="docs/methods.md §11", built_in=True)
