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
Tests of means over windows (skew-guarded), Holm over the model's five p-values.

The hypothesis itself (grid, verdicts, calibration nulls, figures) is the unit
sinkbench.hypotheses.h5_sink_writer; this file only names its tests."""
from sinkbench.hypotheses import h5_sink_writer
from sinkbench.registry import pytest_function

test_sink_writer = pytest_function(h5_sink_writer.HYPOTHESIS, "test_sink_writer")
