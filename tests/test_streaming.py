"""H7 (sinks that do work): the regimes' masks, their NLLs against independent
plain-transformers computations on tiny-bb-bos, and the verdicts on synthetic per-window
arrays (a model where evicting the sink changes nothing fails (a); a control token that
rescues fails (c))."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from sinkbench.hypotheses.h7_streaming import measurement as streaming
from sinkbench.hypotheses.h7_streaming.verdicts import CLAIMS, h7_verdicts
from sinkbench.hypotheses.h7_streaming.measurement import H7Test, allowed

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
    from sinkbench.model.access import load_subject
    from sinkbench.measure.data import windows_for

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


def synthetic(gap: float, sink_left: float, control_left: float, n: int = 32, seed: int = 0,
              recompute_left: float | None = None) -> H7Test:
    """NLLs per window: full ~ 2, window = full + gap, sink1 / control leave a share of it;
    recompute_left: the recompute reference leaves that share (None: no reference run)."""
    rng = np.random.default_rng(seed)
    full = 2.0 + 0.1 * rng.standard_normal(n)
    g = gap + 0.05 * rng.standard_normal(n)
    noise = lambda: 0.01 * rng.standard_normal(n)  # noqa: E731
    return H7Test(full=full, window=full + g, sink1=full + sink_left * g + noise(), sink4=full + noise(),
                  control=full + control_left * g + noise(),
                  recompute=None if recompute_left is None else full + recompute_left * g + noise())


def verdicts(t):
    return h7_verdicts(t, alpha=0.05, min_gap=0.1, min_recovered=0.5, n_boot=200)


def test_a_streaming_sink_passes_every_claim():
    out = verdicts(with_designated(synthetic(gap=1.0, sink_left=0.1, control_left=0.9), left=0.2))
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


# --------------------------------------------------------------------------- claim (d)
def with_designated(t: H7Test, left: float, seed: int = 1) -> H7Test:
    """t with a designated regime at grid layers 3 and 6: at layer 6 it leaves `left` of the
    gap (like sink1 at 0.1, the control at 0.9), at layer 3 it does nothing (the control's)."""
    rng = np.random.default_rng(seed)
    gap = t.window - t.full
    d6 = t.full + left * gap + 0.01 * rng.standard_normal(gap.size)
    return dataclasses.replace(t, designated={3: t.control.copy(), 6: d6})


def test_a_designated_sink_that_rescues_passes_d_and_the_family_grows_by_a_test_per_layer():
    out = verdicts(with_designated(synthetic(gap=1.0, sink_left=0.1, control_left=0.9), left=0.2))
    passed, m = out["d"]
    assert set(out) == set(CLAIMS) and passed and m["passing_layers"] == [6] and m["best_layer"] == 6
    assert m["share_of_sink1"]["6"] == pytest.approx(0.8 / 0.9, abs=0.03)
    assert m["share_of_sink1"]["3"] == pytest.approx(0.1 / 0.9, abs=0.03) and m["p_value_by_layer"]["3"] > 0.5
    assert m["sink_rescues"] and all(out[k][0] for k in "abc")


def test_a_designated_write_that_does_nothing_fails_d():
    """The written control token is the control token: it recovers what the control does."""
    t = synthetic(gap=1.0, sink_left=0.1, control_left=0.9)
    passed, m = verdicts(dataclasses.replace(t, designated={3: t.control.copy(), 6: t.control.copy()}))["d"]
    assert not passed and m["passing_layers"] == [] and max(m["p_value_by_layer"].values()) > 0.5


def test_d_at_its_boundary_rarely_passes():
    """Null: the designated sink recovers exactly h7_min_designated of sink1's recovery, with
    noise; d passes in about alpha of the draws or fewer (two layers, both at the boundary)."""
    passes = []
    for seed in range(60):
        t = synthetic(gap=1.0, sink_left=0.1, control_left=0.9, seed=seed)
        rng = np.random.default_rng(100 + seed)
        natural = t.window - t.sink1
        at = lambda: t.window - 0.5 * natural + 0.2 * rng.standard_normal(natural.size)  # noqa: E731
        passes.append(verdicts(dataclasses.replace(t, designated={3: at(), 6: at()}))["d"][0])
    assert np.mean(passes) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 60)


def test_d_fails_where_the_first_token_rescues_nothing_even_if_the_designated_test_rejects():
    """tiny-bb-designated's shape: the control position is the trained sink, so the control
    (and the written control) recovers everything and sink1 nothing; the per-layer test
    rejects (0 >= 0.5 x 0), but there is no working sink to replace: (a) fails, and (d) with it."""
    t = synthetic(gap=1.0, sink_left=1.0, control_left=0.0)
    passed, m = verdicts(dataclasses.replace(t, designated={3: t.control.copy()}))["d"]
    assert m["p_value_by_layer"]["3"] < 0.05 and m["passing_layers"] == [] and not passed
    assert m["sink_works"] is False and m["sink_rescues"] is False


def test_a_model_where_evicting_changes_nothing_fails_d_too():
    t = synthetic(gap=0.0, sink_left=0.0, control_left=0.0)
    passed, m = verdicts(dataclasses.replace(t, designated={3: t.control.copy()}))["d"]
    assert not passed and m["sink_rescues"] is False


def test_the_designated_regime_is_the_control_regime_plus_h4_s_write(bos):
    """Through the pass: a write of nothing (a zero dark projector) gives the control regime's
    NLLs exactly; the real write changes them; sinkbench.measure.designate's write_dark does the adding."""
    from types import SimpleNamespace

    from sinkbench.hypotheses.h7_streaming.verdicts import designated_key
    from sinkbench.measure.spectrum import spectrum_for

    subject, windows = bos
    spectrum = spectrum_for(subject, 20, "U")
    test, extra = streaming.h7_inputs(subject, windows, 8, W, spectrum, layers=[0])
    ref = streaming.regime_token_nll(subject, windows, 8, "control", W)
    np.testing.assert_allclose(test.control, ref[:, W:].mean(1), atol=1e-5)
    assert np.abs(test.designated[0] - test.control).max() > 1e-4
    nothing = SimpleNamespace(n_bands=20, keep=lambda bands: torch.zeros(subject.d_model, subject.d_model))
    zero, _ = streaming.h7_inputs(subject, windows, 8, W, nothing, layers=[0])
    np.testing.assert_allclose(zero.designated[0], test.control, atol=1e-5)
    assert streaming.passes_per_run(1, 0) == len(extra["nll_by_position"]) == 6
    prof = extra["profile"]
    assert set(prof) == {*streaming.REGIMES, designated_key(0)}
    # position 0 and its residual are the same in every regime (it sees only itself)
    assert prof["sink1"]["0"]["residual_ratio"][0] == pytest.approx(prof["full"]["0"]["residual_ratio"][0], rel=0.05)


# --------------------------------------------------------------------------- the profile
def test_the_profile_matches_a_plain_forward_of_a_tiny_random_llama():
    """value / residual norm ratios, query-key cosine and attention of positions 0 and 3 on a
    tiny random Llama, against hooks on v_proj, q_proj, k_proj with transformers' own rotary,
    hidden states and attention maps of a plain eager forward."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    from tests.conftest import as_subject, tiny_llama
    from sinkbench.measure.sink_profile import profiled_pass, summarize

    subject = as_subject(tiny_llama(seed=3))
    model = subject.model
    ids = torch.randint(3, 259, (4, 24), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = 1
    positions, from_q = (0, 3), 8
    _, prof = profiled_pass(subject, ids, 4, positions=positions, from_query=from_q)
    ours = summarize(prof, positions)

    got = {}
    hooks = [getattr(model.model.layers[1].self_attn, n).register_forward_hook(
        lambda m, a, o, n=n: got.__setitem__(n, o)) for n in ("q_proj", "k_proj", "v_proj")]
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, output_attentions=True)
    for h in hooks:
        h.remove()
    att = model.model.layers[1].self_attn
    hd = att.head_dim
    shape = lambda x: x.view(4, 24, -1, hd).transpose(1, 2)  # noqa: E731
    cos_sin = model.model.rotary_emb(out.hidden_states[1], torch.arange(24)[None])
    q, k = apply_rotary_pos_emb(shape(got["q_proj"]), shape(got["k_proj"]), *cos_sin)
    k = k.repeat_interleave(q.shape[1] // k.shape[1], 1)
    vn = shape(got["v_proj"]).norm(dim=-1).mean(1)
    rn = out.hidden_states[1].norm(dim=-1)  # the residual entering layer 1
    others = [j for j in range(24) if j not in positions]
    for p in positions:
        later = [i for i in range(24) if i >= from_q and i > p]
        cos = torch.nn.functional.cosine_similarity(q[:, :, later], k[:, :, p:p + 1], dim=-1).mean((1, 2))
        want = {"value_ratio": vn[:, p] / vn[:, others].median(1).values,
                "residual_ratio": rn[:, p] / rn[:, others].median(1).values,
                "query_key_cos": cos, "attention": out.attentions[1][:, :, later, p].mean((1, 2))}
        for key, v in want.items():
            assert ours[str(p)][key][1] == pytest.approx(float(v.mean()), rel=1e-4, abs=1e-6), (p, key)
    assert max(abs(x) for x in ours["learned_sink_mass"]) < 1e-5  # no learned sinks: rows sum to 1


def test_the_learned_sink_mass_of_the_zoo_sink_logit_model():
    """tiny-bb-sinklogit (GPT-OSS shape, learned per-head sink logits): the profile's
    learned_sink_mass is 1 - the row sum of a plain eager forward's attention over real keys,
    for the queries read; h7 records it per regime and layer (None for a model without)."""
    from transformers import AutoModelForCausalLM

    from sinkbench.model.access import load_subject
    from sinkbench.measure.data import windows_for
    from sinkbench.measure.sink_profile import profiled_pass, summarize

    zoo = ZOO_BOS.parent / "tiny-bb-sinklogit"
    subject = load_subject("tiny-bb-sinklogit")
    assert subject.learned_sinks
    ids = windows_for(subject, "auto", 32, 4)
    mask = streaming.regime_mask(subject, 32, "window", 8)
    _, prof = profiled_pass(subject, ids, 4, positions=(0, 1), from_query=8, attention_mask=mask)
    ours = summarize(prof, (0, 1))["learned_sink_mass"]
    model = AutoModelForCausalLM.from_pretrained(zoo, attn_implementation="eager").eval()
    with torch.no_grad():
        att = model(ids, attention_mask=mask, output_attentions=True).attentions
    want = [float((1 - a[:, :, 8:].sum(-1)).mean()) for a in att]
    assert ours == pytest.approx(want, abs=1e-5) and max(want) > 0.01


def test_the_h7_figure_draws_the_curve_and_the_shares():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sinkbench.hypotheses.h7_streaming.figure import h7_figure

    t = with_designated(synthetic(gap=1.0, sink_left=0.1, control_left=0.9), left=0.2)
    m = verdicts(t)["d"][1]
    curve = {r: list(np.linspace(3, 2, T - 1)) for r in (*streaming.REGIMES, "designated_L3", "designated_L6")}
    m["regimes"] = {"window": W, "read_from_position": W, "nll_by_position": curve, "nll_by_regime": m["nll"]}
    title, png = h7_figure(plt, m, "synthetic")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "W = 16" in title
