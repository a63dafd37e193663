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
the sink's value/key profile (natural, control, designated) and any learned sinks' mass."""
from sinkbench.claims import windows_note


def test_streaming_sinks(sinkbench, model_name, h7_claim):
    sinkbench.resume("H7", model_name, None, claim=h7_claim)
    s = sinkbench.of(model_name)
    passed, m = sinkbench.h7(model_name)[h7_claim]
    regimes = m["regimes"]
    params = sinkbench.params(model_name, window=regimes["window"], control_position=regimes["control_position"],
                              min_gap=s.h7_min_gap, min_recovered=s.h7_min_recovered,
                              min_designated=s.h7_min_designated, designated_layers=regimes["designated_layers"])
    sinkbench.record("H7", model_name, None, params, passed, m, claim=h7_claim)
    shown = {k: v for k, v in m.items() if k not in ("regimes", "profile_by_regime", "recovered_shares")}
    assert passed, f"H7 claim {h7_claim} fails on {model_name} (W = {regimes['window']}): {shown}" + windows_note(m)
