"""Peak memory of three NLL-only filtered passes after layer L/4, with attention read
(eager, reduced to sink mass in every later layer) or not (fused kernel). Run each mode
in its own process, since the allocator keeps what an earlier pass freed:

    python benchmarks/attention_memory.py smollm2-135m none
    python benchmarks/attention_memory.py smollm2-135m eager
"""
import sys

import torch

from sinkbench.model.access import load_subject
from sinkbench.measure.data import windows_for
from sinkbench.measure.interventions import Edit, run_batched
from sinkbench.measure.spectrum import spectrum_for
from sinkbench.measure.sweep import FilterSweep

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_sweep_speed import PeakRSS  # noqa: E402


def main(name: str, mode: str) -> None:
    torch.set_grad_enabled(False)
    subject = load_subject(name)
    windows = windows_for(subject, "pydoc", 128, 16)
    sp = spectrum_for(subject, 20)
    layer = subject.n_layers // 4
    sweep = FilterSweep(subject, windows, sp, 16, 3, layers=[layer])
    sweep.base()
    edit = Edit.project(layer, sp.remove([10]))
    attn = range(layer + 1, subject.n_layers) if mode == "eager" else ()
    with PeakRSS() as mem:
        for _ in range(3):
            run_batched(subject, windows, 16, edit=edit, prefix=sweep.base_hidden[layer], attn_layers=attn)
    print(f"{name} attention {mode}: peak +{mem.mib:.0f} MiB over 3 passes after layer {layer}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
