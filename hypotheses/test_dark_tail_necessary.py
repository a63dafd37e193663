"""H1, the dark tail is necessary (Cancedda 2024; docs/methods.md).

After decoder layer l:
 (a) removing band K (the U-dark tail) at all positions raises NLL by at least
     h1_min_delta nats, significantly more than removing a random subspace of the
     same dimension and more than removing the median middle band;
 (b) removing band K at the sink position only lowers post-filter sink mass by at
     least h1_min_sink_drop (relative; significant) and raises the NLL of the other
     predictions (those made at positions >= 1) significantly.
Paired one-sided tests of means over windows (skew-guarded), Holm-corrected over the model's
layers x 6 tests. Also recorded: the share of (a)'s damage that (b) reproduces.

The hypothesis itself (grid, verdicts, calibration nulls, figures) is the unit
sinkbench.hypotheses.h1_dark_tail; this file only names its tests."""
from sinkbench.hypotheses import h1_dark_tail
from sinkbench.registry import pytest_function

test_dark_tail_necessary = pytest_function(h1_dark_tail.HYPOTHESIS, "test_dark_tail_necessary")
