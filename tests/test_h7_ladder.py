"""H7's designation ladder, recompute reference and per-layer upper bounds (sinkbench.measure.designate's
rungs, sinkbench.hypotheses.h7_streaming.measurement.h7_inputs) against a plain transformers forward with hooks written
here from the definitions in docs/methods.md §11: eager attention, explicit 4-D masks, the
residual edits as forward hooks on the decoder layers, the value and key edits on v_proj /
k_proj outputs (pre-rotary: the model's own rotary then rotates the transplanted key to
position 1), the upper bound's early masks swapped in by pre-hooks on the attention modules,
the recompute baseline as separate plain passes. Agreement to 1e-4 nats per window."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sinkbench.hypotheses.h7_streaming import measurement as streaming
from sinkbench.measure.designate import RUNGS

ZOO_BOS = Path(__file__).resolve().parent.parent / "fixtures" / "zoo" / "tiny-bb-bos"
P = streaming.CONTROL_POSITION


def mask(t: int, w: int, keep=()) -> torch.Tensor:
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    ok = (j <= i) & (i - j < w)
    for k in keep:
        ok |= (j == k) & (j <= i)
    return torch.zeros(t, t).masked_fill(~ok, torch.finfo(torch.float32).min)[None, None]


def plain_read(model, ids, w, *, attention_mask=None, hooks=()) -> np.ndarray:
    handles = [m.register_forward_hook(f) if not pre else m.register_forward_pre_hook(f, with_kwargs=True)
               for m, f, pre in hooks]
    try:
        with torch.no_grad():
            logits = model(ids, attention_mask=attention_mask).logits.float()
    finally:
        for h in handles:
            h.remove()
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
    return ce.view(ids.shape[0], -1)[:, w:].mean(1).numpy()


def out_hook(fn):
    def hook(module, args, out):
        h = out[0] if isinstance(out, tuple) else out
        h = fn(h.clone())
        return (h, *out[1:]) if isinstance(out, tuple) else h
    return hook


def heads_hook(fn, head_dim):
    """A hook on a k_proj / v_proj output [B, T, H * hd], fn on [B, T, H, hd]."""
    def hook(module, args, out):
        x = out.clone().view(*out.shape[:2], -1, head_dim)
        return fn(x).flatten(2)
    return hook


def independent(model, ids, w, rung_or_regime: str, layer: int, band_k: torch.Tensor, bos: bool) -> np.ndarray:
    """The per-window NLL (positions >= W) of one ladder regime, an upper bound or the recompute
    baseline, by a plain forward with hooks."""
    layers = model.model.layers
    t = ids.shape[1]
    control = mask(t, w, keep=(P,))
    if rung_or_regime == "recompute":
        from benchmarks.h7_independent import recompute_nll

        return recompute_nll(model, ids, w, bos).mean(1).numpy()
    if rung_or_regime == "late_sink":
        win = mask(t, w)

        def early(module, args, kwargs):
            return args, {**kwargs, "attention_mask": win}
        hooks = [(layers[i].self_attn, early, True) for i in range(layer + 1)]
        return plain_read(model, ids, w, attention_mask=mask(t, w, keep=(0,)), hooks=hooks)
    return plain_read(model, ids, w, attention_mask=control, hooks=rung_hooks(model, rung_or_regime, layer, band_k))


def rung_hooks(model, rung: str, layer: int, band_k: torch.Tensor) -> list:
    """(module, hook, is_pre) for one rung of the ladder at `layer`, written from methods §11."""
    layers = model.model.layers
    n = len(layers)
    hd = layers[0].self_attn.head_dim
    proj = band_k @ band_k.T

    def set_k(h):
        h[:, P] = h[:, P] - h[:, P] @ proj + h[:, 0] @ proj
        return h

    def copy(h):
        h[:, P] = h[:, 0]
        return h

    def add(h):
        h[:, P] = h[:, P] + h[:, 0] @ proj
        return h

    def drain(x):
        x[:, P] = x[:, P] * (x[:, 0].norm(dim=-1) / x[:, P].norm(dim=-1))[..., None]
        return x

    def transplant(x):
        x[:, P] = x[:, 0]
        return x

    later = range(layer + 1, n)
    return {"dark_write": [(layers[layer], out_hook(add), False)],
             "dark_kept": [(layers[i], out_hook(set_k), False) for i in range(layer, n - 1)],
             "value_drain": [(layers[i], out_hook(set_k), False) for i in range(layer, n - 1)]
             + [(layers[i].self_attn.v_proj, heads_hook(drain, hd), False) for i in later],
             "kv_transplant": [(layers[i].self_attn.k_proj, heads_hook(transplant, hd), False) for i in later]
             + [(layers[i].self_attn.v_proj, heads_hook(transplant, hd), False) for i in later],
             "state_copy": [(layers[layer], out_hook(copy), False)]}[rung]


def check_agreement(subject, plain, ids, w, layer, tol=1e-4):
    from sinkbench.hypotheses.h7_streaming.verdicts import designated_key
    from sinkbench.measure.spectrum import spectrum_for

    spectrum = spectrum_for(subject, 20, "U")
    band_k = spectrum.band_vectors([spectrum.n_bands]).float().cpu()
    test, extra = streaming.h7_inputs(subject, ids, 4, w, spectrum, layers=[layer], ladder=[layer])
    bos = bool(subject.uses_bos)
    ours = {"recompute": test.recompute, "late_sink": test.late[layer], "dark_write": test.designated[layer],
            **{r: test.ladder[(r, layer)] for r in RUNGS[1:]}}
    worst = {}
    for name, v in ours.items():
        want = independent(plain, ids, w, name, layer, band_k, bos)
        worst[name] = float(np.abs(v - want).max())
    assert max(worst.values()) < tol, worst
    print(subject.name, {k: f'{v:.1e}' for k, v in worst.items()})
    assert set(extra["nll_by_position"]) >= {designated_key(layer), streaming.late_key(layer), "recompute",
                                             *(streaming.rung_key(r, layer) for r in RUNGS)}
    return test, extra, worst


def test_every_rung_the_upper_bound_and_the_reference_agree_with_a_plain_forward_on_the_zoo():
    """tiny-bb-bos (two layers: the ladder at layer 0, its later-layer edits at layer 1)."""
    from transformers import AutoModelForCausalLM

    from sinkbench.model.access import load_subject
    from sinkbench.measure.data import windows_for

    subject = load_subject("tiny-bb-bos")
    ids = windows_for(subject, "auto", 64, 8)
    plain = AutoModelForCausalLM.from_pretrained(ZOO_BOS, attn_implementation="eager").eval()
    test, _, worst = check_agreement(subject, plain, ids, 16, 0)
    # the rungs differ from one another and from the control where they should
    assert np.abs(test.ladder[("value_drain", 0)] - test.ladder[("dark_kept", 0)]).max() > 1e-4
    assert np.abs(test.ladder[("kv_transplant", 0)] - test.control).max() > 1e-4


def test_the_rungs_agree_on_a_four_layer_llama_at_a_middle_layer():
    """A tiny random Llama (4 layers, grouped-query heads): at layer 1 the kept write acts at the
    outputs of layers 1-2 and the value/key edits at layers 2-3, so every hook is exercised."""
    from tests.conftest import as_subject, tiny_llama

    subject = as_subject(tiny_llama(seed=5))
    plain = tiny_llama(seed=5)
    ids = torch.randint(3, 259, (4, 24), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = 1
    test, extra, _ = check_agreement(subject, plain, ids, 8, 1)
    # rung 4 gives position 1 position 0's value at the later layers: the profile reads it there
    prof = extra["profile"][streaming.rung_key("kv_transplant", 1)]
    nat = extra["profile"]["sink1"]
    for i in (2, 3):
        assert prof[str(P)]["value_ratio"][i] == pytest.approx(nat["0"]["value_ratio"][i], rel=0.05)


def test_each_rungs_readout_with_the_natural_sink_present_agrees_with_a_plain_forward():
    """H4-A's readout of the ladder (methods §11): each rung at layer 1 of a four-layer random
    Llama, every key visible; the attention of the queries >= W to positions 1 and 0 (mean over
    heads and queries, per window, then over layers 2-3) against transformers' own attention
    probabilities with the rung as hooks; capture is the edited / unedited ratio of means."""
    from sinkbench.measure.spectrum import spectrum_for
    from tests.conftest import as_subject, tiny_llama

    subject = as_subject(tiny_llama(seed=5))
    plain = tiny_llama(seed=5)
    ids = torch.randint(3, 259, (4, 24), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = 1
    w, layer = 8, 1
    spectrum = spectrum_for(subject, 20, "U")
    band_k = spectrum.band_vectors([spectrum.n_bands]).float().cpu()
    _, extra = streaming.h7_inputs(subject, ids, 4, w, spectrum, layers=[layer], ladder=[layer], readout=True)

    def attention(hooks) -> np.ndarray:  # [N, 2]: to positions 0 and 1, layers 2..3
        handles = [m.register_forward_hook(f) for m, f, _ in hooks]
        try:
            with torch.no_grad():
                att = plain(ids, output_attentions=True).attentions
        finally:
            for h in handles:
                h.remove()
        return np.mean([att[i][:, :, w:, [0, P]].mean((1, 2)).numpy() for i in range(layer + 1, 4)], 0)

    base = attention([])
    for rung in RUNGS:
        got = streaming.rung_readout(extra["attention"], extra["nll"], rung, layer)
        want = attention(rung_hooks(plain, rung, layer, band_k))
        assert got["attention_to_designated"] == pytest.approx(want[:, 1].mean(), abs=1e-5), rung
        assert got["attention_to_sink"] == pytest.approx(want[:, 0].mean(), abs=1e-5), rung
        assert got["capture"] == pytest.approx(want[:, 1].mean() / base[:, 1].mean(), rel=1e-4), rung
        assert got["layers_read"] == [2, 3]
    # the readout is recorded, not the regimes' NLL curve; off means no readout passes
    assert not any(k.startswith("readout_") for k in extra["nll_by_position"])
    _, off = streaming.h7_inputs(subject, ids, 4, w, spectrum, layers=[layer], ladder=[layer])
    assert off["attention"] == {} and streaming.rung_readout(off["attention"], off["nll"], "state_copy", layer) is None


def test_the_ladder_on_a_model_whose_sliding_layers_have_their_own_window():
    """Gemma-3 shape (q/k norms before the rotary, sliding layers with their own window 16): with
    T = 16 the model's window holds every key, so the plain forward's one mask is the regime's."""
    from tests.conftest import as_subject, tiny_gemma3

    subject = as_subject(tiny_gemma3(seed=2), "tiny-gemma3")
    plain = tiny_gemma3(seed=2)
    ids = torch.randint(3, 259, (3, 16), generator=torch.Generator().manual_seed(2))
    ids[:, 0] = 1
    assert streaming.own_mask(subject.model.config)["sliding_window"] == 16
    check_agreement(subject, plain, ids, 6, 0)


def test_ladder_layers_default_and_grid():
    assert streaming.ladder_layers([7, 15, 22], 30) == [1, 15]
    assert streaming.ladder_layers([7, 15, 22], 30, "grid") == [1, 7, 15, 22]
    assert streaming.ladder_layers([0], 2) == [0]
    assert streaming.ladder_layers([3], 4, "default") == [1, 3]


def test_the_figure_draws_the_ladder_beside_the_curve():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sinkbench.hypotheses.h7_streaming.verdicts import h7_verdicts
    from sinkbench.hypotheses.h7_streaming.figure import h7_figure
    from tests.test_h7_claims import arrays, with_rungs

    t = with_rungs(arrays(), {"kv_transplant": 1.0, "state_copy": 1.0})
    m = h7_verdicts(t, alpha=0.05, min_gap=0.1, min_recovered=0.5, n_boot=100)["e"][1]
    curve = {r: list(np.linspace(3, 2, 63)) for r in (*streaming.REGIMES, "recompute", "designated_L1", "designated_L15")}
    m["regimes"] = {"window": 16, "read_from_position": 16, "nll_by_position": curve, "nll_by_regime": m["nll"],
                    "ladder_layers": [1, 15], "reference": "recompute"}
    title, png = h7_figure(plt, m, "synthetic")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_rung_6_learns_an_embedding_and_its_regime_agrees_with_a_plain_forward():
    """tiny-bb-bos: a few Adam steps on selection-like windows lower the evicted window's loss;
    the learned_sink regime equals a plain forward given inputs_embeds with position 1's row
    replaced by the vector, under the control mask."""
    from transformers import AutoModelForCausalLM

    from sinkbench.model.access import load_subject
    from sinkbench.measure.data import windows_for
    from sinkbench.measure.designate import LEARNED, LEARNED_LAYER, learn_sink_embedding
    from sinkbench.measure.spectrum import spectrum_for

    subject = load_subject("tiny-bb-bos")
    ids = windows_for(subject, "auto", 64, 8)
    w = 16
    control = streaming.regime_mask(subject, 64, "control", w)
    got = learn_sink_embedding(subject, ids[4:], control, w, P, steps=20)
    assert got["loss"][1] < got["loss"][0] and got["vector"].shape == (subject.d_model,)
    v = got["vector"]
    test, extra = streaming.h7_inputs(subject, ids[:4], 4, w, spectrum_for(subject, 20, "U"), layers=[0], ladder=[0],
                                      learned=v)
    ours = test.ladder[(LEARNED, LEARNED_LAYER)]
    plain = AutoModelForCausalLM.from_pretrained(ZOO_BOS, attn_implementation="eager").eval()
    with torch.no_grad():
        x = plain.get_input_embeddings()(ids[:4]).clone()
        x[:, P] = v
        logits = plain(inputs_embeds=x, attention_mask=mask(64, w, keep=(P,))).logits.float()
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:4, 1:].flatten(), reduction="none")
    np.testing.assert_allclose(ours, ce.view(4, -1)[:, w:].mean(1).numpy(), atol=1e-4)
    assert streaming.rung_key(LEARNED, LEARNED_LAYER) in extra["nll_by_position"]


def test_early_layer_is_where_the_first_tokens_massive_coordinate_forms():
    ratio = np.array([[3.0, 40.0, 900.0, 1200.0], [2.0, 150.0, 800.0, 1100.0], [4.0, 30.0, 50.0, 1000.0]])
    from sinkbench.measure.massive import first_massive_layer

    layer, info = first_massive_layer(ratio, 100.0, fallback=1)
    assert layer == 2 and info["share_of_windows"] == [0.0, 0.333, 0.667, 1.0]  # layer 1: one window in three
    layer, info = first_massive_layer(ratio, 5000.0, fallback=1)
    assert layer == 1 and info["rule"].startswith("no massive coordinate")


def test_early_layer_detected_on_a_model_and_set_by_hand():
    from sinkbench.errors import SinkbenchError
    from sinkbench.model.access import load_subject
    from sinkbench.measure.data import windows_for

    subject = load_subject("tiny-bb-bos")
    ids = windows_for(subject, "auto", 24, 4)
    layer, info = streaming.early_layer(subject, ids, 4, 100.0)
    assert layer == 0 and len(info["first_token_max_ratio"]) == 1  # two layers: a write at 0 is the only one read later
    assert streaming.early_layer(subject, ids, 4, 100.0, chosen=0)[1]["rule"].startswith("set")
    with pytest.raises(SinkbenchError, match="H7.early_layer = 1: .* pass a layer in 0..0"):
        streaming.early_layer(subject, ids, 4, 100.0, chosen=1)


def test_the_report_draws_the_ladder_across_models_one_line_per_model(tmp_path):
    """Issue 28 item 6: rungs on x, share of sink1's recovery with its interval on y, one line
    per model, the value drain beside it; in the report's "Across models" when two models have
    a ladder, and not for one."""
    from sinkbench.hypotheses.h7_streaming import figures_across
    from sinkbench.hypotheses.h7_streaming.verdicts import h7_verdicts
    from sinkbench.read.report import write_report
    from sinkbench.read.results import append_jsonl
    from tests.test_h7_claims import arrays, with_rungs

    def record(model, works):
        m = h7_verdicts(with_rungs(arrays(), works), alpha=0.05, min_gap=0.1, min_recovered=0.5, n_boot=100)["e"][1]
        m["regimes"] = {"sink_profile": {"1": {"natural": {"value_ratio": 0.2}, "control": {"value_ratio": 0.7},
                                               "designated": {"value_ratio": 0.5}, "value_drain": {"value_ratio": 0.2}}}}
        return {"hypothesis": "H7", "claim": "e", "model": model, "family": "llama", "layer": None,
                "params": {"n_seqs": 16, "seq_len": 128}, "verdict": "pass", "metrics": m}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = {"a": [record("a", {"state_copy": 1.0})], "b": [record("b", {"value_drain": 1.0, "state_copy": 1.0})]}
    assert all(r["metrics"]["positive_control"]["layer"] == 1 for rs in recs.values() for r in rs)
    (fig, title), = figures_across(plt, recs)
    labels = [x.get_text() for x in fig.axes[0].get_legend().get_texts()]
    assert labels == ["a (layer 1)", "b (layer 1)"] and "across models" in title
    assert [x.get_text() for x in fig.axes[1].get_legend().get_texts()] == ["a", "b"]
    plt.close(fig)
    for rs in recs.values():
        for r in rs:
            append_jsonl(tmp_path / "results.jsonl", r)
    md, _ = write_report(tmp_path)
    assert "## Across models" in md.read_text() and (tmp_path / "figures" / "across-0.png").exists()
    one = tmp_path / "one"
    one.mkdir()
    append_jsonl(one / "results.jsonl", recs["a"][0])
    assert "## Across models" not in write_report(one)[0].read_text()
