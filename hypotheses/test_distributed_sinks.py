"""H3, distributed sinks (docs/methods.md).

Per model and BOS condition (bos: BOS first in every window; nobos: no BOS; the
model's native one is recorded as native), in the layers where attention
concentrates (chosen on selection windows, harness/distributed.py), a position is
sink-like when it receives h3_min_ratio times what the same layers give that place
(its query-key cells) on selection windows, steadily (CV <= h3_max_cv). Each claim is
one statistic per test window, tested by permutations within windows (h3_stats):
 1. sink-like positions fall on frequent tokens (top h3_frequent_share types,
    punctuation or whitespace) more than the window's base rate (exact: the summed
    hypergeometric count);
 2. attention received and dark ratio correlate within position bins of each window
    (dark ratio permuted within bins);
 3. sink-like positions' band profiles are closer (cosine) to position 0's than
    ordinary positions' in the same bins (labels permuted within bins);
 4. more than one sink: more than half of the windows have at least two sink-like
    positions, position 0 included when it meets the rule (exact binomial test,
    Clopper-Pearson interval).
p-values Holm-corrected over the model's conditions x claims.

The hypothesis itself (grid, verdicts, calibration nulls, figures) is the unit
sinkbench.hypotheses.h3_distributed; this file only names its tests."""
from sinkbench.hypotheses import h3_distributed
from sinkbench.registry import pytest_function

test_distributed_sinks = pytest_function(h3_distributed.HYPOTHESIS, "test_distributed_sinks")
