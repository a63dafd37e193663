"""H3, distributed sinks (the seed's conjecture; issue 4).

Per model and BOS condition (native, bos forced on, nobos removed), in the layers
where attention concentrates (harness/distributed.py defines them):
 1. sink-like positions are over-represented on frequent tokens (top 1% types, or
    punctuation/whitespace): one-sided Fisher exact;
 2. attention received and dark ratio are positively correlated (Spearman), position 0 excluded;
 3. sink-like positions' band profiles are closer (cosine) to position 0's than ordinary ones (Mann-Whitney);
 4. there is more than one sink: sink-like positions per window beyond 0, CI excluding zero.
p-values Holm-corrected over the model's conditions x claims."""
import pytest

from harness.distributed import MIN_QUERIES


def test_distributed_sinks(sinkbench, model_name, condition, claim):
    sinkbench.resume("H3", model_name, None, claim=claim, condition=condition)
    if condition == "bos" and sinkbench.subject(model_name).bos_id is None:
        pytest.skip(f"{model_name}: the tokenizer has no BOS token to force on")
    grid = sinkbench.h3(model_name)
    passed, m = grid[condition, claim]
    s = sinkbench.settings
    params = sinkbench.params(model_name, condition=condition, min_bar_ratio=5.0, max_cv=1.0,
                              min_queries=MIN_QUERIES, frequent_top_share=0.01)
    sinkbench.record("H3", model_name, None, params, passed, m, claim=claim, condition=condition)
    assert passed, f"H3 claim {claim} fails on {model_name} ({condition}): Holm p={m['p_value']:.3g}; " + ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items() if k not in ("per_seq_counts", "p_value"))
