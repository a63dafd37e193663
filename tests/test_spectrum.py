import numpy as np
import pytest
import torch

from sinkbench.errors import SinkbenchError
from sinkbench.measure.spectrum import (Spectrum, band_slices, folded_unembedding, parse_bands, right_singular_basis, spectrum_for,
                              spectrum_key)


def random_spectrum(d=40, k=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, s = right_singular_basis(torch.randn(300, d, generator=g, dtype=torch.float64))
    return Spectrum(b.float(), s.float(), k)


def test_bands_follow_array_split():
    sl = band_slices(43, 20)
    assert [len(x) for x in sl] == [len(x) for x in np.array_split(np.arange(43), 20)]
    assert np.concatenate(sl).tolist() == list(range(43))


def test_projectors_idempotent_symmetric_and_bands_sum_to_identity():
    sp = random_spectrum()
    total = torch.zeros(sp.d, sp.d)
    for b in range(1, sp.n_bands + 1):
        p = sp.keep([b])
        assert torch.allclose(p @ p, p, atol=1e-5)
        assert torch.allclose(p, p.T, atol=1e-6)
        assert torch.trace(p).round().item() == sp.band_dim([b])
        total += p
    assert torch.allclose(total, torch.eye(sp.d), atol=1e-5)
    r = sp.random_removal(sp.band_dim([sp.n_bands]), seed=3)
    assert torch.allclose(r @ r, r, atol=1e-5) and torch.allclose(r, r.T, atol=1e-6)
    assert round(sp.d - torch.trace(r).item()) == sp.band_dim([sp.n_bands])


def test_omega_and_head_keep_the_same_number_of_dimensions():
    sp = random_spectrum(d=60, k=20)
    for k in (5, 10, 15):
        assert round(torch.trace(sp.omega(k)).item()) == round(torch.trace(sp.head(k + 1)).item())
        assert torch.allclose(sp.omega(k), sp.keep(list(range(1, k + 1)) + [20]))


def test_folded_norm_basis_matches_direct_svd():
    g = torch.Generator().manual_seed(1)
    w_u, gain = torch.randn(500, 32, generator=g), torch.rand(32, generator=g) + 0.5
    b, s = right_singular_basis(folded_unembedding(w_u, gain))
    direct = w_u.double() * gain.double()[None]
    _, s_ref, vh = torch.linalg.svd(direct, full_matrices=False)
    assert torch.allclose(s, s_ref, rtol=1e-8)
    # same vectors up to sign
    assert torch.allclose((b * vh.T).sum(0).abs(), torch.ones(32, dtype=torch.float64), atol=1e-8)


def test_norm_gain_is_measured_including_gemma_one_plus_g(llama_subject, gemma_subject):
    assert torch.allclose(llama_subject.norm_gain, llama_subject.model.model.norm.weight, rtol=1e-4)
    assert torch.allclose(gemma_subject.norm_gain, 1 + gemma_subject.model.model.norm.weight, rtol=1e-4)


def test_spectrum_is_cached_per_model(llama_subject, tmp_path, monkeypatch):
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    llama_subject.meta.pop("spectra", None)
    sp = spectrum_for(llama_subject, 8)
    assert list((tmp_path / "spectra").iterdir())
    llama_subject.meta.pop("spectra", None)
    assert torch.equal(spectrum_for(llama_subject, 8).basis, sp.basis)


def test_cache_files_differ_by_dtype_and_n_bands_and_are_full_sha256(llama_subject, tmp_path, monkeypatch):
    """Everything that decides a basis is in its cache key (weights, U/E, dtype, K, SPECTRUM_VERSION)."""
    import sinkbench.measure.spectrum as spectrum

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    llama_subject.meta.pop("spectra", None)
    spectrum_for(llama_subject, 8)
    spectrum_for(llama_subject, 4)
    spectrum_for(llama_subject, 8, "E")
    monkeypatch.setattr(llama_subject, "dtype", "bfloat16")
    spectrum_for(llama_subject, 8)
    monkeypatch.setattr(spectrum, "SPECTRUM_VERSION", spectrum.SPECTRUM_VERSION + 1)
    spectrum_for(llama_subject, 8)
    names = sorted(p.name for p in (tmp_path / "spectra").iterdir())
    assert len(names) == 5 and all(len(n.split(".")[0]) == 64 and int(n.split(".")[0], 16) >= 0 for n in names), names
    llama_subject.meta.pop("spectra", None)


def test_dark_ratio_and_band_profile():
    sp = random_spectrum(d=40, k=4)
    dark = sp.band_vectors([4])[:, 0]
    head = sp.band_vectors([1])[:, 0]
    h = torch.stack([3 * dark + 4 * head, head])
    assert torch.allclose(sp.dark_ratio(h), torch.tensor([0.75, 0.0]), atol=1e-5)
    prof = sp.band_profile(h)
    assert torch.allclose(prof.sum(-1), torch.ones(2))
    assert torch.allclose(prof[0], torch.tensor([16 / 25, 0, 0, 9 / 25]), atol=1e-5)


@pytest.mark.parametrize("spec,expected", [("1-5,20", [1, 2, 3, 4, 5, 20]), ("20", [20]), ("3,1-2", [1, 2, 3]), ("dark", [20])])
def test_parse_bands(spec, expected):
    assert parse_bands(spec, 20) == expected


@pytest.mark.parametrize("spec", ["0", "21", "5-3", "a-b", "", "1,,2"])
def test_parse_bands_rejects_bad_specs(spec):
    with pytest.raises(SinkbenchError, match="--bands"):
        parse_bands(spec, 20)


def test_dark_alignment_is_one_for_identical_and_low_for_unrelated(llama_subject, tmp_path, monkeypatch):
    from sinkbench.measure.spectrum import dark_alignment

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    llama_subject.meta.pop("spectra", None)
    a = dark_alignment(llama_subject, 8)
    assert 0 <= a["share_E_dark_in_U_dark"] <= 1 and a["chance_share"] == 8 / 64
    # untied random embedding and unembedding: E-dark and U-dark are unrelated subspaces
    assert a["share_E_dark_in_U_dark"] < 0.5
    llama_subject.meta.pop("spectra", None)


def test_dark_alignment_is_one_for_a_tied_model_with_unit_norm_gain(tmp_path, monkeypatch):
    """Tied embeddings and a final-norm gain of 1: U = E, so both bases are computed from the
    same matrix through their own code paths, and the dark tails must coincide."""
    from sinkbench.measure.spectrum import dark_alignment
    from tests.conftest import as_subject, tiny_llama

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    model = tiny_llama(seed=3, tie_word_embeddings=True)
    with torch.no_grad():
        model.model.norm.weight.fill_(1.0)
    subject = as_subject(model, "tied")
    assert abs(dark_alignment(subject, 8)["share_E_dark_in_U_dark"] - 1) < 1e-6
    with torch.no_grad():  # a gain that scales band K of E up moves U's dark tail elsewhere
        model.model.norm.weight.uniform_(0.1, 10.0)
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path / "gain"))  # as_subject gives every model one fake hash
    subject = as_subject(model, "tied-gain")
    assert dark_alignment(subject, 8)["share_E_dark_in_U_dark"] < 0.9
