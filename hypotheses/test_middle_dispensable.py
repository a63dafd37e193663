"""H2, the middle of the spectrum is dispensable (Cancedda 2024; docs/methods.md).

After decoder layer l:
 H2a (relative, per k): the sink-preserving filter Omega_k (bands 1..k plus the dark
     tail K) gives significantly lower NLL than head_{k+1} (bands 1..k+1), which keeps
     the same number of dimensions;
 H2b (absolute, per layer): the Omega_k that keeps the most bands while deleting at
     least h2_min_frontier of the dimensions (fixed before any NLL is seen) raises NLL
     by at most frontier_tolerance nats: the upper end of the rise's 95% interval is
     within it, and the rise is significantly below it.
One-sided paired tests of means over windows (skew-guarded), Holm-corrected over the model's
layers x (k + 1). Also recorded: the descriptive compression frontier.

The hypothesis itself (grid, verdicts, calibration nulls, figures) is the unit
sinkbench.hypotheses.h2_middle; this file only names its tests."""
from sinkbench.hypotheses import h2_middle
from sinkbench.registry import pytest_function

test_middle_dispensable = pytest_function(h2_middle.HYPOTHESIS, "test_middle_dispensable")
test_middle_dispensable_absolute = pytest_function(h2_middle.HYPOTHESIS, "test_middle_dispensable_absolute")
