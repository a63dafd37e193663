"""H1, the dark tail is necessary. The hypothesis (its statement, grid, verdicts, calibration nulls and
figures) is the unit sinkbench.hypotheses.h1_dark_tail; this file names its tests."""
from sinkbench.hypotheses import h1_dark_tail
from sinkbench.registry import pytest_function

test_dark_tail_necessary = pytest_function(h1_dark_tail.HYPOTHESIS, "test_dark_tail_necessary")
