"""Every H1-H5 readout leaves the device through sinkbench.model.tensors.to_numpy. Here the
attention readouts and saved layer outputs of every pass are a tensor subclass that,
like a CUDA tensor, refuses .numpy() (and numpy conversion) until moved to the CPU."""
import numpy as np
import pytest
import torch

from sinkbench.measure import interventions
from sinkbench.measure.config import make_settings
from sinkbench.model.tensors import to_numpy


class OnDevice(torch.Tensor):
    """A CPU tensor that behaves like one on a GPU where numpy is concerned."""

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first")

    def __array__(self, *args, **kwargs):
        return self.numpy()

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor)


def on_device(x):
    return x.as_subclass(OnDevice) if isinstance(x, torch.Tensor) else x


@pytest.fixture
def device_readouts(monkeypatch):
    real = interventions.run_pass

    def run_pass(*args, **kwargs):
        res = real(*args, **kwargs)
        res.attention = {k: on_device(v) for k, v in res.attention.items()}
        res.hidden = {k: on_device(v) for k, v in res.hidden.items()}
        return res

    monkeypatch.setattr(interventions, "run_pass", run_pass)


def test_the_subclass_refuses_numpy_like_a_gpu_tensor():
    x = on_device(torch.ones(3))
    with pytest.raises(TypeError, match="cpu"):
        x.numpy()
    with pytest.raises(TypeError):
        np.asarray(x)
    assert to_numpy(x * 2).tolist() == [2.0, 2.0, 2.0]


def test_h1_to_h5_readouts_are_device_safe(llama_subject, device_readouts, tmp_path, monkeypatch):
    from sinkbench.measure.data import windows_for
    from sinkbench.hypotheses.h1_dark_tail import h1_grid
    from sinkbench.hypotheses.h2_middle import h2_grid
    from sinkbench.hypotheses.h3_distributed import h3_grid
    from sinkbench.hypotheses.h4a_designated_write import h4a_grid
    from sinkbench.hypotheses.h5_sink_writer import h5_grid
    from sinkbench.measure.spectrum import spectrum_for
    from sinkbench.measure.sweep import FilterSweep

    monkeypatch.setenv("SINKBENCH_CACHE", str(tmp_path))
    s = make_settings(n_seqs=4, seq_len=32, n_bands=8, dataset="pydoc", bootstrap=50, n_select=2, h2_ks="0.5",
                      random_seeds=1)
    llama_subject.meta.pop("tokens", None)
    windows = windows_for(llama_subject, s.dataset, s.seq_len, s.n_seqs)
    sweep = FilterSweep(llama_subject, windows, spectrum_for(llama_subject, 8), 4, 1, layers=[1])
    assert h1_grid(sweep, [1], s)[1][1]["dark_ratio_sink"] > 0
    assert (1, "b") in h2_grid(sweep, [1], [4], s)
    assert ("nobos", "4") in h3_grid(llama_subject, s)
    assert h4a_grid(sweep, [1], s, 3.0)
    assert "1" in h5_grid(sweep, s, 0.5, seed=0)


def test_h4b_readouts_are_device_safe(device_readouts):
    from sinkbench.model.access import load_subject
    from sinkbench.measure.data import windows_for
    from sinkbench.hypotheses.h4b_designated_training import h4b_grid
    from sinkbench.measure.spectrum import spectrum_for
    from sinkbench.measure.sweep import FilterSweep

    subject = load_subject("tiny-bb-designated")
    s = make_settings(n_seqs=4, seq_len=32, bootstrap=50)
    windows = windows_for(subject, s.dataset, s.seq_len, s.n_seqs)
    sweep = FilterSweep(subject, windows, spectrum_for(subject, s.n_bands), 4, 1, layers=[0])
    assert (0, "B1") in h4b_grid(sweep, [0], s)
