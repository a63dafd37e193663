"""sinkbench.model.attention: a pass that reads less attention gets the same numbers.

The windows (24 tokens) are longer than tiny Gemma-3's sliding window (16), so
the fused kernel must honour the sliding mask too."""
import pytest
import torch

from sinkbench.model.attention import attention_plan
from sinkbench.measure.interventions import Edit, run_pass
from tests.test_interventions import hooked_reference


@pytest.mark.parametrize("which", ["llama_subject", "gemma_subject"])
def test_every_attention_mode_gives_the_eager_numbers(request, which, windows):
    subject = request.getfixturevalue(which)
    assert subject.model.config._attn_implementation == "sinkbench"
    n, layer = subject.n_layers, 0
    projector = torch.eye(subject.d_model)
    projector[0, 0] = 0.0  # drop one coordinate: a real edit
    nll_ref, mass_ref = hooked_reference(subject.model, windows, layer, projector, "all")
    edit = Edit.project(layer, projector, "all")
    fused = run_pass(subject, windows, edit)  # no attention read: fused kernel everywhere
    sink = run_pass(subject, windows, edit, attn_layers=range(n))  # sink column only
    full = run_pass(subject, windows, edit, attn_layers=range(n), attn_readout=lambda p, rows: p[:, :, :, 0].mean(1))
    for res in (fused, sink, full):
        assert torch.allclose(res.nll, nll_ref, atol=1e-5)
    assert fused.sink_mass.isnan().all()
    assert torch.allclose(sink.sink_mass, mass_ref, atol=1e-6)
    assert torch.allclose(full.sink_mass, mass_ref, atol=1e-6)


def test_the_fused_kernel_is_what_runs_when_nothing_is_read(llama_subject, windows):
    """Not a no-op switch: under 'none' the attention module returns no weights."""
    seen = []
    attn = llama_subject.attention(llama_subject.model, 1)
    handle = attn.register_forward_hook(lambda m, a, out: seen.append(out[1]))
    try:
        with torch.no_grad():
            with attention_plan({}):
                llama_subject.model(windows)
            with attention_plan({1: "sink"}):
                llama_subject.model(windows)
            llama_subject.model(windows)  # outside a plan: eager, full map
    finally:
        handle.remove()
    assert seen[0] is None
    assert seen[1].shape == (6, 4, 24, 1)
    assert seen[2].shape == (6, 4, 24, 24)


def test_a_bad_mode_is_refused():
    with pytest.raises(ValueError, match="attention modes"):
        with attention_plan({0: "fast"}):
            pass
