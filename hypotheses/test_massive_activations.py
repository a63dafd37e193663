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

The hypothesis itself (grid, verdicts, calibration nulls, figures) is the unit
sinkbench.hypotheses.h6_massive; this file only names its tests."""
from sinkbench.hypotheses import h6_massive
from sinkbench.registry import pytest_function

test_massive_activations = pytest_function(h6_massive.HYPOTHESIS, "test_massive_activations")
