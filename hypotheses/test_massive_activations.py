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
case with one line saying they are not present (recorded, so the matrix shows it)."""
from sinkbench.claims import windows_note


def test_massive_activations(sinkbench, model_name, h6_claim):
    sinkbench.resume("H6", model_name, None, claim=h6_claim)
    s = sinkbench.settings
    passed, m = sinkbench.h6(model_name)[h6_claim]
    params = sinkbench.params(model_name, bands=[s.n_bands], positions="sink", min_ratio=s.h6_min_ratio,
                              min_fold=s.h6_min_fold, tolerance=s.h6_tolerance, random_sets=s.h6_random_sets)
    sinkbench.record("H6", model_name, None, params, passed, m, claim=h6_claim)
    if not m.get("present", True) or not m.get("at_sink", True):
        largest = m.get("detection", {}).get("largest_ratio_to_median")
        seen = f" (largest |h| / layer median seen: {largest:.0f}x)" if largest is not None else ""
        assert passed, f"H6 {h6_claim} on {model_name}: not present: {m['reason']}{seen}"
    shown = {k: v for k, v in m.items() if k not in ("detection", "sink_profile")}
    assert passed, f"H6 claim {h6_claim} fails on {model_name}: {shown}" + windows_note(m)
