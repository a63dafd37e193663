"""H5, who writes the sink's dark signal. The hypothesis (its statement, grid, verdicts, calibration nulls and
figures) is the unit sinkbench.hypotheses.h5_sink_writer; this file names its tests."""
from sinkbench.hypotheses import h5_sink_writer
from sinkbench.registry import pytest_function

test_sink_writer = pytest_function(h5_sink_writer.HYPOTHESIS, "test_sink_writer")
