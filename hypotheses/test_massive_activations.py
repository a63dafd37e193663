"""H6, massive activations are dark. The hypothesis (its statement, grid, verdicts, calibration nulls and
figures) is the unit sinkbench.hypotheses.h6_massive; this file names its tests."""
from sinkbench.hypotheses import h6_massive
from sinkbench.registry import pytest_function

test_massive_activations = pytest_function(h6_massive.HYPOTHESIS, "test_massive_activations")
