"""sinkbench's harness: load a causal LM, filter its residual stream in spectral
bands, measure NLL and attention sinks, and turn paired measurements into verdicts."""

__version__ = "0.1.0"
