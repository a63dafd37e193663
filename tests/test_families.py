"""GPT-2, GPT-NeoX (Pythia) and OPT: LayerNorm models with their own layer, attention,
MLP and final-norm names. The accessors find them, the LayerNorm fold gives the basis
of W_U diag(g) C (checked against a direct numpy SVD and against the model's logits),
H5's branch writes add up, and H1 runs end to end on saved checkpoints."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sinkbench.errors import SinkbenchError
from sinkbench.measure.interventions import run_pass
from sinkbench.measure.spectrum import spectrum_for
from tests.conftest import as_subject

ROOT = Path(__file__).resolve().parent.parent
ZOO_BOS = ROOT / "fixtures" / "zoo" / "tiny-bb-bos"
FAMILIES = ("gpt2", "gpt_neox", "opt", "opt_project_out")


def tiny_family(family: str, vocab: int = 259, seed: int = 0, **overrides):
    """A tiny random model of the family (eager attention), with a non-trivial final-norm
    gain and bias so that folding them matters."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, OPTConfig, OPTForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab, bos_token_id=1, eos_token_id=1, attn_implementation="eager")
    if family == "gpt2":
        cfg = GPT2Config(n_embd=64, n_layer=3, n_head=4, n_positions=128, **common, **overrides)
        model, norm = GPT2LMHeadModel(cfg), "transformer.ln_f"
    elif family == "gpt_neox":
        cfg = GPTNeoXConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
                            max_position_embeddings=128, tie_word_embeddings=False, **common, **overrides)
        model, norm = GPTNeoXForCausalLM(cfg), "gpt_neox.final_layer_norm"
    elif family.startswith("opt"):
        proj = 32 if family == "opt_project_out" else 64  # project_out: 64 -> 32 before the unembedding
        cfg = OPTConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, ffn_dim=128, max_position_embeddings=128,
                        word_embed_proj_dim=proj, pad_token_id=2, **common, **overrides)
        model, norm = OPTForCausalLM(cfg), "model.decoder.final_layer_norm"
    else:
        raise ValueError(family)
    from sinkbench.model.access import get_path

    if get_path(model, norm) is not None:  # post-LN OPT has none
        with torch.no_grad():
            get_path(model, norm).weight.uniform_(0.5, 2.0)
            get_path(model, norm).bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.fixture(scope="module", params=FAMILIES)
def family_subject(request):
    return as_subject(tiny_family(request.param), request.param)


def direct_fold(subject) -> np.ndarray:
    """W_U diag(g) C in numpy, from the modules' own parameters (not through sinkbench.model.access)."""
    model = subject.model
    w_u = model.get_output_embeddings().weight.detach().double().numpy()
    if subject.project_out_path:
        w_u = w_u @ model.model.decoder.project_out.weight.detach().double().numpy()
    norm = {"gpt2": lambda: model.transformer.ln_f, "gpt_neox": lambda: model.gpt_neox.final_layer_norm}.get(
        subject.family, lambda: model.model.decoder.final_layer_norm)()
    g = norm.weight.detach().double().numpy()
    d = g.shape[0]
    return w_u @ np.diag(g) @ (np.eye(d) - np.ones((d, d)) / d)


def test_accessors_find_the_family_modules(family_subject):
    s = family_subject
    expected = {"gpt2": ("transformer.h", "transformer.ln_f", "attn", "mlp"),
                "gpt_neox": ("gpt_neox.layers", "gpt_neox.final_layer_norm", "attention", "mlp"),
                "opt": ("model.decoder.layers", "model.decoder.final_layer_norm", "self_attn", "fc2")}[s.family]
    assert (s.layers_path, s.norm_path, s.attn_name, s.mlp_name) == expected
    assert s.norm_fold.centred and s.norm_fold.bias is not None
    assert torch.equal(s.norm_gain, s.final_norm(s.model).weight)  # read, not probed (the old probe returned the bias)
    assert s.d_model == 64 and s.unembedding.shape == (259, 64)


def test_folded_basis_equals_a_direct_svd(family_subject, tmp_path, monkeypatch):
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    s = family_subject
    s.meta.pop("spectra", None)
    sp = spectrum_for(s, 8)
    w = direct_fold(s)
    _, sv, vt = np.linalg.svd(w, full_matrices=False)
    basis = sp.basis.double().numpy()
    assert np.abs(sp.singular_values.double().numpy() - sv).max() < 1e-5 * sv[0]
    # each band spans the same subspace as the direct SVD's band (signs and order inside a band
    # free); where singular values vanish (the centring's null direction, and with project_out
    # 64 -> 32 half the space) only that null space as a whole is defined
    null = sv < 1e-10 * sv[0]
    groups = [idx[~null[idx]] for idx in sp.slices] + [np.flatnonzero(null)]
    for idx in groups:
        ours, ref = basis[:, idx], vt[idx].T
        assert np.abs(ours @ ours.T - ref @ ref.T).max() < 1e-5, f"dimensions {idx}"
    # the all-ones direction is invisible to the logits: in the null space, i.e. the darkest band
    ones = np.ones(64) / 8.0
    null_basis = basis[:, null]
    assert null[-1] and abs(np.linalg.norm(null_basis.T @ ones) - 1) < 1e-6
    if null.sum() == 1:
        assert abs(abs(basis[:, -1] @ ones) - 1) < 1e-6


def test_the_fold_is_the_models_logit_map_and_band_k_barely_moves_logits(family_subject, tmp_path, monkeypatch):
    """logits(x) = W x / sigma(x) + W_U b exactly; adding a multiple of 1 (band K's null
    direction) changes nothing; removing band K changes the real logits least of all bands."""
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    s = family_subject
    s.meta.pop("spectra", None)
    sp = spectrum_for(s, 8)
    fold = s.norm_fold
    x = 2 * torch.randn(200, 64, generator=torch.Generator().manual_seed(1)) + 3

    def logits(h):  # through the model's own modules
        with torch.no_grad():
            return F.linear(s.final_norm(s.model)(h), s.unembedding)

    xc = x - x.mean(-1, keepdim=True)
    sigma = (xc.pow(2).mean(-1, keepdim=True) + fold.eps).sqrt()
    folded = (x.double() @ torch.from_numpy(direct_fold(s)).T) / sigma.double() + (s.unembedding @ fold.bias).double()
    base = logits(x)
    assert (folded - base.double()).abs().max() < 1e-4 * base.abs().max()
    assert (logits(x + 5.0) - base).abs().max() < 1e-4 * base.abs().max()
    spread = (base - base.mean(-1, keepdim=True)).norm(dim=-1)
    change = [((logits(x @ sp.remove([b])) - base).norm(dim=-1) / spread).mean().item() for b in range(1, 9)]
    # bands inside the null space (project_out 64 -> 32) move logits only through sigma: not compared
    visible = [c for c, idx in zip(change, sp.slices) if (sp.singular_values[idx] > 1e-6 * sp.singular_values[0]).all()]
    assert change[-1] <= min(visible) and change[-1] < 0.5 * change[0], change


def test_a_pass_gives_the_models_own_nll_and_the_branches_add_up(family_subject, windows, tmp_path, monkeypatch):
    from sinkbench.hypotheses.h5_sink_writer.measurement import attribute

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    s = family_subject
    res = run_pass(s, windows, attn_layers=range(s.n_layers))
    with torch.no_grad():
        out = s.model(windows, output_attentions=True)
    logits = out.logits[:, :-1]
    ref = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1), reduction="none").view(len(windows), -1).mean(1)
    assert torch.allclose(res.nll, ref, atol=1e-5)
    assert torch.allclose(res.sink_mass, torch.stack([a[:, :, 1:, 0].mean((1, 2)) for a in out.attentions], 1), atol=1e-6)
    s.meta.pop("spectra", None)
    att = attribute(s, windows, spectrum_for(s, 8))  # H5: embedding + every branch write = final residual
    assert att.sum_error < 1e-4


class OddNorm(torch.nn.Module):
    """Neither a LayerNorm nor an RMSNorm."""

    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return torch.tanh(x) * self.weight


class UnlistedRMSNorm(OddNorm):
    """Scales by (1 + weight) but is not in sinkbench.model.access.UNIT_OFFSET_NORMS."""

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1 + self.weight)


@pytest.mark.parametrize("norm_class,message", [(OddNorm, "neither a LayerNorm nor an RMSNorm"),
                                                (UnlistedRMSNorm, "does not compute a RMSNorm")])
def test_a_norm_that_cannot_be_folded_is_a_one_line_error(norm_class, message):
    model = tiny_family("gpt2")
    model.transformer.ln_f = norm_class(64)
    with pytest.raises(SinkbenchError, match=f"tiny-odd: cannot fold its final norm {norm_class.__name__}.*{message}") as exc:
        as_subject(model, "tiny-odd")
    assert "\n" not in str(exc.value)


def test_post_ln_opt_is_refused():
    with pytest.raises(SinkbenchError, match="post-LN"):
        as_subject(tiny_family("opt", do_layer_norm_before=False), "tiny-opt-350m-like")


def save_checkpoint(family: str, path: Path) -> Path:
    """save_pretrained with the zoo's tokenizer and evaluation language (so windows are real text)."""
    tiny_family(family, vocab=70).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "sinkbench_zoo.json"):
        shutil.copy(ZOO_BOS / name, path / name)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "opt"])
def test_h1_runs_end_to_end(family, tmp_path):
    ckpt = save_checkpoint(family, tmp_path / family)
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "pytest", "hypotheses", "-k", "dark_tail", "--model", str(ckpt), "--layers", "0",
           "--n-seqs", "8", "--seq-len", "32", "--results", str(results), "-p", "no:cacheprovider", "-q"]
    env = dict(os.environ, SINKBENCH_CACHE=str(tmp_path / "cache"))
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    tail = (p.stdout + p.stderr)[-3000:]
    assert p.returncode in (0, 1), tail  # 1: a verdict that failed, which is a finding, not an error
    assert " error" not in p.stdout.splitlines()[-1], tail
    records = [json.loads(line) for line in (results / "results.jsonl").read_text().splitlines()]
    assert [(r["hypothesis"], r["family"], r["verdict"] in ("pass", "fail")) for r in records] == [("H1", family, True)], tail


@pytest.mark.parametrize("value,refused", [(True, True), ("all", True), ("vision", False), (None, False), (False, False)])
def test_only_text_bidirectional_attention_is_non_causal(value, refused):
    """Gemma-4's use_bidirectional_attention='vision' makes image tokens attend both ways; text,
    all sinkbench feeds, stays causal. It was refused as 'an embedding model's layout'."""
    from types import SimpleNamespace

    from sinkbench.model.architectures import noncausal_reason

    reason = noncausal_reason(SimpleNamespace(model_type="gemma4_text", use_bidirectional_attention=value))
    assert (reason is not None and "bidirectional attention" in reason) == refused, reason
