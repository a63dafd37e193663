"""The harness's H1 + H2 measurements for a layer grid versus a naive reference.

naive: plain transformers, one forward hook per configuration, one full forward
per configuration with output_attentions=True and full logits.
harness: FilterSweep (one shared base run; filtered runs start from the saved
layer output; attention read only where a claim needs sink mass, fused kernel
elsewhere; chunked NLL). Both must produce the same per-window NLLs (atol 1e-4
nats) and sink masses (atol 1e-5) wherever a claim reads them: the base run's
every layer, and the post-filter mean of the dark-tail filters. Run:  pytest benchmarks --benchmark-only  (see NOTES.md)."""
import os
import resource
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sinkbench.model.access import load_subject
from sinkbench.measure.data import windows_for
from sinkbench.measure.experiments import parse_layers
from sinkbench.measure.spectrum import spectrum_for
from sinkbench.measure.sweep import SINK_MASS_FILTERS, FilterSweep, resolve_ks

N_SEQS = int(os.environ.get("SINKBENCH_BENCH_NSEQS", 16))
SEQ_LEN = int(os.environ.get("SINKBENCH_BENCH_SEQLEN", 128))
LAYERS = os.environ.get("SINKBENCH_BENCH_LAYERS", "all")
FRONTIER = os.environ.get("SINKBENCH_BENCH_FRONTIER", "1") == "1"
K, SEEDS = 20, 3


def filter_names() -> list[str]:
    """Every filter H1 and H2 need at default settings."""
    names = ["dark_all", "dark_sink", "middle"] + [f"random{1000 + s}" for s in range(SEEDS)]
    ks = resolve_ks("0.25,0.5,0.75", K)
    names += [f"omega{k}" for k in ks] + [f"head{k + 1}" for k in ks]
    if FRONTIER:
        names += [f"omega{k}" for k in range(1, K - 1) if k not in ks]
    return names


class PeakRSS:
    """Peak resident memory above the start, sampled every 10 ms (MiB)."""

    def __enter__(self):
        import psutil

        self.proc, self.start, self.peak, self.stop = psutil.Process(), 0, 0, False
        self.start = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2**20


def naive_sweep(subject, windows, sweep, layers, names):
    """One full forward per configuration, a plain forward hook, output_attentions=True."""
    model = subject.model
    out = {}

    def forward(hook_layer=None, projector=None, positions="all"):
        handle = None
        if hook_layer is not None:
            def hook(module, args, output):
                h = output
                new = h.clone()
                sel = slice(None) if positions == "all" else (slice(0, 1) if positions == "sink" else slice(1, None))
                new[:, sel] = h[:, sel] @ projector
                return new
            handle = subject.layer(model, hook_layer).register_forward_hook(hook)
        try:
            with torch.no_grad():
                res = model(windows, output_attentions=True)
        finally:
            if handle is not None:
                handle.remove()
        logits = res.logits[:, :-1].float()
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1), reduction="none")
        mass = torch.stack([a[:, :, 1:, 0].mean((1, 2)) for a in res.attentions], 1)
        return nll.view(len(windows), -1).mean(1).numpy(), mass.numpy()

    out["base"] = forward()
    for layer in layers:
        for name in names:
            projector, positions = sweep.projector(name)
            out[layer, name] = forward(layer, projector, positions)
    return out


@pytest.fixture(scope="module")
def setup(bench_model):
    subject = load_subject(bench_model)
    windows = windows_for(subject, "pydoc", SEQ_LEN, N_SEQS)
    sp = spectrum_for(subject, K)
    layers = parse_layers(LAYERS, subject.n_layers, bench_model)
    return subject, windows, sp, layers


def test_harness_vs_naive(benchmark, setup):
    subject, windows, sp, layers = setup
    names = filter_names()
    torch.set_grad_enabled(False)

    def harness_run():
        sweep = FilterSweep(subject, windows, sp, batch_size=N_SEQS, random_seeds=SEEDS, layers=layers)
        sweep.base()
        return sweep, {(l, n): sweep.get(l, n) for l in layers for n in names}

    with PeakRSS() as mem_h:
        t0 = time.perf_counter()
        sweep, fast = benchmark.pedantic(harness_run, rounds=1, iterations=1)
        t_harness = time.perf_counter() - t0
    with PeakRSS() as mem_n:
        t0 = time.perf_counter()
        slow = naive_sweep(subject, windows, sweep, layers, names)
        t_naive = time.perf_counter() - t0

    assert np.allclose(sweep.base().nll, slow["base"][0], atol=1e-4)
    assert np.allclose(sweep.base().sink_mass, slow["base"][1], atol=1e-5)
    for (layer, name), m in fast.items():
        nll, mass = slow[layer, name]
        assert np.allclose(m.nll, nll, atol=1e-4), (layer, name)
        if name in SINK_MASS_FILTERS:  # the filters whose sink mass a claim reads; the others measure NLL only
            assert np.allclose(m.post_filter_sink_mass(layer), mass[:, layer + 1:].mean(1), atol=1e-5), (layer, name)

    configs = len(layers) * len(names)
    tokens = (configs + 1) * N_SEQS * SEQ_LEN
    benchmark.extra_info.update({
        "model": subject.name, "layers": len(layers), "filters": len(names), "configs": configs,
        "n_seqs": N_SEQS, "seq_len": SEQ_LEN, "threads": torch.get_num_threads(),
        "harness_s": round(t_harness, 2), "naive_s": round(t_naive, 2), "ratio_naive_over_harness": round(t_naive / t_harness, 2),
        "harness_peak_mib": round(mem_h.mib, 1), "naive_peak_mib": round(mem_n.mib, 1),
        "harness_tokens_per_s": round(tokens / t_harness), "naive_tokens_per_s": round(tokens / t_naive),
    })
    print(f"\n[bench] {subject.name}: {configs} configs, harness {t_harness:.1f}s, naive {t_naive:.1f}s, "
          f"ratio {t_naive / t_harness:.2f}x, peak +{mem_h.mib:.0f} MiB vs +{mem_n.mib:.0f} MiB")
