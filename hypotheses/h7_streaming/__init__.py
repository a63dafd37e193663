"""H7, sinks that do work (StreamingLLM, Xiao et al. 2023, against Cancedda 2024;
docs/methods.md §11), and whether a sink can be designated by hand (the ladder).

Attention regimes as masks on the test windows, positions unchanged (sinkbench.hypotheses.h7_streaming.measurement):
full causal, a sliding window of W keys (h7_window, default seq_len // 4), the window plus
the first token, plus the first four, plus one control token (position 1); StreamingLLM's
recompute baseline (the W most recent tokens as a sequence of their own) as the reference; the
designation ladder's rungs on the control token (sinkbench.measure.designate.RUNGS) at the ladder's
layers, and the first token visible only after each layer (the upper bound of a write there).
NLL on the predictions made at positions >= W; recovered(R) = NLL(window) - NLL(R).
 a. evicting the sink hurts: recovered(sink1) > h7_min_gap;
 b. keeping the sink rescues: recovered(sink1) >= h7_min_recovered of recovered(recompute);
 c. the control token alone does not: its recovered share is below h7_min_recovered;
 d. a designated sink rescues: at some layer, H4's dark write (rung 1) recovers >=
    h7_min_designated of recovered(sink1);
 e. the ladder: some rung does, at some ladder layer; the record names the weakest that does,
    the positive control (the sink's whole state copied at the early layer) and, per failing
    rung, the profile property it lacks.
(b), (c) need the reference's recovery established > 0; (d), (e) need (a) and (b). Windows are
the unit; Holm over (a)-(c) and every rung test at a layer the upper bound leaves open.

This module is the hypothesis unit (sinkbench.registry); the masks and the grid are in
sinkbench.hypotheses.h7_streaming.measurement, the verdicts in sinkbench.hypotheses.h7_streaming.verdicts, the figure in sinkbench.hypotheses.h7_streaming.figure."""
from __future__ import annotations

from sinkbench.stats.claims import windows_note
from .verdicts import CLAIMS
from .measurement import LADDER_LAYERS, LEARNED_SINK, READOUT, UNIT_DEFAULTS
from sinkbench.stats.nulls import ALPHA, N_BOOT, nll_like, small
from sinkbench.registry import Axis, Hypothesis, Setting, Test, constant


# --------------------------------------------------------------------------- hostile nulls
def _h7(which: str):
    def run(e, rng):
        from .verdicts import RUNG_ORDER, h7_verdicts
        from .measurement import H7Test

        n = e.size
        full = nll_like(rng, n)
        window = full + 1.0 + small(rng, n, 0.1)
        sink1 = full + 0.1 + small(rng, n, 0.05)
        recompute = full + 0.1 + small(rng, n, 0.05)
        control = window - 0.05 + small(rng, n, 0.05)
        designated, rungs = None, {}
        if which == "gap":  # sink1 recovers exactly the minimum; the reference and the control scaled with it
            sink1 = window - 0.1 - 0.05 * e
            recompute, control = sink1 + small(rng, n, 0.005), window + small(rng, n, 0.005)
        elif which == "recovered":  # the first token recovers exactly the minimum share of the reference's recovery
            sink1 = window - 0.5 * (window - recompute) - 0.2 * e
        elif which == "control":  # the control recovers exactly the minimum share
            control = window - 0.5 * (window - recompute) + 0.2 * e
        elif which == "designated":  # the designated sink recovers exactly the minimum share of sink1's recovery
            designated = window - 0.5 * (window - sink1) - 0.2 * e
        elif which == "rung":  # a rung (the value drain at layer 1) at the same boundary, the others recover nothing
            rungs = {(r, 1): window + small(rng, n, 0.01) for r in RUNG_ORDER[1:5]}
            rungs[("value_drain", 1)] = window - 0.5 * (window - sink1) - 0.2 * e
        elif which in ("rung_cut", "rung_cut_selection"):  # the rung at its boundary, its layer's bound exactly at the cut d
            rungs = {(r, 1): window + small(rng, n, 0.01) for r in RUNG_ORDER[1:5]}
            rungs[("value_drain", 1)] = window - 0.5 * (window - sink1) - 0.2 * e
        elif which == "reference":  # (b)'s sign gate at its boundary: the reference's recovery exactly 0 (b's contrast clear)
            recompute = window - 0.2 * e
            sink1 = window - 0.5 + small(rng, n, 0.05)
        if designated is None:  # a designated sink as good as the first token (rung 1 at layer 0)
            designated = window + small(rng, n, 0.01) if which == "rung" else sink1 + small(rng, n, 0.01)
        late = {l: sink1 + small(rng, n, 0.01) for (_, l) in rungs}
        cut = {}
        if which.startswith("rung_cut"):  # the bound shares the rung's denominator (sink1's recovery) and its noise
            late = {1: window - 0.5 * (window - sink1) - 0.2 * e + small(rng, n, 0.05)}
        if which == "rung_cut_selection":  # the product's rule: the cut read on 8 selection windows of their own
            cut = {1: 0.5 + 0.2 * float(rng.standard_normal(8).mean()) / 0.9}  # sink1's recovery there: 0.9
        t = H7Test(full, window, sink1, sink1 + small(rng, n, 0.01), control, designated={0: designated},
                   recompute=recompute, late=late, ladder=rungs, cut_bound=cut)
        out = h7_verdicts(t, alpha=ALPHA, min_gap=0.1, min_recovered=0.5, min_designated=0.5, n_boot=N_BOOT)
        claim = {"gap": "a", "recovered": "b", "control": "c", "designated": "d", "rung": "e", "rung_cut": "e",
                 "rung_cut_selection": "e", "reference": "b"}[which]
        if which.startswith("rung"):
            return bool(out["e"][1]["rungs"]["value_drain"]["passes"])
        return out[claim][0]

    return run


HOSTILE = {"H7a eviction gap": _h7("gap"), "H7b first token recovers": _h7("recovered"),
           "H7c control does not": _h7("control"), "H7d designated sink recovers": _h7("designated"),
           "H7e a ladder rung recovers": _h7("rung"), "H7e rung, its upper bound at the cut": _h7("rung_cut"),
           "H7e rung at the cut, read on selection windows": _h7("rung_cut_selection"),
           "H7b gate: reference recovers": _h7("reference")}


def measure(bench, model_name: str) -> dict:
    from .measurement import h7_grid

    return h7_grid(bench.sweep(model_name), bench.of(model_name), bench.unit_settings(HYPOTHESIS, model_name))


def check(bench, model_name: str, h7_claim: str) -> None:
    bench.resume("H7", model_name, None, claim=h7_claim)
    s = bench.of(model_name)
    passed, m = bench.results(HYPOTHESIS, model_name)[h7_claim]
    regimes = m["regimes"]
    params = bench.params(model_name, **bench.unit_settings(HYPOTHESIS, model_name),
                          window=regimes["window"], control_position=regimes["control_position"],
                          min_gap=s.h7_min_gap, min_recovered=s.h7_min_recovered,
                          min_designated=s.h7_min_designated, designated_layers=regimes["designated_layers"],
                          ladder_layers=regimes.get("ladder_layers", []), reference=regimes.get("reference"))
    bench.record("H7", model_name, None, params, passed, m, claim=h7_claim)
    shown = {k: v for k, v in m.items() if k not in ("regimes", "profile_by_regime", "recovered_shares", "rungs", "nll")}
    if h7_claim == "e":
        shown = {"answer": m["answer"], "shares of sink1's recovery": {r: v["share_of_sink1"] for r, v in m["rungs"].items()},
                 "lacks": {r: v.get("lacks") for r, v in m["rungs"].items() if not v["passes"]},
                 "upper_bound": m["upper_bound"], "no_write_can_pass": m["no_write_can_pass"]}
    assert passed, f"H7 claim {h7_claim} fails on {model_name} (W = {regimes['window']}): {shown}" + windows_note(m)


def passes(bench, model_name: str) -> int:
    from .measurement import ladder_layers, passes_per_run, window_size

    s, unit = bench.of(model_name), bench.unit_settings(HYPOTHESIS, model_name)
    grid = bench.layers(model_name)
    early = unit.early_layer if unit.early_layer >= 0 else None  # detected at measure time: counted as the default
    ladder = ladder_layers(grid, bench.subject(model_name).n_layers, unit.ladder, early)
    n_ladder = len(ladder)
    # the upper bounds again on the selection windows (window, sink1, one per layer): the family's cut
    cut = 2 + len(set(grid) | set(ladder)) if ladder else 0
    return (passes_per_run(len(grid), n_ladder, s.seq_len, window_size(s), readout=unit.readout == "on")
            * bench.runs(model_name, s.n_seqs) + cut * bench.runs(model_name, s.n_select))


def figures(plt, model: str, recs: list[dict]) -> list:
    """The StreamingLLM curve, the recovered shares and the ladder, from one H7 record (each
    carries them; (e)'s also the ladder's answer)."""
    from .figure import draw_h7

    ok = [r for r in recs if r["hypothesis"] == "H7" and r["metrics"].get("regimes", {}).get("nll_by_position")]
    rec = next((r for r in ok if r.get("claim") == "e"), ok[0] if ok else None)  # (e)'s carries the ladder's answer
    return [draw_h7(plt, rec["metrics"], model)] if rec else []


def figures_across(plt, records_by_model: dict[str, list[dict]]) -> list:
    """The ladder over models (one line per model): from each model's (e) record."""
    from .figure import draw_ladder_across

    ladders = {m: r["metrics"] for m, recs in records_by_model.items() for r in recs
               if r["hypothesis"] == "H7" and r.get("claim") == "e" and (r["metrics"].get("positive_control") or {}).get("layer") is not None}
    return [draw_ladder_across(plt, ladders)] if ladders else []


HYPOTHESIS = Hypothesis(
    name="H7", title="sinks that do work (a sliding window with and without the sink), and designated ones",
    question="Does the first token work as a sink under a sliding window, and can a sink be designated by hand?",
    claims={"H7/a": "evicting the first token costs NLL (window against window + first token)",
            "H7/b": "keeping the first token restores what a recomputed window holds",
            "H7/c": "an ordinary token kept in its place does not",
            "H7/d": "H4's dark write at one layer makes a working sink",
            "H7/e": "some rung of the designation ladder makes a working sink"},
    tests=(Test("test_streaming_sinks", (Axis("h7_claim", constant(*CLAIMS), record=lambda c: {"claim": c}),),
                check, p_values=lambda n_layers: (3 + (n_layers + 1) + 4 * 2) / len(CLAIMS)),),
    # 3, rung 1 at the grid layers and the early layer, rungs 2-5 at the two default ladder layers, over the claims
    measure=measure, passes=passes, hostile=HOSTILE,
    key_effects={"H7/a": ("gap", "ΔNLL window−sink1"), "H7/b": ("recovered_share", "of the recompute's recovery"),
                 "H7/c": ("recovered_share", "recovered"), "H7/d": ("recovered_share", "of sink1's recovery"),
                 "H7/e": ("recovered_share", "weakest working rung, of sink1's recovery")},
    figures=figures, figures_across=figures_across, methods="docs/methods.md §11", built_in=True,
    settings={
        "ladder": Setting(UNIT_DEFAULTS["ladder"], "the ladder's layers: 'default' (the early layer and the middle grid layer) "
                                 "or 'grid' (the early layer and every --layers grid layer)", choices=LADDER_LAYERS),
        "early_layer": Setting(UNIT_DEFAULTS["early_layer"], "the ladder's early layer: -1 detects it on the selection windows (the first layer "
                               "whose output holds a massive coordinate at the first token, > h6_min_ratio x the median), "
                               "or a layer index", low=-1),
        "learned_sink": Setting(UNIT_DEFAULTS["learned_sink"], "rung 6, a sink embedding trained with the model frozen: 'auto' (on for zoo "
                                "models, off for pretrained ones: about 150 passes' worth), 'on' or 'off'",
                                choices=LEARNED_SINK),
        "readout": Setting(UNIT_DEFAULTS["readout"], "each rung 1-5 at the ladder layers also run with the natural sink present "
                           "(H4-A's capture readout, recorded, not tested): 'on' (5 passes per ladder layer) or 'off'",
                           choices=READOUT),
    })
