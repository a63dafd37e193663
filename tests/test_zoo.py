"""The committed zoo: each model loads through the registry like any checkpoint, and
its sink behaviour, re-measured here with plain transformers (not sinkbench.model.zoo.measure),
agrees with its manifest and with what the variant was built to show."""
import json

import numpy as np
import pytest
import torch

from sinkbench.model import models
from sinkbench.model.zoo.language import BigramBackcopy
from sinkbench.model.zoo.train import SERIES, VARIANTS, TrainConfig, checkpoint_steps, heldout, train

ZOO = models.ZOO_DIR
SERIES_DIR = ZOO / "series"
EPS = 0.3  # Gu et al.'s sink threshold on attention


def manifest(name, path=None):
    return json.loads(((path or ZOO / name) / "sinkbench_zoo.json").read_text())


def remeasure(name, path=None):
    """Per (layer, head), on the manifest's held-out sample, with a plain HF forward:
    attention to the sink position from non-trigger and trigger queries that can see it,
    the copy score (attention from a trigger to the token before it) and the largest mean
    attention any key position receives from its later queries (keys with >= 8 of them).
    path: a checkpoint of the variant's series instead of the final model."""
    from transformers import AutoModelForCausalLM

    m = manifest(name, path)
    variant = VARIANTS[name]
    lang = BigramBackcopy(**m["evaluation"]["language"])
    ids, _ = heldout(lang, variant, m["train_config"]["seq_len"], seed=m["evaluation"]["heldout_sample_seed"])
    model = AutoModelForCausalLM.from_pretrained(path or ZOO / name, attn_implementation="eager").eval()
    with torch.no_grad():
        att = model(ids, output_attentions=True).attentions
    sink = variant.designated or 0
    t = ids.shape[1]
    q = np.arange(t)
    visible = (q > sink) & (q - sink < (variant.sliding_window or t))
    trig = lang.is_trigger(ids.numpy())
    later = np.tril(np.ones((t, t)), -1)  # [query, key]: query strictly after key
    out = {}
    for layer, a in enumerate(att):
        a = a.numpy()  # [B, H, T, T]
        for h in range(a.shape[1]):
            to_sink = a[:, h, :, sink]
            copy = np.stack([np.diagonal(x, -1) for x in a[:, h]])  # [B, T-1]: query q+1 -> key q
            received = (a[:, h] * later).sum(1) / np.maximum(later.sum(0), 1)  # [B, T] per key
            out[layer, h] = {
                "nontrigger": to_sink[~trig & visible].mean(),
                "trigger": to_sink[trig & visible].mean() if (trig & visible).any() else None,
                "copy": copy[trig[:, 1:]].mean() if trig[:, 1:].any() else 0.0,
                "top_received": received[:, : t - 8].mean(0).max(),
            }
    return m, out


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_zoo_model_loads_through_the_registry(name):
    from sinkbench.model.access import load_subject

    subject = load_subject(name)
    assert subject.meta["zoo"]["name"] == name
    assert subject.uses_bos == VARIANTS[name].bos
    assert models.resolve(name).kind == "hf_dir"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_manifest_agrees_with_an_independent_measurement(name):
    m, measured = remeasure(name)
    per = m["sink_behaviour"]["per_layer_head"]
    for (layer, h), x in measured.items():
        assert abs(per[layer][h]["sink_attn_nontrigger"] - x["nontrigger"]) < 1e-4
        if x["trigger"] is not None:
            assert abs(per[layer][h]["sink_attn_trigger"] - x["trigger"]) < 1e-4


@pytest.mark.parametrize("name", ["tiny-bb-bos", "tiny-bb-gpt2-bos"])
def test_bos_model_copying_head_is_dormant_on_bos(name):
    """Active on triggers (copies the token before), parks on BOS elsewhere (Guo et al.);
    re-measured, not read from the manifest. Llama (RMSNorm, rotary): the layer-1 head, 0.81
    of its non-trigger attention on BOS. GPT-2 (LayerNorm, learned positions): the layer-0
    head, 1.00 on BOS."""
    _, measured = remeasure(name)
    (layer, head), x = max(measured.items(), key=lambda kv: kv[1]["copy"])
    assert x["copy"] > 0.5, f"no copying head (best copy score {x['copy']:.2f})"
    assert x["nontrigger"] > 0.5 and x["nontrigger"] > x["trigger"] + 0.2, (
        f"copy head L{layer}H{head}: non-trigger BOS attention {x['nontrigger']:.2f}, trigger {x['trigger']:.2f}")


def test_designated_token_is_a_sink():
    """Some head puts most of its non-trigger attention on the <sink> token at k (measured:
    the layer-0 head does; the layer-1 copying head does not)."""
    assert VARIANTS["tiny-bb-designated"].designated == 1
    _, measured = remeasure("tiny-bb-designated")
    best = max(x["nontrigger"] for x in measured.values())
    assert best > 0.5, best


@pytest.mark.parametrize("name", ["tiny-bb-sinklogit", "tiny-bb-nobos", "tiny-bb-nobos-swa", "tiny-bb-neox-bos"])
def test_no_token_receives_sink_level_attention(name):
    """sinklogit: the negative control (heads can say 'nothing' through their sink logit).
    nobos: measured, not designed: without BOS this tiny model forms no single-position sink.
    nobos-swa: position 0 drops out of the window, and no other position takes over.
    neox-bos: measured, not designed: with BOS, GPT-NeoX's copying head (layer 0, copy score
    0.98) does nothing on non-trigger queries by spreading its attention over the last ~7
    tokens (about 0.1 each), not by parking on BOS (0.01); no head gives BOS more than 0.12."""
    _, measured = remeasure(name)
    if name != "tiny-bb-nobos-swa":  # its queries close to position 0 still see few keys
        assert max(x["nontrigger"] for x in measured.values()) < EPS
    assert max(x["top_received"] for x in measured.values()) < EPS


def test_the_bos_model_does_receive_sink_level_attention():
    """The measurement above can fail: on the BOS model, position 0 receives sink-level attention."""
    _, measured = remeasure("tiny-bb-bos")
    assert max(x["top_received"] for x in measured.values()) > EPS


@pytest.mark.slow
def test_retraining_reproduces_the_manifest(tmp_path):
    """python -m sinkbench.model.zoo tiny-bb-bos, into a temporary directory (about 2 minutes)."""
    old = manifest("tiny-bb-bos")
    cfg = TrainConfig(**{k: v for k, v in old["train_config"].items()})
    new = train("tiny-bb-bos", cfg, out_dir=tmp_path, log=lambda *a: None)
    assert abs(new["final_train_loss"] - old["final_train_loss"]) < 0.02
    for key in ("copy_head_sink_attn_nontrigger", "copy_head_copy_score", "heldout_nll"):
        assert abs(new["sink_behaviour"][key] - old["sink_behaviour"][key]) < 0.05, key
    assert new["sink_behaviour"]["copy_head"] == old["sink_behaviour"]["copy_head"]


# --------------------------------------------------------------------------- checkpoint series
def series_dirs(name):
    return sorted(d for d in (SERIES_DIR / name).iterdir() if d.is_dir() and d.name.startswith("step-"))


def tensors(path):
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def assert_same_tensors(a, b):
    ta, tb = tensors(a), tensors(b)
    assert sorted(ta) == sorted(tb)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{a.name} vs {b}: {k} differs"


@pytest.mark.parametrize("name", SERIES)
def test_series_is_committed_log_spaced_and_ends_at_the_final_model(name):
    final = manifest(name)
    dirs = series_dirs(name)
    ms = [manifest(name, d) for d in dirs]
    assert [m["step"] for m in ms] == checkpoint_steps(final["steps"])  # 10 ... 6000, log-spaced
    tc = final["train_config"]
    for d, m in zip(dirs, ms):
        assert d.name == f"step-{m['step']:06d}" and m["series"] == name and m["train_config"] == tc
        assert m["tokens_seen"] == m["step"] * tc["batch_size"] * tc["seq_len"]
        assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {f.name for f in d.iterdir()}
    # the last checkpoint is the committed final model, weight for weight
    assert_same_tensors(dirs[-1], ZOO / name)
    assert ms[-1]["sink_behaviour"] == final["sink_behaviour"]


@pytest.mark.parametrize("name", SERIES)
def test_series_checkpoint_loads_and_its_manifest_agrees_with_a_remeasurement(name):
    """The middle checkpoint loads through the harness (as a path) and its manifest's sink
    behaviour is what a plain transformers forward measures."""
    from sinkbench.model.access import load_subject

    d = series_dirs(name)[len(series_dirs(name)) // 2]
    subject = load_subject(str(d))
    assert subject.meta["zoo"]["step"] == manifest(name, d)["step"]
    per = manifest(name, d)["sink_behaviour"]["per_layer_head"]
    _, measured = remeasure(name, d)
    for (layer, h), x in measured.items():
        assert abs(per[layer][h]["sink_attn_nontrigger"] - x["nontrigger"]) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", SERIES)
def test_retraining_with_checkpoints_reproduces_the_committed_series(tmp_path, name):
    """python -m sinkbench.model.zoo NAME into a temporary directory (2-5 minutes each): saving the
    checkpoints does not change the trajectory; every checkpoint and the final model equal
    the committed ones, tensor for tensor."""
    cfg = TrainConfig(**manifest(name)["train_config"])
    train(name, cfg, out_dir=tmp_path / "final", series_dir=tmp_path / "series", log=lambda *a: None)
    assert_same_tensors(tmp_path / "final" / name, ZOO / name)
    new = sorted(d for d in (tmp_path / "series" / name).iterdir() if d.is_dir())
    assert [d.name for d in new] == [d.name for d in series_dirs(name)]
    for a, b in zip(new, series_dirs(name)):
        assert_same_tensors(a, b)
