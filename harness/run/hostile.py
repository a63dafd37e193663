"""Hostile nulls: every test of H1, H2, H4, H5 and H7 at its boundary, under noise built to break it.

This module is the engine (the noise shapes, the rates, the tables); each hypothesis unit
declares its own tests at their boundary beside its verdicts (`HOSTILE` in
sinkbench.hypotheses.h1_dark_tail ... h7_streaming, read through the registry: `contrasts()`).
For each criterion, the contrast builds the per-window inputs of its verdict function so that
the contrast under test has mean exactly at its boundary (the claim false, just), with
per-window noise of one of the shapes in `NULLS`, while every other test of its Holm family
gets a clear effect (the hardest case: Holm then multiplies its p-value by the least). A
trial passes when the verdict function says the claim holds. The verdict functions are
called unchanged.

Ratio criteria get their noise multiplicatively (the contrast is the window's denominator
times the noise), so a lognormal tail is a tail of the per-window ratio.

The nulls (issue 18 of the project's tracker; docs/calibration.md has the table):
gaussian; t2 (Student t, 2 df); lognormal sigma 0.6 with the long tail on the null side
and on the other side; AR(1) with rho 0.5 across windows in corpus order; 50-75% exact
zeros; one NaN window. H3's claims are exact permutation/binomial tests with their own
nulls (sinkbench.hypotheses.h3_distributed.verdicts, tests/test_distributed.py).
"""
from __future__ import annotations

import math

import numpy as np

from sinkbench.stats.inference import case_seed
from sinkbench.stats.nulls import ALPHA, DOCUMENT_UNITS, NULLS

def contrasts() -> dict:
    """Every registered unit's tests at their boundary (`hostile` of sinkbench.registry.Hypothesis):
    name -> run(e, rng) -> passed, e the null's noise over the windows."""
    from sinkbench.registry import units

    return {name: run for u in units().values() for name, run in u.hostile.items()}


def __getattr__(name: str):
    if name == "CONTRASTS":  # the units import this module's helpers: read them late
        return contrasts()
    raise AttributeError(name)


def false_pass_rate(criterion: str, null: str, trials: int = 1000, n_windows: int = 16, seed: int = 0) -> float:
    """Share of trials in which the criterion passes with its contrast at the boundary."""
    rng = np.random.default_rng([seed, case_seed("hostile", criterion, null)])
    run, noise = contrasts()[criterion], {**NULLS, **DOCUMENT_UNITS}[null]
    return float(np.mean([run(noise(rng, n_windows), rng) for _ in range(trials)]))


def clear_pass_rate(criterion: str, trials: int = 50, n_windows: int = 16, seed: int = 1, shift: float = 3.0) -> float:
    """Power check of the construction: the contrast shifted `shift` noise-sds the claimed way."""
    rng = np.random.default_rng(seed)
    return float(np.mean([contrasts()[criterion](rng.standard_normal(n_windows) + shift, rng) for _ in range(trials)]))


def table(trials: int = 1000, n_windows: int = 16) -> list[dict]:
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / trials)
    return [dict(criterion=c, null=nl, rate=false_pass_rate(c, nl, trials, n_windows), bound=bound)
            for c in contrasts() for nl in NULLS]


def markdown(rows: list[dict], trials: int, n_windows: int) -> str:
    nulls = list(NULLS)
    lines = [f"| criterion ({n_windows} windows, {trials} trials) | " + " | ".join(nulls) + " |",
             "|---|" + "---|" * len(nulls)]
    by = {(r["criterion"], r["null"]): r for r in rows}
    for c in contrasts():
        cells = []
        for nl in nulls:
            r = by[c, nl]
            mark = "" if r["rate"] <= r["bound"] else " **over**"
            cells.append(f"{r['rate']:.3f}{mark}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dependence_table(trials: int = 1000, n_windows: int = 16) -> str:
    """False-pass rates at AR(1) rho 0.5 with windows as units and with document units."""
    cols = ["AR(1) rho 0.5"] + list(DOCUMENT_UNITS)
    lines = [f"| criterion ({n_windows} windows, {trials} trials) | windows as units | " +
             " | ".join(c.split(", ")[1] for c in cols[1:]) + " |", "|---|" + "---|" * len(cols)]
    for c in contrasts():
        lines.append(f"| {c} | " + " | ".join(f"{false_pass_rate(c, col, trials, n_windows):.3f}" for col in cols) + " |")
    return "\n".join(lines)


def _percentile_ci(v, n_boot: int, seed: int) -> tuple[float, float]:
    """The percentile bootstrap of the mean (the interval sinkbench used before), for comparison."""
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, (n_boot, v.size))].mean(1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def interval_coverage(trials: int = 1000, n_windows: int = 16, n_boot: int = 2000) -> str:
    """Achieved coverage of the nominal 95% intervals: the studentized interval of a mean
    (stats.mean_ci), the studentized interval of a ratio of means (stats.ratio_ci), and the old
    percentile interval of a mean, under the window shapes of the hostile nulls."""
    from sinkbench.stats.inference import mean_ci, ratio_ci

    shapes = {k: NULLS[k] for k in ("gaussian", "t2", "lognormal, tail on the null side", "lognormal, tail on the claim side")}
    rows = [f"| interval ({n_windows} windows, {trials} trials) | " + " | ".join(shapes) + " |", "|---|" + "---|" * len(shapes)]
    cover = {"mean, studentized (used)": [], "mean, percentile (before)": [], "ratio of means, studentized (used)": []}
    for name, noise in shapes.items():
        rng = np.random.default_rng(case_seed("coverage", name))
        hits = {k: 0 for k in cover}
        for t in range(trials):
            e = noise(rng, n_windows)
            e = e[np.isfinite(e)]
            lo, hi = mean_ci(e, n_boot, seed=t)
            hits["mean, studentized (used)"] += lo <= 0 <= hi
            lo, hi = _percentile_ci(e, n_boot, t)
            hits["mean, percentile (before)"] += lo <= 0 <= hi
            den = 0.5 + 0.05 * rng.standard_normal(e.size)  # a ratio of means whose true value is 0.8
            num = den * (0.8 + 0.2 * e)
            lo, hi = ratio_ci(num, den, n_boot, seed=t)
            hits["ratio of means, studentized (used)"] += lo <= 0.8 <= hi
        for k in cover:
            cover[k].append(hits[k] / trials)
    rows += [f"| {k} | " + " | ".join(f"{c:.3f}" for c in v) + " |" for k, v in cover.items()]
    return "\n".join(rows)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="false-pass rates of every criterion under hostile nulls")
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--dependence", action="store_true", help="only the dependence table (document units)")
    ap.add_argument("--coverage", action="store_true", help="only the intervals' achieved coverage")
    a = ap.parse_args(argv)
    if a.dependence:
        print(dependence_table(a.trials, a.windows))
    elif a.coverage:
        print(interval_coverage(a.trials, a.windows))
    else:
        print(markdown(table(a.trials, a.windows), a.trials, a.windows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
