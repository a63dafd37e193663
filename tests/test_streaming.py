"""H7 (sinks that do work): the regimes' masks, their NLLs against independent
plain-transformers computations on tiny-bb-bos, and the verdicts on synthetic per-window
arrays (a model where evicting the sink changes nothing fails (a); a control token that
rescues fails (c))."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sinkbench import streaming
from sinkbench.claims_h7 import CLAIMS, h7_verdicts
from sinkbench.streaming import H7Test, allowed

ZOO_BOS = Path(__file__).resolve().parent.parent / "fixtures" / "zoo" / "tiny-bb-bos"
W, T, N = 16, 64, 16


def test_masks_keep_the_window_and_the_kept_tokens_and_stay_causal():
    full = allowed(8, "full", 3)
    assert torch.equal(full, torch.ones(8, 8, dtype=torch.bool).tril())
    win = allowed(8, "window", 3)
    assert win.sum(1).tolist() == [1, 2, 3, 3, 3, 3, 3, 3] and not win[5, 2] and win[5, 3]
    sink = allowed(8, "sink1", 3)
    assert sink[:, 0].all() and (sink.int() - win.int()).sum() == 5  # key 0 added for queries 3..7
    assert allowed(8, "control", 3)[3:, streaming.CONTROL_POSITION].all() and not allowed(8, "control", 3)[7, 0]
    assert allowed(8, "sink4", 3)[7, :4].all() and not allowed(8, "sink4", 3)[7, 4]
    assert not torch.triu(allowed(8, "sink4", 5), 1).any()
    assert torch.equal(allowed(8, "sink1", 3, own_window=2), allowed(8, "window", 2))


@pytest.fixture(scope="module")
def bos():
    from sinkbench.access import load_subject
    from sinkbench.data import windows_for

    subject = load_subject("tiny-bb-bos")
    return subject, windows_for(subject, "auto", T, N)


def plain_nll(model, ids, **kwargs) -> np.ndarray:
    with torch.no_grad():
        logits = model(ids, **kwargs).logits.float()
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(),
                                             reduction="none").view(ids.shape[0], -1).numpy()


def test_the_window_regime_is_mistral_s_own_sliding_window(bos):
    """Independent: the same weights as a Mistral with sliding_window = W (transformers' own
    sliding mask, eager attention, no mask passed) give the window regime's per-token NLL."""
    from transformers import AutoConfig, MistralConfig, MistralForCausalLM

    subject, windows = bos
    cfg = AutoConfig.from_pretrained(ZOO_BOS).to_dict()
    for key in ("model_type", "architectures", "transformers_version"):
        cfg.pop(key, None)
    config = MistralConfig(**{**cfg, "sliding_window": W})
    config._attn_implementation = "eager"
    model = MistralForCausalLM.from_pretrained(ZOO_BOS, config=config).eval()
    ours = streaming.regime_token_nll(subject, windows, 8, "window", W)
    np.testing.assert_allclose(ours, plain_nll(model, windows), atol=1e-4)


def test_the_sink_regime_matches_a_plain_eager_forward_with_the_mask(bos):
    from transformers import AutoModelForCausalLM

    subject, windows = bos
    model = AutoModelForCausalLM.from_pretrained(ZOO_BOS, attn_implementation="eager").eval()
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    ok = (j <= i) & ((i - j < W) | (j == 0))
    mask = torch.zeros(T, T).masked_fill(~ok, torch.finfo(torch.float32).min)[None, None]
    ours = streaming.regime_token_nll(subject, windows, 8, "sink1", W)
    np.testing.assert_allclose(ours, plain_nll(model, windows, attention_mask=mask), atol=1e-4)
    full = streaming.regime_token_nll(subject, windows, 8, "full", W)
    np.testing.assert_allclose(full, plain_nll(model, windows), atol=1e-4)


def synthetic(gap: float, sink_left: float, control_left: float, n: int = 32, seed: int = 0) -> H7Test:
    """NLLs per window: full ~ 2, window = full + gap, sink1 / control leave a share of it."""
    rng = np.random.default_rng(seed)
    full = 2.0 + 0.1 * rng.standard_normal(n)
    g = gap + 0.05 * rng.standard_normal(n)
    noise = lambda: 0.01 * rng.standard_normal(n)  # noqa: E731
    return H7Test(full=full, window=full + g, sink1=full + sink_left * g + noise(), sink4=full + noise(),
                  control=full + control_left * g + noise())


def verdicts(t):
    return h7_verdicts(t, alpha=0.05, min_gap=0.1, min_recovered=0.5, n_boot=200)


def test_a_streaming_sink_passes_every_claim():
    out = verdicts(synthetic(gap=1.0, sink_left=0.1, control_left=0.9))
    assert set(out) == set(CLAIMS) and all(passed for passed, _ in out.values())
    assert out["b"][1]["recovered_share"] == pytest.approx(0.9, abs=0.02)
    assert out["c"][1]["recovered_share"] == pytest.approx(0.1, abs=0.02)


def test_a_model_where_evicting_changes_nothing_fails_a():
    out = verdicts(synthetic(gap=0.0, sink_left=0.0, control_left=0.0))
    passed, m = out["a"]
    assert not passed and abs(m["gap"]) < 0.05 and m["p_value"] > 0.5
    assert out["b"][1]["gap_established"] is False


def test_a_control_token_that_rescues_fails_c():
    out = verdicts(synthetic(gap=1.0, sink_left=0.1, control_left=0.1))
    assert out["a"][0] and out["b"][0] and not out["c"][0]
