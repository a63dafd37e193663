"""Fixtures for the harness's own unit tests: tiny random Hugging Face models
(Llama and Gemma-3 shapes) wrapped as Subjects, built in memory in milliseconds."""
from __future__ import annotations

import pytest
import torch

from sinkbench.model.access import Subject


class ByteTokenizer:
    """Just enough tokenizer for Subject: ids are bytes + 3, BOS = 1."""

    bos_token_id = 1

    def convert_ids_to_tokens(self, ids):
        one = lambda i: "<bos>" if i == 1 else bytes([i - 3]).decode("latin-1") if i >= 3 else "<pad>"
        return [one(i) for i in ids] if isinstance(ids, list) else one(ids)

    def __call__(self, text, add_special_tokens=True):
        ids = [b + 3 for b in text.encode()]
        return type("Enc", (), {"input_ids": ([1] if add_special_tokens else []) + ids})()


def tiny_llama(seed: int = 0, **overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = dict(vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
               tie_word_embeddings=False, bos_token_id=1)
    cfg.update(overrides)
    model = LlamaForCausalLM(LlamaConfig(**cfg, attn_implementation="eager")).eval()
    with torch.no_grad():  # a non-trivial final-norm gain, so folding it matters
        model.model.norm.weight.uniform_(0.5, 2.0)
    return model


def tiny_gemma3(seed: int = 0):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=128,
                           sliding_window=16, bos_token_id=1, attn_implementation="eager")
    model = Gemma3ForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.norm.weight.uniform_(-0.5, 0.5)
    return model


def as_subject(model, name="tiny") -> Subject:
    model.requires_grad_(False)
    subject = Subject(name=name, model=model, tokenizer=ByteTokenizer(), sha256="0" * 64, dtype="float32")
    subject.check()
    return subject


@pytest.fixture(scope="session")
def llama_subject() -> Subject:
    return as_subject(tiny_llama())


@pytest.fixture(scope="session")
def gemma_subject() -> Subject:
    return as_subject(tiny_gemma3(), "tiny-gemma3")


@pytest.fixture
def windows():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 259, (6, 24), generator=g)
    ids[:, 0] = 1  # BOS
    return ids


def rendered_check(page, tmp_path, counts_js: str, width: int = 1400) -> tuple[str, str]:
    """Render a report page in headless Chromium (skip if absent) and return (data-check, title):
    data-check is 'images OK/ALL ' + counts_js evaluated after load, title says 'ERROR ...'
    on a script error. Debian's chromium: apt-get install chromium."""
    import re
    import shutil
    import subprocess

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    probe = tmp_path / "probe.html"
    check = ("<script>window.onerror=function(m){document.title='ERROR '+m};window.onload=function(){"
             "var i=[].slice.call(document.images);var ok=i.filter(function(x){return x.complete&&x.naturalWidth>0}).length;"
             "document.body.setAttribute('data-check','images '+ok+'/'+i.length+' '+" + counts_js + ")}</script>")
    probe.write_text(page.read_text().replace("</body>", check + "</body>"))
    out = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                          f"--window-size={width},1000", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    dom = re.sub(r"<script>.*?</script>", "", out.stdout, flags=re.S)
    found = re.search(r'data-check="([^"]*)"', dom)
    title = re.search(r"<title>(.*?)</title>", dom)
    assert found, out.stderr[-2000:]
    return found.group(1), title.group(1) if title else ""
