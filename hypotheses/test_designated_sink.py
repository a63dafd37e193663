"""H4, a sink can be designated by hand: A by intervention, B by training. The hypothesis (its statement, grid, verdicts, calibration nulls and
figures) is the unit sinkbench.hypotheses.h4a_designated_write and sinkbench.hypotheses.h4b_designated_training; this file names its tests."""
from sinkbench.hypotheses import h4a_designated_write, h4b_designated_training
from sinkbench.registry import pytest_function

test_designated_by_intervention = pytest_function(h4a_designated_write.HYPOTHESIS, "test_designated_by_intervention")
test_designated_by_training = pytest_function(h4b_designated_training.HYPOTHESIS, "test_designated_by_training")
