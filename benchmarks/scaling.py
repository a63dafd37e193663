"""How the cost of one filtered pass grows with the edited layer, the number of
windows, and the vocabulary (measured, not modelled).

    python benchmarks/scaling.py smollm2-135m

* layer: one NLL-only filtered pass (prefix reuse) after layers 0, L/4, L/2, 3L/4, L-2;
* windows: the pass after layer L/2 on 8, 16 and 32 windows of 128 tokens;
* vocabulary: the NLL step alone (chunked_nll) for 16 x 128 tokens at d = 640 and
  V = 32k .. 256k, with a random unembedding.
"""
import sys
import time

import torch

from sinkbench.model.access import load_subject
from sinkbench.measure.data import windows_for
from sinkbench.measure.interventions import Edit, run_batched
from sinkbench.model.metrics import chunked_nll
from sinkbench.measure.spectrum import spectrum_for
from sinkbench.measure.sweep import FilterSweep


def best_of(fn, n: int = 2) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(name: str) -> None:
    torch.set_grad_enabled(False)
    subject = load_subject(name)
    n = subject.n_layers
    sp = spectrum_for(subject, 20)
    layers = sorted({0, n // 4, n // 2, 3 * n // 4, n - 2})
    windows = windows_for(subject, "pydoc", 128, 32)
    sweep = FilterSweep(subject, windows[:16], sp, 16, 1, layers=layers)
    sweep.base()
    print(f"{name}: {n} layers; one NLL-only filtered pass, 16 x 128 tokens", flush=True)
    for layer in layers:
        edit = Edit.project(layer, sp.remove([10]))
        t = best_of(lambda: run_batched(subject, windows[:16], 16, edit=edit, prefix=sweep.base_hidden[layer]))
        print(f"  after layer {layer:2d} ({n - 1 - layer:2d} layers left): {t:.2f}s", flush=True)
    mid = n // 2
    for count in (8, 16, 32):
        s = FilterSweep(subject, windows[:count], sp, count, 1, layers=[mid])
        s.base()
        edit = Edit.project(mid, sp.remove([10]))
        t = best_of(lambda: run_batched(subject, windows[:count], count, edit=edit, prefix=s.base_hidden[mid]))
        print(f"  {count:2d} windows, after layer {mid}: {t:.2f}s ({t / count:.3f}s per window)", flush=True)
    ids = windows[:16]
    hidden = torch.randn(16, 128, 640)
    for vocab in (32768, 65536, 131072, 262144):
        w = torch.randn(vocab, 640) * 0.02
        t = best_of(lambda: chunked_nll(hidden, w, ids % vocab))
        print(f"  NLL step, V = {vocab:6d}, d = 640: {t:.2f}s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m")
