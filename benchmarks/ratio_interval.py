"""Coverage of stats.ratio_ci's 95% interval for a ratio of means at 16 windows, where the
denominator varies a lot between windows (as the attention an unedited token gets does:
H4-A's capture, H7's readout), against the linear bootstrap-t that ratio_ci used for every
ratio before (kept for ratios whose windows are not all positive). Also the share of
intervals whose lower end is negative, which no ratio of positive means can be.

    python benchmarks/ratio_interval.py [--trials 1000]

Cases: the numerator is 5 x the denominator times lognormal noise (sigma 0.1 or 0.3, mean
kept), or independent of it (lognormal, sigma 1); the denominator is lognormal with the sigma
named. The true ratio of means is 5 in each."""
from __future__ import annotations

import argparse
import math

import numpy as np

from sinkbench.stats.inference import _counts, ratio_ci

CASES = {"denominator sigma 0.1, numerator proportional": (0.1, 0.1),
         "denominator sigma 0.5, numerator proportional": (0.5, 0.3),
         "denominator sigma 1.0, numerator proportional": (1.0, 0.3),
         "denominator sigma 1.5, numerator proportional": (1.5, 0.3),
         "denominator sigma 1.0, numerator independent (sigma 1.0)": (1.0, None)}


def linear_ratio_ci(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """The linear bootstrap-t (delta-method SE of r itself), as ratio_ci computes it for a
    ratio whose windows are not all positive."""
    n = a.size
    r = a.mean() / b.mean()
    se = np.std(a - r * b, ddof=1) / math.sqrt(n) / abs(b.mean())
    ma, mb, aa, bb, ab = (_counts(n, n_boot, seed) @ np.column_stack([a, b, a * a, b * b, a * b]) / n).T
    r_b = ma / mb
    t = (r_b - r) / (np.sqrt(np.maximum(aa - 2 * r_b * ab + r_b ** 2 * bb, 0) * n / (n - 1)) / math.sqrt(n) / np.abs(mb))
    t = np.where(np.isfinite(t), t, np.where(r_b > r, np.inf, -np.inf))
    q_lo, q_hi = np.quantile(t, [(1 - level) / 2, 1 - (1 - level) / 2], method="inverted_cdf")
    return r - q_hi * se, r - q_lo * se


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
            if sig_a is None:
                a = 5 * 0.04 * math.exp(sig_b ** 2 / 2) * np.exp(rng.standard_normal(args.windows) - 0.5)
                truth = 5 * 0.04 * math.exp(sig_b ** 2 / 2) / (0.04 * math.exp(sig_b ** 2 / 2))
            else:
                a = 5 * b * np.exp(sig_a * rng.standard_normal(args.windows) - sig_a ** 2 / 2)
                truth = 5.0
            lo, hi = ratio_ci(a, b, 2000, seed=t)
            log_hits += lo <= truth <= hi
            lo, hi = linear_ratio_ci(a, b, 2000, seed=t)
            lin_hits += lo <= truth <= hi
            negative += lo < 0
        n = args.trials
        print(f"| {name} | {log_hits / n:.3f} | {lin_hits / n:.3f} | {negative / n:.3f} |", flush=True)


if __name__ == "__main__":
    main()
