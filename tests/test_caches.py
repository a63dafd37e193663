"""Every on-disk cache is keyed by everything its value depends on, and a damaged entry is
named and rebuilt, never served and never fatal (issue 31)."""
from __future__ import annotations

import torch

from sinkbench.measure.spectrum import folded_unembedding, right_singular_basis, spectrum_for, spectrum_key
from tests.conftest import as_subject, tiny_gemma3, tiny_llama


def fresh_basis(subject) -> torch.Tensor:
    fold = subject.norm_fold
    return right_singular_basis(folded_unembedding(subject.unembedding.detach(), fold.gain, fold.centred))[0].float()


def same_subspace(a: torch.Tensor, b: torch.Tensor, cols) -> bool:
    return torch.allclose(torch.linalg.svdvals(a[:, cols].double().T @ b[:, cols].double()), torch.ones(len(cols), dtype=torch.float64), atol=1e-4)


def test_two_models_sharing_a_weights_file_but_not_a_fold_get_their_own_bases(tmp_path, monkeypatch):
    """The same weights read with gain w (Llama's RMSNorm) and with gain 1 + w (a Gemma-style
    norm), and with a LayerNorm's centring: one weights hash, three folds, three bases."""
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    plain = as_subject(tiny_llama(seed=5), "plain")
    offset = as_subject(tiny_llama(seed=5), "offset")
    from sinkbench.model import access

    # the fold reads 1 + w: what a Gemma-family config over the same file would give
    offset.__dict__["norm_fold"] = access.NormFold(gain=offset.norm_fold.gain + 1.0, centred=False, bias=None, eps=1e-6)
    centred = as_subject(tiny_llama(seed=5), "centred")
    centred.__dict__["norm_fold"] = access.NormFold(gain=centred.norm_fold.gain, centred=True, bias=None, eps=1e-6)
    assert plain.sha256 == offset.sha256 == centred.sha256  # one weights file, as far as the cache can tell
    keys = {spectrum_key(s, 8) for s in (plain, offset, centred)}
    assert len(keys) == 3
    for s in (plain, offset, centred):  # each is served its own basis, whatever is cached before it
        got = spectrum_for(s, 8).basis
        assert same_subspace(got, fresh_basis(s), list(range(56, 64))), s.name
    assert len(list((tmp_path / "spectra").iterdir())) == 3


def test_families_sharing_a_weights_hash_do_not_share_a_basis(tmp_path, monkeypatch):
    """Llama and Gemma-3 tiny models both claim the weights hash 0...0 (as_subject): the Gemma
    one must not be served the Llama basis (the SmolLM3 case of issue 31)."""
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    llama, gemma = as_subject(tiny_llama(), "l"), as_subject(tiny_gemma3(), "g")
    assert llama.sha256 == gemma.sha256 and llama.d_model == gemma.d_model
    spectrum_for(llama, 8)
    got = spectrum_for(gemma, 8).basis
    assert same_subspace(got, fresh_basis(gemma), list(range(56, 64)))


def test_the_key_covers_config_fields_and_project_out(monkeypatch):
    s = as_subject(tiny_llama(seed=2), "k")
    base = spectrum_key(s, 8)
    monkeypatch.setattr(s.model.config, "tie_word_embeddings", True)
    assert spectrum_key(s, 8) != base
    monkeypatch.undo()
    assert spectrum_key(s, 8) == base
    monkeypatch.setattr(s, "project_out_path", "model.decoder.project_out")
    s.__dict__["_projected_unembedding"] = s.model.get_output_embeddings().weight
    assert spectrum_key(s, 8) != base


def _damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[-5] ^= 0x10  # a bit of the tensors' bytes
    elif how == "truncate":
        data = data[: len(data) // 2]
    elif how == "random":
        data = bytearray(torch.randint(0, 256, (len(data),), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy().tobytes())
    elif how == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))


import pytest  # noqa: E402


@pytest.mark.parametrize("how", ["flip", "truncate", "random", "empty"])
def test_a_damaged_spectrum_cache_entry_is_named_and_rebuilt(how, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    s = as_subject(tiny_llama(seed=7), "damaged")
    want = spectrum_for(s, 8).basis.clone()
    (path,) = (tmp_path / "spectra").iterdir()
    _damage(path, how)
    s.meta.pop("spectra")
    capsys.readouterr()
    got = spectrum_for(s, 8).basis
    err = capsys.readouterr().err
    assert torch.equal(got, want)
    assert "spectrum cache" in err and path.name in err and "rebuilding" in err, err
    s.meta.pop("spectra")  # rebuilt: the next run reads it back without a word
    assert torch.equal(spectrum_for(s, 8).basis, want) and "rebuilding" not in capsys.readouterr().err


def test_an_unwritable_spectrum_cache_is_named_not_fatal(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    (tmp_path / "spectra").write_text("a file where the folder should be")
    s = as_subject(tiny_llama(seed=7), "ro")
    assert spectrum_for(s, 8).basis.shape == (64, 64)
    assert "cannot write it" in capsys.readouterr().err


def test_opt_with_project_in_and_out_has_an_e_basis_in_the_residual_stream(tmp_path, monkeypatch):
    """OPT with word_embed_proj_dim < d: E is the embedding through project_in ([V, d]), so
    --basis E and H1's U/E alignment run (they took the SVD of the narrow embedding)."""
    from transformers import OPTConfig, OPTForCausalLM

    from sinkbench.measure.spectrum import dark_alignment, residual_embedding

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    torch.manual_seed(0)
    cfg = OPTConfig(vocab_size=259, hidden_size=64, word_embed_proj_dim=32, num_hidden_layers=2, ffn_dim=128,
                    num_attention_heads=4, max_position_embeddings=64, bos_token_id=1, attn_implementation="eager")
    s = as_subject(OPTForCausalLM(cfg).eval(), "opt-proj")
    assert s.project_out_path and s.embedding.shape[1] == 32
    assert residual_embedding(s).shape == (259, 64)
    a = dark_alignment(s, 8)
    assert 0 <= a["share_E_dark_in_U_dark"] <= 1 + 1e-9 and len(a["principal_cosines"]) == 8
    assert spectrum_for(s, 8, "E").basis.shape == (64, 64)
