"""H6's calibration (docs/calibration.md, "H6"): the false-pass rate and power of claim (a)
(the massive coordinates' band-K share against random coordinate sets) and of claim
(b)'s equivalence criterion (b-mean) at its boundary.

    python benchmarks/calibrate_h6.py [--model smollm2-135m]

Claim (a)'s null: the 'massive' coordinates are a uniformly random set of m coordinates of
a basis (synthetic: a Gaussian W_U with 3 small-gain coordinates of 200; real: a model's
own band-K diagonal). Power: the set is the small-gain (dark) coordinates. b-mean's null:
skewed per-window NLL rises whose mean equals the tolerance."""
from __future__ import annotations

import argparse

import numpy as np
import torch

from sinkbench.hypotheses.h6_massive.verdicts import dark_share_test
from sinkbench.hypotheses.h6_massive.measurement import coordinate_dark_shares, random_set_shares
from sinkbench.measure.spectrum import Spectrum, folded_unembedding, right_singular_basis
from sinkbench.stats.inference import mean_ci, mean_greater

ALPHA, MIN_FOLD, SETS = 0.05, 5.0, 9999


def passes(diag: np.ndarray, coords) -> bool:
    r = dark_share_test(diag, list(coords), SETS)
    return r["p_raw"] < ALPHA and r["dark_share"] >= MIN_FOLD * r["chance_dark_share"]


def synthetic_diag(d: int = 200, dark=(0, 67, 134), seed: int = 0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    w_u = torch.randn(4 * d, d, generator=g, dtype=torch.float64)
    gain = torch.ones(d, dtype=torch.float64)
    gain[list(dark)] = 1e-3
    b, s = right_singular_basis(folded_unembedding(w_u, gain))
    return coordinate_dark_shares(Spectrum(b.float(), s.float(), 20))


def rate(diag: np.ndarray, draw, trials: int) -> float:
    return float(np.mean([passes(diag, draw()) for _ in range(trials)]))


def claim_a(diag: np.ndarray, label: str, trials: int, dark=None) -> None:
    rng = np.random.default_rng(1)
    for m in (1, 2, 3):
        null = rate(diag, lambda: rng.choice(diag.size, m, replace=False), trials)
        line = f"{label} m={m}: false-pass rate {null:.3f} over {trials} random sets"
        if dark is not None:
            power = rate(diag, lambda: rng.choice(dark, m, replace=False), 50)
            line += f"; power {power:.2f} (dark coordinates)"
        q = np.quantile(random_set_shares(diag, m, SETS, seed=0), 1 - ALPHA)
        line += f"; share needed to pass ~ max(q95 {q:.3f}, {MIN_FOLD:g} x chance {MIN_FOLD * diag.mean():.3f})"
        print(line)


def b_mean(trials: int = 2000, tol: float = 0.1) -> None:
    rng = np.random.default_rng(2)
    for label, spread, shift in (("boundary (rise = tolerance)", 0.05, 0.0), ("power (rise 0, sd 0.05)", 0.05, -tol)):
        ok = 0
        for i in range(trials):
            rise = tol + shift + spread * (rng.lognormal(0, 0.6, 16) - np.exp(0.18))
            ok += mean_greater(tol - rise, seed=i) < ALPHA and mean_ci(tol - rise, 400, seed=i)[0] >= 0
        print(f"b-mean {label}: pass rate {ok / trials:.3f} over {trials} draws of 16 windows")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--trials", type=int, default=2000)
    args = ap.parse_args()
    claim_a(synthetic_diag(), "synthetic d=200", args.trials, dark=(0, 67, 134))
    if args.model:
        from sinkbench.model.access import load_subject
        from sinkbench.measure.spectrum import spectrum_for

        claim_a(coordinate_dark_shares(spectrum_for(load_subject(args.model), 20)), args.model, args.trials)
    b_mean()


if __name__ == "__main__":
    main()
