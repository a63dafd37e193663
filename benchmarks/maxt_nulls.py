"""Max-T step-down against Holm over mean_greater (issue 30, item 7): family-wise false-pass
rates under the hostile nulls, and power at effect sizes like the real ones.

  python benchmarks/maxt_nulls.py [--trials 1000] [--windows 16] [--parts null,partial,power]
                                  [--sizes 3,6,12] [--partial-sizes 6]
                                  [--rhos 0,0.5,0.9] [--nulls NAME,...] [--out FILE]

Every trial draws one family: an [n windows, m tests] matrix, one column per test, each
claim "mean > 0". Both procedures see the same matrix:

* Holm: stats.holm over the columns' stats.mean_greater p-values (what every verdict does);
* max-T: stats.maxt.maxt_stepdown (joint resampling of the windows, Gaussian and bootstrap
  null distributions of the family's maximum, the small-sample margin).

A test passes at adjusted p <= alpha = 0.05. Noise shapes (each column's marginal shape
exactly that of the null; tests within the family correlated by a Gaussian copula with
correlation rho, so every column keeps mean 0 at the null):

  gaussian; t2; lognormal sigma 0.6 with its tail on the null side / on the claim side;
  AR(1) rho 0.5 over windows; 5% of windows at -10 (the rest N(10 * 0.05 / 0.95, 1), mean
  exactly 0); 50-75% exact zeros (each column its own zeros); one NaN window per column.

Parts:
* null: every column at the boundary (mean 0); the rate is the family-wise false-pass rate
  (some test passes). Compared with alpha + 3 SE (0.0707 at 1000 trials).
* partial: the project's hostile construction (harness/run/hostile.py): column 0 at the
  boundary, every other column 3 window-sds the claimed way; the rate is column 0's.
* power: `--true` columns shifted `--effect` window-sds the claimed way (Gaussian and
  lognormal-null-side noise), the rest at 0; the rate is the share of true tests that pass,
  and 'any' the share of trials where at least one does. The family-wise false-pass rate of
  the null columns is reported beside it.

Seeds: each cell has its own generator; each procedure's resampling seed is fixed per cell
(as the product fixes it per case), so the rates are over data, not over resamples.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import special

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinkbench.stats.inference import case_seed, holm, mean_greater  # noqa: E402
from sinkbench.stats.maxt import maxt_stepdown  # noqa: E402

ALPHA = 0.05
SIGMA_LN = 0.6
OUTLIER_SHARE, OUTLIER_AT = 0.05, -10.0


def _lognormal_q(u: np.ndarray) -> np.ndarray:
    """Quantiles of the centred, unit-variance lognormal(0, 0.6) (long tail up)."""
    s2 = SIGMA_LN ** 2
    sd = math.sqrt((math.exp(s2) - 1) * math.exp(s2))
    return (np.exp(SIGMA_LN * special.ndtri(u)) - math.exp(s2 / 2)) / sd


def _outlier_q(u: np.ndarray) -> np.ndarray:
    """Quantiles of: OUTLIER_SHARE of windows at OUTLIER_AT, the rest N(mu, 1) with mean 0 overall."""
    mu = -OUTLIER_AT * OUTLIER_SHARE / (1 - OUTLIER_SHARE)
    rest = np.clip((u - OUTLIER_SHARE) / (1 - OUTLIER_SHARE), 1e-12, 1 - 1e-12)
    return np.where(u < OUTLIER_SHARE, OUTLIER_AT, mu + special.ndtri(rest))


def _correlated_normal(rng, n: int, m: int, rho: float) -> np.ndarray:
    return math.sqrt(rho) * rng.standard_normal((n, 1)) + math.sqrt(1 - rho) * rng.standard_normal((n, m))


def _ar1(rng, n: int, m: int, rho: float, phi: float = 0.5) -> np.ndarray:
    e = _correlated_normal(rng, n, m, rho)
    x = np.empty((n, m))
    x[0] = e[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + math.sqrt(1 - phi ** 2) * e[i]
    return x


def _copula(quantile):
    def draw(rng, n, m, rho):
        return quantile(special.ndtr(_correlated_normal(rng, n, m, rho)))
    return draw


def _zeros(rng, n, m, rho):
    x = _correlated_normal(rng, n, m, rho)
    share = rng.uniform(0.5, 0.75, m)
    return np.where(rng.random((n, m)) < share, 0.0, x)


def _one_nan(rng, n, m, rho):
    x = _correlated_normal(rng, n, m, rho)
    x[rng.integers(n, size=m), np.arange(m)] = np.nan
    return x


NULLS = {
    "gaussian": lambda rng, n, m, rho: _correlated_normal(rng, n, m, rho),
    "t2": _copula(lambda u: special.stdtrit(2, np.clip(u, 1e-15, 1 - 1e-15))),
    "lognormal null-side tail": _copula(lambda u: -_lognormal_q(u)),
    "lognormal claim-side tail": _copula(_lognormal_q),
    "AR(1) 0.5": _ar1,
    "5% at -10": _copula(_outlier_q),
    "50-75% zeros": _zeros,
    "one NaN window": _one_nan,
}
POWER_NOISES = ("gaussian", "lognormal null-side tail")


def _both(x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(Holm-adjusted, max-T-adjusted) p-values of the family x (the same raw p's for both)."""
    m = x.shape[1]
    raw = [mean_greater(x[:, j], seed=seed + j) for j in range(m)]
    return holm(raw), maxt_stepdown(x, seed=seed, raw=raw)


def run_cell(part: str, null: str, m: int, rho: float, trials: int, n: int, effect: float = 1.0,
             n_true: int = 1) -> dict:
    rng = np.random.default_rng(case_seed("maxt-bench", part, null, m, rho, effect, n_true))
    seed = case_seed("maxt-resamples", part, null, m, rho) % (2 ** 31)
    draw = NULLS[null]
    shift = np.zeros(m)
    if part == "partial":
        shift[1:] = 3.0
    elif part == "power":
        shift[:n_true] = effect
    hits = {"holm": [], "maxt": []}
    for _ in range(trials):
        x = draw(rng, n, m, rho) + shift
        h, t = _both(x, seed)
        hits["holm"].append(h <= ALPHA)
        hits["maxt"].append(t <= ALPHA)
    row = dict(part=part, null=null, m=m, rho=rho, trials=trials, windows=n)
    for name, r in hits.items():
        r = np.array(r)
        if part == "null":
            row[name] = float(r.any(1).mean())
        elif part == "partial":
            row[name] = float(r[:, 0].mean())
        else:
            row[name] = float(r[:, :n_true].mean())
            row[name + "_any"] = float(r[:, :n_true].any(1).mean())
            row[name + "_fwer"] = float(r[:, n_true:].any(1).mean()) if n_true < m else 0.0
    if part == "power":
        row.update(effect=effect, n_true=n_true)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--parts", default="null,partial,power")
    ap.add_argument("--sizes", default="3,6,12")
    ap.add_argument("--partial-sizes", default="6", help="family sizes of the partial part (its rate is column 0's alone)")
    ap.add_argument("--rhos", default="0,0.5,0.9")
    ap.add_argument("--nulls", default=",".join(NULLS), help="comma-separated subset of the null names")
    ap.add_argument("--effect", type=float, default=1.0, help="power: true tests' shift in window-sds")
    ap.add_argument("--out", type=Path, default=None, help="JSON lines, one per cell (appended)")
    a = ap.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",")]
    rhos = [float(r) for r in a.rhos.split(",")]
    nulls = [s for s in a.nulls.split(",") if s]
    unknown = [s for s in nulls if s not in NULLS]
    if unknown:
        ap.error(f"unknown null {unknown[0]!r}; the nulls are: {', '.join(NULLS)}")
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / a.trials)
    print(f"bound alpha + 3 SE = {bound:.4f} at {a.trials} trials, {a.windows} windows", flush=True)
    for part in a.parts.split(","):
        cells = []
        if part == "null":
            cells = [(null, m, rho, 1) for null in nulls for m in sizes for rho in rhos]
        elif part == "partial":
            cells = [(null, int(m), rho, 1) for null in nulls for m in a.partial_sizes.split(",") for rho in rhos]
        elif part == "power":
            cells = [(null, m, rho, k) for null in POWER_NOISES for m in sizes for rho in rhos
                     for k in sorted({1, max(1, m // 3)})]
        for null, m, rho, k in cells:
            t0 = time.time()
            row = run_cell(part, null, m, rho, a.trials, a.windows, a.effect, k)
            row["seconds"] = round(time.time() - t0, 1)
            if part == "power":
                line = (f"{part:8s} {null:28s} m={m:2d} rho={rho:.1f} true={k:2d} effect={a.effect}: "
                        f"power holm {row['holm']:.3f} maxt {row['maxt']:.3f} | any holm {row['holm_any']:.3f} "
                        f"maxt {row['maxt_any']:.3f} | fwer holm {row['holm_fwer']:.3f} maxt {row['maxt_fwer']:.3f}")
            else:
                flag = lambda r: " OVER" if r > bound else ""  # noqa: E731
                line = (f"{part:8s} {null:28s} m={m:2d} rho={rho:.1f}: holm {row['holm']:.3f}{flag(row['holm'])} "
                        f"maxt {row['maxt']:.3f}{flag(row['maxt'])}")
            print(line + f"  ({row['seconds']} s)", flush=True)
            if a.out:
                with a.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
