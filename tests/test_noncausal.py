"""Models sinkbench must not measure are refused at start-up from the config, with the
reason of their mechanism (non-causal, encoder, attention-free, hybrid); a model whose own
forward fails at load is one line; multimodal Gemma-3 runs (issue 31)."""
from __future__ import annotations

import json
import re

import pytest
import torch

from sinkbench.model import architectures
from sinkbench.run import preflight
from sinkbench.model.access import Subject
from sinkbench.measure.config import make_settings
from sinkbench.errors import SinkbenchError
from tests.conftest import ByteTokenizer, as_subject, tiny_llama


def gemma3_text_config(**extra):
    from transformers import Gemma3TextConfig

    kw = dict(vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
              num_key_value_heads=1, head_dim=32, max_position_embeddings=128, sliding_window=16, bos_token_id=1)
    return Gemma3TextConfig(**{**kw, **extra})


@pytest.mark.parametrize("config,match", [
    (lambda: gemma3_text_config(use_bidirectional_attention=True), r"bidirectional attention \(use_bidirectional_attention=True"),
    (lambda: _cfg("llama", is_causal=False), r"is_causal=False"),
    (lambda: _cfg("mpt", attn_config={"prefix_lm": True}), r"a prefix-LM"),
    (lambda: _cfg("hrm_text", prefix_lm=True), r"a prefix-LM"),
    (lambda: _cfg("t5", is_encoder_decoder=True), r"an encoder-decoder"),
    (lambda: _cfg("bert"), r"an encoder-only model \(bert\)"),
    (lambda: _cfg("modernbert"), r"an encoder-only model"),
    (lambda: _cfg("mamba"), r"attention-free \(mamba"),
    (lambda: _cfg("jamba"), r"a hybrid \(jamba\)"),
    (lambda: _cfg("falcon_h1"), r"a hybrid"),
    (lambda: _cfg("lfm2"), r"a hybrid"),
])
def test_a_model_that_is_not_a_causal_attention_decoder_is_refused_with_its_reason(config, match):
    reason = architectures.unsupported_reason(config())
    assert reason and re.search(match, reason) and "\n" not in reason, reason
    assert "not in sinkbench's architecture table" not in reason


def _cfg(model_type, **extra):
    return type("Cfg", (), {"model_type": model_type, "architectures": None, **extra})()


def test_a_causal_gemma3_text_is_accepted():
    assert architectures.unsupported_reason(gemma3_text_config()) is None
    assert architectures.unsupported_reason(gemma3_text_config(use_bidirectional_attention=False)) is None


def test_a_bidirectional_checkpoint_stops_at_start_up(tmp_path):
    """EmbeddingGemma's layout (gemma3_text, use_bidirectional_attention=True): refused from
    config.json before any weight is read."""
    d = tmp_path / "embeddinggemma"
    d.mkdir()
    cfg = gemma3_text_config(use_bidirectional_attention=True).to_dict()
    (d / "config.json").write_text(json.dumps(cfg))
    msg = preflight.model_problems(str(d), make_settings(seq_len=64), "", True)[0]  # (then: no tokenizer)
    assert msg.startswith(f"--model {d}: unsupported architecture") and "bidirectional attention" in msg, msg


def test_a_model_whose_own_forward_fails_at_load_is_one_line():
    model = tiny_llama(seed=1)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA kernel missing for this op\nsecond line of detail")

    model.model.layers[1].mlp.forward = broken
    subject = Subject(name="broken", model=model, tokenizer=ByteTokenizer(), sha256="0" * 64, dtype="float32")
    with pytest.raises(SinkbenchError) as e:
        subject.check()
    msg = str(e.value)
    assert msg.startswith("broken: its forward pass fails at load (RuntimeError: CUDA kernel missing for this op)")
    assert "\n" not in msg and e.value.__suppress_context__


def test_multimodal_gemma3_is_checked_and_measured():
    """model_type gemma3 (Gemma3ForConditionalGeneration, the 4B/12B/27B layout): vocab_size
    lives in text_config, the layers under model.language_model; the wrapper does not cap its
    logits, and check() agrees with its own forward."""
    from transformers import AutoModelForCausalLM, Gemma3Config

    from sinkbench.measure import interventions
    from sinkbench.measure.spectrum import spectrum_for

    torch.manual_seed(0)
    cfg = Gemma3Config(text_config=gemma3_text_config(vocab_size=300).to_dict(),
                       vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                          image_size=28, patch_size=14),
                       mm_tokens_per_image=4, image_token_index=299, boi_token_index=297, eoi_token_index=298)
    assert not hasattr(cfg, "vocab_size") and architectures.unsupported_reason(cfg) is None
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    with torch.no_grad():
        model.model.language_model.norm.weight.uniform_(-0.5, 0.5)
    subject = as_subject(model, "gemma3-mm")
    assert subject.vocab_size == 300 and subject.n_layers == 2
    windows = torch.randint(3, 250, (2, 12))
    windows[:, 0] = 1
    out = interventions.run_batched(subject, windows, 2, attn_layers=range(2))
    with torch.no_grad():
        logits = model(windows).logits.float()
    want = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 300), windows[:, 1:].reshape(-1), reduction="none")
    assert torch.allclose(out.token_nll.reshape(-1), want, atol=1e-5)
    assert spectrum_for(subject, 8).basis.shape == (64, 64)


def test_a_qwen25_vl_checkpoint_loads_through_the_image_text_class(tmp_path, monkeypatch):
    """AutoModelForCausalLM does not map Qwen2.5-VL; the loader falls back to
    AutoModelForImageTextToText and the text model is checked and measured like any other."""
    import shutil

    from transformers import AutoConfig

    from sinkbench.model.access import load_subject
    from sinkbench.model.models import image_text_model
    from tests.test_conformance import CASES, ZOO, randomize

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path / "cache"))
    model_type, kwargs = CASES["Qwen2.5-VL (text)"]
    cfg = AutoConfig.for_model(model_type, **kwargs)
    torch.manual_seed(0)
    model = image_text_model().from_config(cfg)
    randomize(model, seed=1)
    d = tmp_path / "qwen25vl"
    model.save_pretrained(d)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(ZOO / "tiny-bb-bos" / f, d / f)
    subject = load_subject(str(d))
    assert type(subject.model).__name__ == "Qwen2_5_VLForConditionalGeneration" and subject.n_layers == 3
