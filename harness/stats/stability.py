"""Verdict stability: how often the whole verdict procedure (tests, minimums, Holm over the
grid) returns the same verdict on bootstrap resamples of the test windows.

A verdict that flips on a fifth of the resamples of its own windows is fragile. This is
observed power, not replication: it restates how far the case's own p-value sits from alpha
(the 0.8 cut is a Holm-adjusted p of about 0.013), so it marks true passes at modest power
nearly as often as false ones (docs/calibration.md). This costs no model pass: the
verdict functions are pure functions of per-window arrays, which are resampled jointly
(one draw of window indices for every array of the grid, so paired contrasts stay paired
and the Holm family is the same).

Documented defaults: STABILITY_RESAMPLES resamples, a verdict is fragile below FRAGILE_BELOW.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np

from sinkbench.stats import claims
from sinkbench.stats.inference import case_seed
from sinkbench.stats.units import map_windows

STABILITY_RESAMPLES = 100
FRAGILE_BELOW = 0.8


def take_windows(obj, idx: np.ndarray):
    """obj with every per-window array resampled at window indices idx (units.map_windows)."""
    return map_windows(obj, lambda a, axis: np.take(a, idx, axis=axis))


def verdict_stability(verdicts: Callable[[object], dict], inputs, n_windows: int, *, resamples: int = STABILITY_RESAMPLES,
                      seed: int = 0, reads_intervals: bool = False) -> dict:
    """verdicts(inputs) -> key -> (passed, metrics). Returns key -> share of `resamples`
    window resamples on which the key's verdict equals the one on the windows themselves."""
    reference = {k: bool(v[0]) for k, v in verdicts(inputs).items()}
    same = dict.fromkeys(reference, 0)
    rng = np.random.default_rng(seed)
    guard = contextlib.nullcontext() if reads_intervals else claims.without_intervals()
    with guard:
        for _ in range(resamples):
            idx = rng.integers(0, n_windows, n_windows)
            for k, v in verdicts(take_windows(inputs, idx)).items():
                same[k] += bool(v[0]) == reference[k]
    return {k: same[k] / resamples for k in reference}


def attach(out: dict, verdicts: Callable[[object], dict], inputs, n_windows: int, hypothesis: str,
           reads_intervals: bool = False, model: str = "") -> dict:
    """Adds verdict_stability (and fragile) to every case's metrics of `out` (the result of
    verdicts(inputs)); returns out. With SINKBENCH_DUMP_INPUTS=DIR in the environment, the
    verdict inputs are also pickled there (for audits that re-run other verdict functions on
    the same per-window arrays, e.g. benchmarks/verdicts_before_after.py)."""
    dump_inputs(hypothesis, model, inputs)
    shares = verdict_stability(verdicts, inputs, n_windows, seed=case_seed("stability", hypothesis),
                               reads_intervals=reads_intervals)
    for key, (_, m) in out.items():
        share = shares.get(key)
        if share is not None:
            m["verdict_stability"] = share
            m["fragile"] = share < FRAGILE_BELOW
            m["stability_resamples"] = STABILITY_RESAMPLES
    return out


def dump_inputs(hypothesis: str, model: str, inputs) -> None:
    import os
    import pickle
    from pathlib import Path

    folder = os.environ.get("SINKBENCH_DUMP_INPUTS")
    if not folder:
        return
    path = Path(folder) / f"{model.replace('/', '_')}--{hypothesis}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps({"hypothesis": hypothesis, "model": model, "inputs": inputs}))
    os.replace(tmp, path)

