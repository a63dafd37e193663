"""H5: the dark-write attribution adds up, and the causal removal equals a torch hook."""
import numpy as np
import pytest
import torch

from sinkbench.measure.spectrum import spectrum_for
from sinkbench.hypotheses.h5_sink_writer.measurement import attribute, run_removal


@pytest.mark.parametrize("which", ["llama_subject", "gemma_subject"])
def test_attribution_adds_up(request, which, windows, tmp_path, monkeypatch):
    """sum of the components' band-K projections at the sink (plus the embedding's)
    equals the band-K projection of the residual."""
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    subject = request.getfixturevalue(which)
    sp = spectrum_for(subject, 8)
    att = attribute(subject, windows, sp)
    assert att.sum_error < 1e-4
    assert att.dark_write.shape == (len(windows), 2 * subject.n_layers)
    assert np.allclose(att.dark_after[:, -1], att.dark_final, rtol=1e-4)


@pytest.mark.parametrize("which", ["llama_subject", "gemma_subject"])
@pytest.mark.parametrize("component", [0, 3])
def test_removal_matches_a_torch_hook(request, which, component, windows, tmp_path, monkeypatch):
    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    subject = request.getfixturevalue(which)
    sp = spectrum_for(subject, 8)
    pk = sp.keep([8])
    nll, mass = run_removal(subject, windows, sp, component, "dark")
    layer, branch = divmod(component, 2)
    module = subject.branches(subject.model, layer)[branch]

    def hook(mod, args, out):
        t = out[0] if isinstance(out, tuple) else out
        t = t.clone()
        t[:, 0] = t[:, 0] - t[:, 0] @ pk
        return (t,) + tuple(out[1:]) if isinstance(out, tuple) else t

    h = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = subject.model(windows, output_attentions=True)
    finally:
        h.remove()
    logits = out.logits[:, :-1]
    # the prediction made at the edited sink (position 0) is left out
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1), reduction="none").view(len(windows), -1)[:, 1:].mean(1)
    ref_mass = torch.stack([a[:, :, 1:, 0].mean((1, 2)) for a in out.attentions[layer + 1:]], 1).mean(1)
    assert np.allclose(nll, ref.numpy(), atol=1e-5)
    if layer + 1 < subject.n_layers:
        assert np.allclose(mass, ref_mass.numpy(), atol=1e-6)
