"""Boundary null for H7(e), to see what reading the family's cut on the test windows costs.

    python -m benchmarks.h7_cut_null [DRAWS]     (from the repository root; 400 draws: ~3 minutes)

Every rung recovers exactly h7_min_designated = 0.5 of the first token's recovery (32 test
windows, noise 0.2 nats). At layer 15 the upper bound's true share is also 0.5, at the cut, and
the rungs there share its window noise, so a cut read on the test windows keeps the layer
exactly when its rungs look good. Compared: the cut read on the test windows (the old rule),
on 8 independent selection windows (today's), and no cut. Prints (e)'s false-pass rate of each."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np

from sinkbench.hypotheses.h7_streaming import verdicts as claims_h7
from tests.test_h7_claims import N, arrays, verdicts

LAYERS = (1, 15)


def draw(seed: int, sd: float = 0.2):
    """(H7Test at the boundary null, the selection windows' upper bound per layer)."""
    t = arrays(seed=seed)
    rng = np.random.default_rng(1000 + seed)
    natural = t.window - t.sink1
    shared = {l: sd * rng.standard_normal(N) for l in LAYERS}  # a layer's window noise, its rungs' and bound's
    at = lambda share, l: t.window - share * natural + shared[l] + 0.02 * rng.standard_normal(N)  # noqa: E731
    designated = {l: at(0.5, l) for l in LAYERS}
    ladder = {(r, l): at(0.5, l) for r in claims_h7.RUNG_ORDER[1:5] for l in LAYERS}
    late = {1: at(1.0, 1), 15: at(0.5, 15)}
    sel = 0.9 + 0.1 * rng.standard_normal(8)  # sink1's recovery on 8 selection windows
    cut = {l: float(np.mean(b * sel + sd * rng.standard_normal(8)) / sel.mean()) for l, b in ((1, 1.0), (15, 0.5))}
    return dataclasses.replace(t, designated=designated, ladder=ladder, late=late), cut


def main(draws: int = 400) -> None:
    passes = {"test windows": 0, "selection windows": 0, "no cut": 0}
    for seed in range(draws):
        t, cut = draw(seed)
        passes["test windows"] += verdicts(t)["e"][0]
        passes["selection windows"] += verdicts(dataclasses.replace(t, cut_bound=cut))["e"][0]
        passes["no cut"] += verdicts(dataclasses.replace(t, cut_bound={l: 1.0 for l in LAYERS}))["e"][0]
    print(f"(e) false-pass rate over {draws} draws, cut read on: "
          + ", ".join(f"{k} {v / draws:.3f}" for k, v in passes.items()))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
