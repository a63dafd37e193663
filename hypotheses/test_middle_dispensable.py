"""H2, the middle of the spectrum is dispensable. The hypothesis (its statement, grid, verdicts, calibration nulls and
figures) is the unit sinkbench.hypotheses.h2_middle; this file names its tests."""
from sinkbench.hypotheses import h2_middle
from sinkbench.registry import pytest_function

test_middle_dispensable = pytest_function(h2_middle.HYPOTHESIS, "test_middle_dispensable")
test_middle_dispensable_absolute = pytest_function(h2_middle.HYPOTHESIS, "test_middle_dispensable_absolute")
