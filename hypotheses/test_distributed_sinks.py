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
p-values Holm-corrected over the model's conditions x claims."""
import pytest

from sinkbench.distributed import SinkRule


def test_distributed_sinks(sinkbench, model_name, condition, claim):
    sinkbench.resume("H3", model_name, None, claim=claim, condition=condition)
    if condition == "bos" and sinkbench.subject(model_name).bos_id is None:
        pytest.skip(f"{model_name}: the tokenizer has no BOS token to force on")
    grid = sinkbench.h3(model_name)
    passed, m = grid[condition, claim]
    s = sinkbench.settings
    params = sinkbench.params(model_name, condition=condition, **SinkRule.from_settings(s).record(),
                              h3_position_bins=s.h3_position_bins, h3_permutations=s.h3_permutations)
    sinkbench.record("H3", model_name, None, params, passed, m, claim=claim, condition=condition)
    shown = {k: v for k, v in m.items() if k not in ("per_window", "per_window_counts", "scatter_sample", "top_sink_tokens",
                                                "layer_scores", "sink_like_by_position")}
    assert passed, f"H3 claim {claim} fails on {model_name} ({condition}): " + ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
