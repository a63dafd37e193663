"""Time prefix reuse alone: FilterSweep with and without it, on the same filters (H1 + H2
without the frontier), both with in-pass attention reduction and chunked NLL.

    python benchmarks/isolate_prefix_reuse.py smollm2-135m
"""
import sys
import time

import torch

from sinkbench.model.access import load_subject
from sinkbench.measure.data import windows_for
from sinkbench.measure.experiments import parse_layers
from sinkbench.measure.spectrum import spectrum_for
from sinkbench.measure.sweep import FilterSweep

FILTERS = ["dark_all", "dark_sink", "middle", "random1000", "random1001", "random1002",
           "omega5", "omega10", "omega15", "head6", "head11", "head16"]


def main(name: str) -> None:
    torch.set_grad_enabled(False)
    subject = load_subject(name)
    windows = windows_for(subject, "pydoc", 128, 16)
    spectrum = spectrum_for(subject, 20)
    layers = parse_layers("0.25,0.5,0.75", subject.n_layers)
    for reuse in (False, True):
        sweep = FilterSweep(subject, windows, spectrum, 16, 3, layers=layers, reuse_prefix=reuse)
        sweep.base()
        t0 = time.perf_counter()
        for layer in layers:
            for f in FILTERS:
                sweep.get(layer, f)
        print(f"{name} reuse_prefix={reuse}: {time.perf_counter() - t0:.1f}s for {len(layers) * len(FILTERS)} filtered passes", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
