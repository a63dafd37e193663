"""Reading results: the records file (results), comparing runs (compare, expect), a checkpoint
series (series), findings in words (findings) and the report (report). Imports the layers
below and sinkbench.registry (claim titles, key effects); never the run."""
