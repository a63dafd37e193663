"""H7, sinks that do work (StreamingLLM, Xiao et al. 2023; docs/methods.md §11): a sliding
attention window with and without the sink, a control token, and a designated sink.

The hypothesis itself (grid, verdicts, checks, figure) is the unit
sinkbench.hypotheses.h7_streaming; this file only names its test."""
from sinkbench.hypotheses import h7_streaming
from sinkbench.registry import pytest_function

test_streaming_sinks = pytest_function(h7_streaming.HYPOTHESIS, "test_streaming_sinks")
