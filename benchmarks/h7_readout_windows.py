"""Per-window attention to the designated position 1 in H7's readout (the first token present),
unedited and under one rung: why a readout's capture interval can be wide (methods §11).

    python benchmarks/h7_readout_windows.py [MODEL] [RUNG] [LAYER]   (default smollm2-135m dark_kept 1)

Runs two passes over the default test windows (16 x 128, W = 32): the unedited full pass and
the rung at LAYER under the full mask, and prints, per window, the attention of the queries
>= W to position 1 (mean over layers LAYER+1..L-1), the edit's ratio, the token at position 1,
and the ratio of means with stats.ratio_ci's interval, as the record computes it."""
from __future__ import annotations

import sys
from functools import partial

import numpy as np

from sinkbench.hypotheses.h7_streaming import measurement as h7
from sinkbench.measure.data import windows_for
from sinkbench.measure.designate import ladder_hooks, rung_edit
from sinkbench.measure.sink_profile import MEASURES
from sinkbench.measure.spectrum import spectrum_for
from sinkbench.model.access import load_subject
from sinkbench.stats.inference import ratio_ci


def main(model: str = "smollm2-135m", rung: str = "dark_kept", layer: int = 1) -> None:
    subject = load_subject(model)
    ids = windows_for(subject, "auto", 128, 16)
    spectrum = spectrum_for(subject, 20, "U")
    w, n = 32, len(ids)
    full = h7.regime_mask(subject, ids.shape[1], "full", w)
    att = [MEASURES.index("attention") + len(MEASURES) * k for k in range(2)]

    def to_position_1(edit, hooks) -> np.ndarray:
        _, prof = h7._profiled(subject, ids, n, (0, h7.CONTROL_POSITION), w, full, edit, hooks)
        return np.mean([prof[i][:, att].numpy() for i in prof if i > layer], 0)[:, 1]

    base = to_position_1(None, None)
    edited = to_position_1(rung_edit(spectrum, rung, layer, h7.CONTROL_POSITION, n),
                           partial(ladder_hooks, subject, rung, layer, h7.CONTROL_POSITION,
                                   spectrum.keep([spectrum.n_bands])))
    print(f"{model}, {rung} at layer {layer}: window, unedited, edited, ratio, token at position 1")
    for i in range(n):
        print(f"{i:3d} {base[i]:8.4f} {edited[i]:8.4f} {edited[i] / base[i]:8.1f}  {subject.tokenizer.decode([int(ids[i, 1])])!r}")
    print(f"capture (ratio of means) {edited.mean() / base.mean():.2f}, 95% interval {ratio_ci(edited, base, 2000, seed=1)}")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or []), *(sys.argv[2:3] or []), *([int(sys.argv[3])] if len(sys.argv) > 3 else []))
