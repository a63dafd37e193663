"""What verdict stability measures (issue 30, item 6): a seeded simulation of one mean test over
windows and its stability over window resamples, both computed by the product's own functions.

    python benchmarks/stability_rates.py [--trials 800] [--null-trials 3000] [--windows 16] [--json FILE] [--docs docs/calibration.md]

Every trial draws the per-window contrast d of one case (`--windows` windows), tests it with
the skew-guarded mean test (stats.claims.test_mean, what every verdict of H1-H5 and H7 calls)
as a Holm family of one (the hardest case of the hostile grid: every other test of the family
clear, so Holm multiplies this p-value by 1), and, when it passes, computes its
`verdict_stability` with stats.stability.verdict_stability (100 joint resamples of the windows,
the verdict re-run on each; fragile below stability.FRAGILE_BELOW = 0.8), exactly as a run
records it. Three measurements:

* true passes: Gaussian windows with the effect (in window sds) at which the test's power at
  `--windows` windows is 0.33, 0.5, 0.7 and 0.9 (found by bisection on simulated power); the
  share of passes marked fragile and their mean stability;
* false passes: the contrast's mean exactly at the boundary (0), Gaussian windows and
  lognormal windows (sigma 0.6, the long tail on the null side, the edge of the calibrated
  range); the share of the false passes marked fragile, and the rate of false passes that
  are not (what a reader who trusts only stable passes is left with);
* the adjusted p-value at the cut: every pass above, binned by its p-value; in each bin the
  mean stability and the share fragile; the p at which the share fragile crosses one half
  (the median stability crosses 0.8), interpolated on log p between bins.

Seeded (--seed), so the numbers are the same on every machine. Prints the tables and, with
--json, writes every number. docs/calibration.md, "Verdict stability", has the results.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinkbench.stats import claims  # noqa: E402
from sinkbench.stats.nulls import DEFAULTS  # noqa: E402
from sinkbench.stats.stability import FRAGILE_BELOW, verdict_stability  # noqa: E402

ALPHA = DEFAULTS["alpha"]
POWERS = (0.33, 0.5, 0.7, 0.9)
P_BINS = (0.0, 0.001, 0.003, 0.006, 0.01, 0.015, 0.02, 0.03, 0.04, ALPHA)


def lognormal_null_side(rng, n: int, sigma: float = 0.6) -> np.ndarray:
    """Centred, unit-variance lognormal with its long tail on the null side."""
    s2 = sigma ** 2
    sd = math.sqrt((math.exp(s2) - 1) * math.exp(s2))
    return -(rng.lognormal(0.0, sigma, n) - math.exp(s2 / 2)) / sd


NOISE = {"gaussian": lambda rng, n: rng.standard_normal(n), "lognormal, tail on the null side": lognormal_null_side}


def verdicts_of(trial: int):
    """The verdict procedure of one case: the mean test of its contrast (seeded per trial, as
    a run seeds per case), a Holm family of one."""
    def verdicts(d):
        p = claims.test_mean(d, "stability-rates", trial)
        return {"case": (p < ALPHA, {"p": p})}
    return verdicts


def one_trial(rng, effect: float, n: int, noise: str, trial: int, stability: bool = True) -> dict:
    d = effect + NOISE[noise](rng, n)
    verdicts = verdicts_of(trial)
    passed, m = verdicts(d)["case"]
    out = {"passed": bool(passed), "p": float(m["p"])}
    if passed and stability:
        out["stability"] = verdict_stability(verdicts, d, n, seed=trial)["case"]
    return out


def power_at(effect: float, n: int, trials: int, seed: int) -> float:
    rng = np.random.default_rng([seed, 1])
    return float(np.mean([one_trial(rng, effect, n, "gaussian", t, stability=False)["passed"] for t in range(trials)]))


def effect_for_power(target: float, n: int, trials: int, seed: int, steps: int = 9) -> float:
    """The effect (window sds) with simulated power `target` at n windows: bisection (power
    increases with the effect; the same seeded draws at every effect)."""
    lo, hi = 0.0, 3.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        if power_at(mid, n, trials, seed) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def summarise(rows: list[dict]) -> dict:
    passes = [r for r in rows if r["passed"]]
    st = np.array([r["stability"] for r in passes]) if passes else np.array([])
    fragile = st < FRAGILE_BELOW
    return {"trials": len(rows), "passes": len(passes), "pass_rate": len(passes) / len(rows) if rows else float("nan"),
            "fragile_share_of_passes": float(fragile.mean()) if passes else float("nan"),
            "mean_stability_of_passes": float(st.mean()) if passes else float("nan"),
            "stable_pass_rate": float((~fragile).sum() / len(rows)) if rows else float("nan")}


def p_at_cut(passes: list[dict]) -> tuple[list[dict], float]:
    """Passes binned by p: mean stability and share fragile per bin; the p at which the share
    fragile crosses 1/2, interpolated on log p between the bins' geometric centres."""
    bins = []
    for lo, hi in zip(P_BINS[:-1], P_BINS[1:]):
        st = np.array([r["stability"] for r in passes if lo <= r["p"] < hi])
        bins.append({"p_from": lo, "p_to": hi, "passes": int(st.size),
                     "mean_stability": float(st.mean()) if st.size else float("nan"),
                     "fragile_share": float((st < FRAGILE_BELOW).mean()) if st.size else float("nan")})
    centre = lambda b: math.sqrt(max(b["p_from"], 1e-4) * b["p_to"])  # noqa: E731
    cross = float("nan")
    usable = [b for b in bins if b["passes"] >= 10]
    for a, b in zip(usable[:-1], usable[1:]):
        if a["fragile_share"] < 0.5 <= b["fragile_share"]:
            t = (0.5 - a["fragile_share"]) / (b["fragile_share"] - a["fragile_share"])
            cross = math.exp(math.log(centre(a)) + t * (math.log(centre(b)) - math.log(centre(a))))
            break
    return bins, cross


def markdown(result: dict) -> str:
    n, trials = result["windows"], result["trials"]
    lines = [f"True passes: Gaussian windows, {n} windows, {trials} trials per row; a Holm family of one.", "",
             "| power at the effect | effect (window sds) | passes | marked fragile (share of passes) | mean stability of passes |",
             "|---|---|---|---|---|"]
    for r in result["true"]:
        lines.append(f"| {r['power_target']:.2f} (simulated {r['pass_rate']:.2f}) | {r['effect']:.2f} | {r['passes']} | "
                     f"{r['fragile_share_of_passes']:.2f} | {r['mean_stability_of_passes']:.2f} |")
    lines += ["", f"False passes: the contrast's mean exactly 0, {result['null_trials']} trials per row.", "",
              "| windows under the null | false-pass rate | marked fragile (share of false passes) | "
              "mean stability of false passes | false passes not marked fragile (rate) |", "|---|---|---|---|---|"]
    for r in result["null"]:
        lines.append(f"| {r['noise']} | {r['pass_rate']:.3f} | {r['fragile_share_of_passes']:.2f} | "
                     f"{r['mean_stability_of_passes']:.2f} | {r['stable_pass_rate']:.3f} |")
    lines += ["", "Every pass above by its p-value (Holm-adjusted = raw in a family of one):", "",
              "| p-value | passes | mean stability | marked fragile |", "|---|---|---|---|"]
    for b in result["bins"]:
        if b["passes"]:
            lines.append(f"| {b['p_from']:g} - {b['p_to']:g} | {b['passes']} | {b['mean_stability']:.2f} | "
                         f"{b['fragile_share']:.2f} |")
    lines += ["", f"Half of the passes are fragile (median stability 0.8) at an adjusted p of about "
                  f"{result['p_at_cut']:.3f}."]
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=800, help="trials per power row")
    ap.add_argument("--null-trials", type=int, default=3000, help="trials per null row")
    ap.add_argument("--power-trials", type=int, default=800, help="trials per step of the effect's bisection")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write every number here")
    ap.add_argument("--docs", help="write the tables between their markers in this markdown file (docs/calibration.md)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    n = a.windows
    result = {"windows": n, "trials": a.trials, "null_trials": a.null_trials, "alpha": ALPHA, "fragile_below": FRAGILE_BELOW,
              "seed": a.seed, "true": [], "null": []}
    passes = []
    with claims.without_intervals():
        for i, target in enumerate(POWERS):
            effect = effect_for_power(target, n, a.power_trials, a.seed)
            rng = np.random.default_rng([a.seed, 10 + i])
            rows = [one_trial(rng, effect, n, "gaussian", t) for t in range(a.trials)]
            passes += [r for r in rows if r["passed"]]
            result["true"].append({"power_target": target, "effect": effect, **summarise(rows)})
            print(f"power {target}: effect {effect:.3f}, {summarise(rows)} [{time.perf_counter() - t0:.0f}s]", flush=True)
        for i, noise in enumerate(NOISE):
            rng = np.random.default_rng([a.seed, 20 + i])
            rows = [one_trial(rng, 0.0, n, noise, t) for t in range(a.null_trials)]
            passes += [r for r in rows if r["passed"]]
            result["null"].append({"noise": noise, **summarise(rows)})
            print(f"null {noise}: {summarise(rows)} [{time.perf_counter() - t0:.0f}s]", flush=True)
    result["bins"], result["p_at_cut"] = p_at_cut(passes)
    result["seconds"] = time.perf_counter() - t0
    print(markdown(result))
    print(f"[{result['seconds']:.0f} s]")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    if a.docs:
        from sinkbench.run.calibration import replace_block

        path = Path(a.docs)
        path.write_text(replace_block(path.read_text(), "<!-- stability-rates:begin -->", "<!-- stability-rates:end -->",
                                      markdown(result)))
    return result


if __name__ == "__main__":
    main()
