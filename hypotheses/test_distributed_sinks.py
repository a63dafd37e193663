"""H3, distributed sinks (docs/methods.md).

Per model and BOS condition (bos: BOS first in every window; nobos: no BOS; the
model's native one is recorded as native), in the layers where attention
concentrates (chosen on selection windows, harness/distributed.py), each claim one
statistic per test window, tested over windows:
 1. sink-like positions fall on frequent tokens (top 1% types, punctuation or
    whitespace) more than the window's base rate (Wilcoxon of share minus base rate);
 2. attention received and dark ratio correlate within windows (Wilcoxon of the
    within-window Spearman coefficients);
 3. sink-like positions' band profiles are closer (cosine) to position 0's than
    ordinary positions' (Wilcoxon of the per-window difference);
 4. more than one sink: more than half of the windows have at least two sink-like
    positions, position 0 included when it meets the rule (exact binomial test,
    Clopper-Pearson interval).
p-values Holm-corrected over the model's conditions x claims."""
import pytest

from sinkbench.distributed import MIN_QUERIES


def test_distributed_sinks(sinkbench, model_name, condition, claim):
    sinkbench.resume("H3", model_name, None, claim=claim, condition=condition)
    if condition == "bos" and sinkbench.subject(model_name).bos_id is None:
        pytest.skip(f"{model_name}: the tokenizer has no BOS token to force on")
    grid = sinkbench.h3(model_name)
    passed, m = grid[condition, claim]
    params = sinkbench.params(model_name, condition=condition, min_bar_ratio=5.0, max_cv=1.0,
                              min_queries=MIN_QUERIES, frequent_top_share=0.01)
    sinkbench.record("H3", model_name, None, params, passed, m, claim=claim, condition=condition)
    shown = {k: v for k, v in m.items() if k not in ("per_window", "per_window_counts", "scatter_sample", "top_sink_tokens")}
    assert passed, f"H3 claim {claim} fails on {model_name} ({condition}): " + ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
