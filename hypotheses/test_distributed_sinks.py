"""H3, distributed sinks. The hypothesis (its statement, grid, verdicts, calibration nulls and
figures) is the unit sinkbench.hypotheses.h3_distributed; this file names its tests."""
from sinkbench.hypotheses import h3_distributed
from sinkbench.registry import pytest_function

test_distributed_sinks = pytest_function(h3_distributed.HYPOTHESIS, "test_distributed_sinks")
