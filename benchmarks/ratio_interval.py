"""Coverage of stats.ratio_ci's 95% interval for a ratio of means at 16 windows, where the
denominator varies a lot between windows (as the attention an unedited token gets does:
H4-A's capture, H7's readout), against the linear bootstrap-t that ratio_ci used for every
ratio before (`log=False`; kept for ratios whose windows are not all positive). Also the share of
intervals whose lower end is negative, which no ratio of positive means can be.

    python benchmarks/ratio_interval.py [--trials 1000]

Cases: the numerator is 5 x the denominator times lognormal noise (sigma 0.1 or 0.3, mean
kept), or independent of it (lognormal, sigma 1); the denominator is lognormal with the sigma
named. The true ratio of means is 5 in each."""
from __future__ import annotations

import argparse
import math

import numpy as np

from sinkbench.stats.inference import ratio_ci

CASES = {"denominator sigma 0.1, numerator proportional": (0.1, 0.1),
         "denominator sigma 0.5, numerator proportional": (0.5, 0.3),
         "denominator sigma 1.0, numerator proportional": (1.0, 0.3),
         "denominator sigma 1.5, numerator proportional": (1.5, 0.3),
         "denominator sigma 1.0, numerator independent (sigma 1.0)": (1.0, None)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--windows", type=int, default=16)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"| case ({args.windows} windows, {args.trials} trials, true ratio 5) | coverage, log scale (used) "
          "| coverage, linear (before) | linear: lower end < 0 |")
    print("|---|---|---|---|")
    for name, (sig_b, sig_a) in CASES.items():
        log_hits = lin_hits = negative = 0
        for t in range(args.trials):
            b = 0.04 * np.exp(sig_b * rng.standard_normal(args.windows))
            if sig_a is None:  # mean 5 x the denominator's mean, 0.04 exp(sig_b^2 / 2)
                a = 5 * 0.04 * math.exp(sig_b ** 2 / 2) * np.exp(rng.standard_normal(args.windows) - 0.5)
            else:
                a = 5 * b * np.exp(sig_a * rng.standard_normal(args.windows) - sig_a ** 2 / 2)
            truth = 5.0
            lo, hi = ratio_ci(a, b, 2000, seed=t)
            log_hits += lo <= truth <= hi
            lo, hi = ratio_ci(a, b, 2000, seed=t, log=False)
            lin_hits += lo <= truth <= hi
            negative += lo < 0
        n = args.trials
        print(f"| {name} | {log_hits / n:.3f} | {lin_hits / n:.3f} | {negative / n:.3f} |", flush=True)


if __name__ == "__main__":
    main()
