"""H5, who writes the sink's dark signal (Cancedda 2024 §4; docs/methods.md).

The paper's mechanism: an early MLP writes a large, almost purely dark vector into
the sink's residual, and later heads find the sink through it.
 The writer is the largest dark writer at the sink among the first half of the
 components (attention and MLP branch outputs), chosen on selection windows; the
 claims are tested on the test windows:
 1. it wrote >= h5_min_share (50%) of the dark norm present after it;
 2. removing its band-K write at the sink only lowers the later layers' sink mass and
    raises the NLL of the other predictions, against the base run and against
    h5_controls equal-norm removals of other components at or before its layer, by at
    least h5_min_sink_drop (relative sink mass) and h5_min_nll_rise nats beyond them.
Tests of means over windows (skew-guarded), Holm over the model's five p-values."""
from sinkbench.claims import windows_note


def test_sink_writer(sinkbench, model_name, h5_claim):
    sinkbench.resume("H5", model_name, None, claim=h5_claim)
    passed, m = sinkbench.h5(model_name)[h5_claim]
    params = sinkbench.params(model_name, component=m["component"], min_share=sinkbench.settings.h5_min_share,
                              bands=[sinkbench.settings.n_bands], positions="sink")
    sinkbench.record("H5", model_name, None, params, passed, m, claim=h5_claim)
    shown = {k: v for k, v in m.items() if k != "mean_dark_write_per_component"}
    assert passed, f"H5 claim {h5_claim} fails on {model_name}: {shown}" + windows_note(m)
