"""Statistics: the tests and intervals (inference), the claim helpers a verdict is built
from (claims), verdict stability under resampling (stability), the unit of replication (units)
and the nulls units declare their criteria with (nulls). numpy and scipy only: this layer
imports nothing else of sinkbench but sinkbench.errors.

`sinkbench.stats.<name>` keeps working for the names of sinkbench.stats.inference (the module
this package replaced)."""
from sinkbench.stats.inference import (MAX_NAN_SHARE, TEST_RESAMPLES, Windows, binomial_greater, case_seed, cost_greater, holm,
                                       informative, lag1_autocorrelation, mean_ci, mean_greater, min_windows,
                                       prediction_greater, proportion_ci, ratio_ci, skew_margin, smallest_p,
                                       too_many_nan)
