"""The committed zoo: each model loads through the registry like any checkpoint, and
its sink behaviour, re-measured here with plain transformers (not harness.zoo.measure),
agrees with its manifest and with what the variant was built to show."""
import json

import numpy as np
import pytest
import torch

from harness import models
from harness.zoo.language import BigramBackcopy
from harness.zoo.train import VARIANTS, TrainConfig, heldout, train

ZOO = models.ZOO_DIR
EPS = 0.3  # Gu et al.'s sink threshold on attention


def manifest(name):
    return json.loads((ZOO / name / "sinkbench_zoo.json").read_text())


def remeasure(name):
    """Attention of every (layer, head) to the sink position from non-trigger and trigger
    queries that can see it, on the manifest's held-out sample; plain HF forward."""
    from transformers import AutoModelForCausalLM

    m = manifest(name)
    variant = VARIANTS[name]
    lang = BigramBackcopy(**m["evaluation"]["language"])
    ids, _ = heldout(lang, variant, m["train_config"]["seq_len"], seed=m["evaluation"]["heldout_sample_seed"])
    model = AutoModelForCausalLM.from_pretrained(ZOO / name, attn_implementation="eager").eval()
    with torch.no_grad():
        att = model(ids, output_attentions=True).attentions
    sink = variant.designated or 0
    t = ids.shape[1]
    q = np.arange(t)
    visible = (q > sink) & (q - sink < (variant.sliding_window or t))
    trig = lang.is_trigger(ids.numpy())
    out = {}
    for layer, a in enumerate(att):
        a = a[:, :, :, sink].numpy()  # [B, H, T]
        for h in range(a.shape[1]):
            out[layer, h] = (a[:, h][~trig & visible].mean(), a[:, h][trig & visible].mean() if (trig & visible).any() else None)
    return m, out


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_zoo_model_loads_through_the_registry(name):
    from harness.access import load_subject

    subject = load_subject(name)
    assert subject.meta["zoo"]["name"] == name
    assert subject.uses_bos == VARIANTS[name].bos
    assert models.resolve(name).kind == "hf_dir"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_manifest_agrees_with_an_independent_measurement(name):
    m, measured = remeasure(name)
    per = m["sink_behaviour"]["per_layer_head"]
    for (layer, h), (nontrig, trig) in measured.items():
        assert abs(per[layer][h]["sink_attn_nontrigger"] - nontrig) < 1e-4
        if trig is not None:
            assert abs(per[layer][h]["sink_attn_trigger"] - trig) < 1e-4


def copy_head(m):
    b = m["sink_behaviour"]
    return b["copy_head"], b["copy_head_sink_attn_nontrigger"], b["copy_head_sink_attn_trigger"], b["copy_head_copy_score"]


def test_bos_model_copying_head_is_dormant_on_bos():
    """Active on triggers (copies the token before), parks on BOS elsewhere (Guo et al.)."""
    (layer, head), nontrig, trig, copy = copy_head(manifest("tiny-bb-bos"))
    assert copy > 0.5, f"no copying head (best copy score {copy:.2f})"
    assert nontrig > 0.5 and nontrig > trig + 0.2, f"copy head L{layer}H{head}: non-trigger BOS attention {nontrig:.2f}, trigger {trig:.2f}"


def test_designated_token_is_a_sink():
    """Some head puts most of its non-trigger attention on the <sink> token at k.
    (Measured: the layer-0 head does; the layer-1 copying head does not.)"""
    b = manifest("tiny-bb-designated")["sink_behaviour"]
    assert b["sink_position"] == 1
    assert b["max_sink_attn_nontrigger"] > 0.5, b["max_sink_attn_nontrigger"]


@pytest.mark.parametrize("name", ["tiny-bb-sinklogit", "tiny-bb-nobos"])
def test_no_token_receives_sink_level_attention(name):
    """sinklogit: the negative control (heads can say 'nothing' through their sink logit).
    nobos: measured, not designed: without BOS this tiny model forms no single-position sink."""
    b = manifest(name)["sink_behaviour"]
    assert b["max_sink_attn_nontrigger"] < EPS and b["max_top_received"] < EPS, b


def test_sliding_window_model_cannot_use_position_zero():
    """Queries beyond the window put exactly zero attention on position 0, and no
    other single position takes over the sink role."""
    from transformers import AutoModelForCausalLM

    m = manifest("tiny-bb-nobos-swa")
    w = m["variant"]["sliding_window"]
    lang = BigramBackcopy(**m["evaluation"]["language"])
    ids, _ = heldout(lang, VARIANTS["tiny-bb-nobos-swa"], m["train_config"]["seq_len"], n=8)
    model = AutoModelForCausalLM.from_pretrained(ZOO / "tiny-bb-nobos-swa", attn_implementation="eager").eval()
    with torch.no_grad():
        att = model(ids, output_attentions=True).attentions
    assert all(float(a[:, :, w:, 0].abs().max()) == 0.0 for a in att)
    assert m["sink_behaviour"]["max_top_received"] < EPS


@pytest.mark.slow
def test_retraining_reproduces_the_manifest(tmp_path):
    """python -m harness.zoo tiny-bb-bos, into a temporary directory (about 2 minutes)."""
    old = manifest("tiny-bb-bos")
    cfg = TrainConfig(**{k: v for k, v in old["train_config"].items()})
    new = train("tiny-bb-bos", cfg, out_dir=tmp_path, log=lambda *a: None)
    assert abs(new["final_train_loss"] - old["final_train_loss"]) < 0.02
    for key in ("copy_head_sink_attn_nontrigger", "copy_head_copy_score", "heldout_nll"):
        assert abs(new["sink_behaviour"][key] - old["sink_behaviour"][key]) < 0.05, key
    assert new["sink_behaviour"]["copy_head"] == old["sink_behaviour"]["copy_head"]
