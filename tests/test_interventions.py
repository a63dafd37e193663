"""The nnsight edit equals the same edit done with a plain torch forward hook."""
import pytest
import torch
import torch.nn.functional as F

from sinkbench.measure.interventions import Edit, apply_projector, run_pass
from sinkbench.measure.spectrum import spectrum_for


def hooked_reference(model, ids, layer, projector, positions):
    """Plain torch: a forward hook on decoder layer `layer`, full logits, cross-entropy."""
    def hook(module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        new = h.clone()
        sel = slice(None) if positions == "all" else (slice(0, 1) if positions == "sink" else slice(1, None))
        new[:, sel] = h[:, sel] @ projector
        return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new

    handle = model.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = model(ids, output_attentions=True)
    finally:
        handle.remove()
    logits = out.logits[:, :-1].float()
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none").view(ids.shape[0], -1).mean(1)
    mass = torch.stack([a[:, :, 1:, 0].mean((1, 2)) for a in out.attentions], 1)
    return nll, mass


@pytest.mark.parametrize("positions", ["all", "sink", "nonsink"])
@pytest.mark.parametrize("which", ["llama_subject", "gemma_subject"])
def test_nnsight_edit_equals_torch_hook(request, which, positions, windows, tmp_path, monkeypatch):
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    subject = request.getfixturevalue(which)
    sp = spectrum_for(subject, 8)
    projector = sp.remove([8])
    res = run_pass(subject, windows, Edit.project(1, projector, positions), attn_layers=range(subject.n_layers))
    nll, mass = hooked_reference(subject.model, windows, 1, projector, positions)
    assert torch.allclose(res.nll, nll, atol=1e-5)
    assert torch.allclose(res.sink_mass, mass, atol=1e-6)
    base = run_pass(subject, windows)
    assert not torch.allclose(base.nll, res.nll, atol=1e-4), "the edit must change something"


def test_apply_projector_touches_only_the_chosen_positions():
    h = torch.randn(2, 5, 4)
    zero = torch.zeros(4, 4)
    assert torch.equal(apply_projector(h, zero, "sink")[:, 1:], h[:, 1:])
    assert torch.equal(apply_projector(h, zero, "sink")[:, 0], torch.zeros(2, 4))
    assert torch.equal(apply_projector(h, zero, "nonsink")[:, 0], h[:, 0])
    assert torch.equal(apply_projector(h, zero, "nonsink")[:, 1:], torch.zeros(2, 4, 4))


def test_hidden_states_are_returned_after_the_edit(llama_subject, windows):
    zero = torch.zeros(64, 64)
    res = run_pass(llama_subject, windows, Edit.project(2, zero, "all"), hidden_layers=[1, 2])
    assert torch.count_nonzero(res.hidden[2]) == 0 and torch.count_nonzero(res.hidden[1]) > 0
